"""`desmoke evaluate`: PSNR / SSIM / CIEDE2000 on synthetic test pairs for the model, the
identity baseline and `dcp` (over the whole frame and over the lit scope field);
no-reference figures and a contact sheet on real smoke."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from desmoke_app.commands.common import (
    SEED_RANGE,
    Subcommands,
    add_model_arguments,
    check_model_choice,
    expand_wildcards,
    fail,
    int_in_range,
    os_error_message,
    settle_model_choice,
    visible,
)
from engine.video import MAX_FRAME_SIDE

#: --frames and --real-frames: at least one frame (an upper bound only against typos).
FRAME_COUNT_RANGE = (1, 100_000)
#: --max-side: below 64 px the SSIM window (7 px) and the dark-channel patch cover much of
#: the frame and the scores stop meaning anything; above, no frame desmoke reads is larger.
MAX_SIDE_RANGE = (64, MAX_FRAME_SIDE)
#: --real-frames' default: frames measured per real clip.
REAL_FRAMES = 10


def add_parser(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a model against the smoky input and dcp (Markdown + JSON + contact sheet)",
        description="Synthesise smoke (fixed seed) on clear test frames and score the model, "
        "the identity baseline and dcp on the same pairs, over the whole frame and over the "
        "lit scope field (its black corners left out); measure real smoke without "
        "reference; write evaluation.md, evaluation.json and contact_sheet.png.",
    )
    add_model_arguments(parser)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        type=Path,
        metavar="TOML",
        help="training config (or a shipped one's name: fast): score on the test split of "
        "its [data] sources "
        "(default: the default split of $DESMOKE_DATA/clear)",
    )
    where.add_argument(
        "--sources",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="instead, frames evenly spaced over these clear videos/images (footage the "
        "model was not trained on)",
    )
    parser.add_argument(
        "--frames",
        type=int_in_range(*FRAME_COUNT_RANGE),
        default=None,
        metavar="N",
        help="test pairs, 1 or more (default: the whole test split; 24 with --sources)",
    )
    parser.add_argument(
        "--seed",
        type=int_in_range(*SEED_RANGE),
        default=None,
        help=f"smoke seed of the test pairs, {SEED_RANGE[0]}-{SEED_RANGE[1]}",
    )
    low, high = MAX_SIDE_RANGE
    parser.add_argument(
        "--max-side",
        type=int_in_range(low, high),
        default=None,
        metavar="PX",
        help=f"downscale test frames to this longer side, {low}-{high} px (default: keep)",
    )
    parser.add_argument(
        "--real",
        type=Path,
        metavar="DIR",
        help="a folder of real-smoke clips/images (default: $DESMOKE_DATA/real_smoke, if present)",
    )
    parser.add_argument("--no-real", action="store_true", help="skip the real-smoke part")
    parser.add_argument(
        "--real-frames",
        type=int_in_range(*FRAME_COUNT_RANGE),
        default=None,  # not 10: --no-real refuses it given, even as 10
        metavar="N",
        help=f"frames per real clip, 1 or more (default {REAL_FRAMES})",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("evaluation"),
        help="output folder (default ./evaluation)",
    )
    parser.set_defaults(func=run)


def _data_dir() -> Path | None:
    folder = os.environ.get("DESMOKE_DATA")
    return Path(folder) if folder and Path(folder).is_dir() else None


def _media_in(folder: Path) -> list[Path]:
    from training.evaluate import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    kinds = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in kinds)


def _data_config(args: argparse.Namespace):
    """The training data config whose test split is scored (None with --sources): --config's,
    else the default split of $DESMOKE_DATA/clear."""
    from training.config import DataConfig, load_config

    if args.sources:
        return None
    if args.config:
        return load_config(args.config).data
    folder = _data_dir()
    if folder is None or not (folder / "clear").is_dir():
        raise ValueError("no test data: pass --config or --sources, or set DESMOKE_DATA")
    return DataConfig(sources=[str(folder / "clear")])


def _test_frames(args: argparse.Namespace, data) -> list:
    """(label, frame) pairs: the held-out test split of `data`, or frames from --sources."""
    from training import evaluate as ev

    if data is None:
        return ev.frames_from_sources(args.sources, args.frames or 24, args.max_side)
    frames = ev.test_split_frames(data, args.frames)
    return [(label, ev.limit_size(frame, args.max_side)) for label, frame in frames]


def _clear_paths(args: argparse.Namespace) -> list[Path]:
    """Clear still images (instruments, no smoke) for the "should stay unchanged" check:
    those among --sources, else those in $DESMOKE_DATA/clear."""
    from training import evaluate as ev

    if args.sources:
        paths = args.sources
    else:
        folder = _data_dir()
        paths = _media_in(folder / "clear") if folder and (folder / "clear").is_dir() else []
    return [p for p in paths if p.suffix.lower() in ev.IMAGE_SUFFIXES]


def _training_sources(data, paths: list[Path]) -> set[str]:
    """The names of those of `paths` that are sources of the data config (an image, or an
    image in a folder it lists): a model trained on them has seen them."""
    if data is None:
        return set()
    sources = {Path(source).resolve() for source in data.sources}
    return {p.name for p in paths if {p.resolve(), p.resolve().parent} & sources}


def _real_sources(args: argparse.Namespace) -> list[Path]:
    if args.no_real:
        return []
    folder = args.real
    if folder is None:
        data = _data_dir()
        folder = data / "real_smoke" if data else None
        if folder is None or not folder.is_dir():
            where = f"no {folder}" if folder else "no $DESMOKE_DATA folder"
            print(
                f"desmoke: note: {visible(where)}: the real-smoke part and its contact sheet "
                "are left out (--real FOLDER adds them; --no-real says so quietly)",
                file=sys.stderr,
            )
            return []
    if folder.is_file():
        raise ValueError(f"--real {folder}: is a file; --real takes a folder of clips/images")
    if not folder.is_dir():
        raise ValueError(f"--real {folder}: no such folder")
    found = _media_in(folder)
    if not found:
        raise ValueError(f"{folder}: no videos or images")
    return found


def _evaluate(args: argparse.Namespace):
    """The report and contact sheet of the whole evaluation (nothing written yet)."""
    from training import evaluate as ev

    real = _real_sources(args)
    data = _data_config(args)
    test_frames = _test_frames(args, data)
    clear_paths = _clear_paths(args)
    clear_images = [(p.name, ev.limit_size(ev.read_image(p), args.max_side)) for p in clear_paths]
    methods, notes = ev.make_methods(
        args.model,
        weights=args.weights,
        backend=args.backend,
        working_short_side=args.working_size,
        patch_size=args.patch,
        strength=args.strength,
    )
    return ev.evaluate(
        methods,
        test_frames,
        seed=ev.EVAL_SEED if args.seed is None else args.seed,
        real_sources=real,
        clear_images=clear_images,
        clear_in_sample=_training_sources(data, clear_paths),
        frames_per_clip=REAL_FRAMES if args.real_frames is None else args.real_frames,
        notes=[*notes, run_record()],
    )


def run_record() -> str:
    """When, where and how this evaluation ran: a recorded report says where it came from."""
    import os
    import platform
    import shlex
    import sys
    import time

    from desmoke_app import source_commit, version

    command = shlex.join(["desmoke", *sys.argv[1:]])
    # The ms/frame columns depend on what else ran: the load says how busy the machine was.
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"run {time.strftime('%Y-%m-%d')} with desmoke {version()} (commit {source_commit()}) "
        f"on {platform.platform()} "
        f"({os.cpu_count()} logical CPUs, load average {load} as it began), Python "
        f"{platform.python_version()}: `{command}`"
    )


def _real_options_problem(args: argparse.Namespace) -> str:
    """Why the real-smoke options contradict each other ("" when they do not): --no-real
    would silently ignore the others."""
    given = [
        name
        for name, value in (("--real", args.real), ("--real-frames", args.real_frames))
        if value is not None
    ]
    if args.no_real and given:
        return f"--no-real skips the real-smoke part: drop {' and '.join(given)}, or --no-real"
    return ""


def _out_problem(out: Path) -> str:
    """Why the results could not be written into `out` ("" when they can): checked before
    the evaluation's minutes of work, not found when writing at the end."""
    from training import evaluate as ev

    try:
        if out.exists() and not out.is_dir():
            return f"--out {out}: is a file; --out takes a folder (made if missing)"
        ev.check_out_dir(out)
    except OSError as exc:
        return os_error_message(exc, "write the results", out)
    return ""


def run(args: argparse.Namespace) -> int:
    from engine.backends import BackendUnavailable
    from engine.models import WeightsError
    from training import evaluate as ev

    problem = _real_options_problem(args) or _out_problem(args.out)
    if problem:
        return fail(problem)
    try:
        if args.sources:
            args.sources = expand_wildcards(args.sources)
        settle_model_choice(args)
        check_model_choice(args.model, args.weights)
        report, sheet = _evaluate(args)
    except (ValueError, WeightsError, BackendUnavailable) as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(os_error_message(exc, "read"))
    try:
        paths = ev.write_outputs(report, args.out, sheet)
    except OSError as exc:
        return fail(os_error_message(exc, "write the results", args.out))
    print(report.to_markdown())
    print("wrote " + ", ".join(visible(str(p)) for p in paths.values()))
    return 0
