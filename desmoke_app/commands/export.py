"""`desmoke export IN [IN ...]`: side-by-side comparison MP4s with a progress bar."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import closing
from pathlib import Path

from tqdm import tqdm

from desmoke_app.commands.common import (
    add_model_arguments,
    fail,
    make_desmoker,
    seconds,
)
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
    parser.add_argument(
        "--layout",
        default="3up",
        choices=LAYOUTS,
        help="3up: original | dark channel | desmoked side by side (default); 2up: original "
        "| desmoked; vertical: the three stacked",
    )
    parser.add_argument("--labels", action="store_true", help="label the panes")
    parser.add_argument("--start", type=seconds, default=0.0, metavar="S", help="start (s)")
    parser.add_argument("--end", type=seconds, default=None, metavar="S", help="end (s)")
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
    # os.path.isdir, not Path.is_dir: on a name too long for the file system, Python 3.11's
    # raises; False lets the writer refuse it in one line ("cannot write (File name too long)").
    if several or os.path.isdir(output):
        return output / name
    return output


def run(args: argparse.Namespace) -> int:
    from engine.pipeline import export_video

    several = len(args.inputs) > 1
    if several and args.output is not None and args.output.suffix:
        return fail(f"{args.output}: with several inputs, -o must be a folder")
    if args.end is not None and args.end <= args.start:
        return fail(f"--end must be after --start, got {args.start:g} to {args.end:g} s")
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
    missing = [source for source in args.inputs if not os.path.exists(source)]  # never raises
    if len(missing) == len(args.inputs):  # nothing to export: no model banner before it
        return fail(f"{missing[0]}: no such file")
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


class _ProgressBar:
    """export_video's progress callback as a tqdm bar, opened with the first frame (an
    unreadable input shows none)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bar: tqdm | None = None

    def __call__(self, done: int, expected: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=expected, unit="frame", desc=self.name, leave=True)
        self.bar.total = expected
        self.bar.update(done - self.bar.n)

    def complete(self) -> None:
        """The export is done: the bar ends full. `expected` is the file's estimate, which a
        variable frame rate or a cut-short file overstates (it ended at 66%)."""
        if self.bar is not None:
            self.bar.total = self.bar.n
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def export_one(source: Path, target: Path, desmoker, args, export_video) -> bool:
    try:
        # The bar is closed before an error is printed: on a line of its own, not redrawn.
        with closing(_ProgressBar(source.name)) as progress:
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
            progress.complete()
    except (VideoError, ValueError) as exc:
        fail(str(exc))
        return False
    print(f"desmoke: wrote {report.output} ({report.summary()})")
    if report.warning:
        print(f"desmoke: warning: {report.warning}", file=sys.stderr)
    return True
