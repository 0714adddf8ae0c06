"""`desmoke export IN [IN ...]`: side-by-side comparison MP4s with a progress bar."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from desmoke_app.commands.common import add_model_arguments, fail, make_desmoker
from engine.backends import BackendUnavailable
from engine.models import WeightsError
from engine.video.errors import VideoError
from engine.video.layout import LAYOUTS
from engine.video.writer import MAX_CRF


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="write side-by-side comparison MP4s (original | dark channel | desmoked)"
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="video file(s)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output file (one input) or folder (default: IN_desmoked.mp4)",
    )
    add_model_arguments(parser)
    parser.add_argument("--layout", default="3up", choices=LAYOUTS)
    parser.add_argument("--labels", action="store_true", help="label the panes")
    parser.add_argument("--start", type=float, default=0.0, metavar="S", help="start (s)")
    parser.add_argument("--end", type=float, default=None, metavar="S", help="end (s)")
    parser.add_argument(
        "--crf",
        type=int,
        default=None,
        metavar="N",
        help="H.264 quality, 0-51: lower is better and larger (default 20; about 18 looks "
        "lossless)",
    )
    parser.set_defaults(func=run)


def output_for(source: Path, output: Path | None, several: bool) -> Path:
    name = f"{source.stem}_desmoked.mp4"
    if output is None:
        return source.with_name(name)
    if several or output.is_dir():
        return output / name
    return output


def run(args: argparse.Namespace) -> int:
    from engine.pipeline import export_video

    several = len(args.inputs) > 1
    if several and args.output is not None and args.output.suffix:
        return fail(f"{args.output}: with several inputs, -o must be a folder")
    if args.start < 0 or (args.end is not None and args.end <= args.start):
        return fail("--end must be after --start, and --start not negative")
    if args.crf is not None and not 0 <= args.crf <= MAX_CRF:
        return fail(f"--crf must be 0-{MAX_CRF} (lower is better), got {args.crf}")
    targets = [output_for(source, args.output, several) for source in args.inputs]
    clash = _first_clash(args.inputs, targets)
    if clash:
        return fail(clash)
    try:
        desmoker = make_desmoker(args)
    except (WeightsError, BackendUnavailable, ValueError) as exc:
        return fail(str(exc))
    print(f"desmoke: {desmoker.describe()}")
    failures = 0
    for source, target in zip(args.inputs, targets, strict=True):
        failures += not export_one(source, target, desmoker, args, export_video)
    return 1 if failures else 0


def _first_clash(sources: list[Path], targets: list[Path]) -> str:
    """Why two inputs would be written to one file (the second replacing the first), or ""."""
    first_source: dict[Path, Path] = {}
    for source, target in zip(sources, targets, strict=True):
        earlier = first_source.setdefault(target.resolve(), source)
        if earlier != source:
            return f"{earlier} and {source} would both be written to {target}: rename one"
    return ""


def export_one(source: Path, target: Path, desmoker, args, export_video) -> bool:
    bar: tqdm | None = None  # opened with the first frame: an unreadable input shows none

    def progress(done: int, expected: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=expected, unit="frame", desc=source.name, leave=True)
        bar.total = expected
        bar.update(done - bar.n)

    try:
        report = export_video(
            source,
            target,
            desmoker,
            layout=args.layout,
            labels=args.labels,
            start=args.start,
            end=args.end,
            progress=progress,
            crf=args.crf,
        )
    except (VideoError, ValueError) as exc:
        fail(str(exc))
        return False
    finally:
        if bar is not None:
            bar.close()
    skipped = (
        f", {report.skipped_frames} undecodable frames skipped" if report.skipped_frames else ""
    )
    print(
        f"desmoke: wrote {report.output} ({report.frames} frames, {report.fps:.1f} fps, "
        f"{report.encoder}{skipped})"
    )
    return True
