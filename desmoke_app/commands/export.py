"""`desmoke export IN [IN ...]`: side-by-side comparison MP4s with a progress bar."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from desmoke_app.commands.common import (
    VIDEO_STREAM_SWITCH,
    Subcommands,
    add_model_arguments,
    add_video_stream_argument,
    expand_wildcards,
    fail,
    int_in_range,
    make_desmoker,
    missing_stream_message,
    seconds,
    visible,
)
from engine.backends import BackendUnavailable
from engine.files import FileKey, desmoked_name, file_identity
from engine.models import WeightsError
from engine.video.errors import VideoError
from engine.video.file_source import MissingVideoStream
from engine.video.layout import LAYOUTS
from engine.video.writer import MAX_CRF

if TYPE_CHECKING:
    from engine.pipeline import Desmoker


def add_parser(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "export", help="write side-by-side comparison MP4s (original | dark channel | desmoked)"
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="IN",
        help="video file(s); wildcards (*.mp4) are expanded where the shell does not",
    )
    parser.add_argument(
        "-o",
        "--output",  # text, not a Path: a trailing "/" (a folder) would be lost
        help="output file (one input) or folder, which must exist (default: IN_desmoked.mp4 "
        "beside IN)",
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
        type=int_in_range(0, MAX_CRF),
        default=None,
        metavar="N",
        help="H.264 quality, 0-51: lower is better and larger (default 20; about 18 looks "
        "lossless; 0 is lossless, in a profile many players cannot open)",
    )
    add_video_stream_argument(parser)
    parser.set_defaults(func=run)


def output_for(source: Path, output: Path | None, into_folder: bool) -> Path:
    """Where `source`'s export goes: -o itself, or IN_desmoked.mp4 in the -o folder (or,
    without -o, beside IN)."""
    name = desmoked_name(source)
    if output is None:
        return source.with_name(name)
    return output / name if into_folder else output


#: What ends a name given as a folder ("out/").
_SEPARATORS = "/" + os.sep


def _is_folder(output: str, several: bool) -> bool:
    """Whether -o names a folder: several inputs, a trailing "/", or an existing folder."""
    # os.path.isdir, not Path.is_dir: on a name too long for the file system, Python 3.11's
    # raises; False lets the writer refuse it in one line ("cannot write (File name too long)").
    return several or output.endswith(tuple(_SEPARATORS)) or os.path.isdir(output)


def _folder_problem(output: str, several: bool) -> str:
    """Why the -o folder cannot take the outputs ("" when it can): said once, rather than
    once per input by the writer."""
    if os.path.isdir(output):
        return ""
    folder = output.rstrip(_SEPARATORS)
    if several and (os.path.exists(folder) or Path(folder).suffix):
        return f"{output}: with several inputs, -o must be a folder"
    if os.path.exists(folder):
        return f"{folder}: is a file, not a folder"
    return f"{output}: output folder does not exist"


def run(args: argparse.Namespace) -> int:
    args.inputs = expand_wildcards(args.inputs)
    several = len(args.inputs) > 1
    if args.end is not None and args.end <= args.start:
        return fail(f"--end must be after --start, got {args.start:g} to {args.end:g} s")
    if problem := _repeated_input(args.inputs):
        return fail(problem)
    output = None if args.output is None else Path(args.output)
    into_folder = output is not None and _is_folder(args.output, several)
    if into_folder and (problem := _folder_problem(args.output, several)):
        return fail(problem)
    targets = [output_for(source, output, into_folder) for source in args.inputs]
    if problem := _plan_clash(args.inputs, targets):
        return fail(problem)
    try:
        desmoker = make_desmoker(args)
    except (WeightsError, BackendUnavailable, ValueError) as exc:
        return fail(str(exc))
    missing = [source for source in args.inputs if not os.path.exists(source)]  # never raises
    if len(missing) == len(args.inputs):  # nothing to export: no model banner before it
        return fail(f"{missing[0]}: no such file")
    print(f"desmoke: {visible(desmoker.describe())}")
    failures = 0
    for source, target in zip(args.inputs, targets, strict=True):
        failures += not export_one(source, target, desmoker, args)
    return 1 if failures else 0


def _repeated_input(sources: list[Path]) -> str:
    """Why an input is given twice ("" when none is): it would be exported twice, the second
    export replacing the first."""
    seen: dict[FileKey, Path] = {}
    for source in sources:
        key = file_identity(source)
        if key in seen:
            also = "" if str(seen[key]) == str(source) else f" (also as {source})"
            return f"{seen[key]} is given twice{also}: give each input once"
        seen[key] = source
    return ""


def _plan_clash(sources: list[Path], targets: list[Path]) -> str:
    """Why the outputs cannot all be written ("" when they can): an output that is an input
    (a video replaced, and read after that if its export comes later), or two inputs
    written to one file (the second replacing the first). Inputs are given once each."""
    inputs = {file_identity(source): source for source in sources}
    writes: dict[FileKey, Path] = {}
    for source, target in zip(sources, targets, strict=True):
        key = file_identity(target)
        if inputs.get(key) == source:
            return f"{target}: is the source video; choose another output"
        if key in inputs:
            return (
                f"{target}: is also an input, which the export of {source} would replace; "
                "give -o another folder"
            )
        earlier = writes.setdefault(key, source)
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


def export_one(source: Path, target: Path, desmoker: Desmoker, args: argparse.Namespace) -> bool:
    """Export `source` to `target` with a progress bar; False (the error printed) when it
    fails."""
    from engine.export import export_video

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
                video_stream=args.video_stream - 1,
                how_to_switch=VIDEO_STREAM_SWITCH,
            )
            progress.complete()
    except MissingVideoStream as exc:
        fail(missing_stream_message(exc))
        return False
    except (VideoError, ValueError) as exc:
        fail(str(exc))
        return False
    print(f"desmoke: wrote {visible(str(report.output))} ({visible(report.summary())})")
    if report.warning:
        print(f"desmoke: warning: {visible(report.warning)}", file=sys.stderr)
    return True
