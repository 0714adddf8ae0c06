"""Arguments and helpers shared by the subcommands that run a model."""

from __future__ import annotations

import argparse
import glob
import math
import os
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from engine.backends import BACKEND_NAMES
from engine.dark_channel import PATCH_RANGE  # the engine's: --patch and the app's control
from engine.models import MAX_WORKING_SHORT_SIDE, MODEL_NAMES, NETWORK_MODELS
from engine.models.weights import not_weights_reason, runnable_models
from engine.video.errors import describe
from engine.video.file_source import MissingVideoStream

if TYPE_CHECKING:
    from engine.pipeline import Desmoker

#: What each command's add_parser(subparsers) gets: parser.add_subparsers()'s result (a
#: class argparse does not name publicly).
Subcommands = argparse._SubParsersAction

#: The working resolution's short side the CLI accepts: the app's "Working size" range (the
#: engine's own runs from MIN_WORKING_SHORT_SIDE, 16 px).
WORKING_SIZE_RANGE = (64, MAX_WORKING_SHORT_SIDE)
#: Smoke seeds (synth-smoke, evaluate): numpy takes non-negative seeds; 32 bits are plenty.
SEED_RANGE = (0, 2**32 - 1)


def int_in_range(low: int, high: int, *, odd: bool = False) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high`, both included (and odd if `odd`)."""
    allowed = f"an odd number {low}-{high}" if odd else f"{low}-{high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high or (odd and value % 2 == 0):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value}")
        return value

    return parse


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def unit_interval(text: str) -> float:
    """An argparse type: a number from 0 to 1 (NaN refused)."""
    value = _finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {value:g}")
    return value


def seconds(text: str) -> float:
    """An argparse type: a time in seconds, 0 or more (NaN and infinity refused)."""
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 s or more, got {value:g}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help=f"{', '.join(MODEL_NAMES)}, or a .safetensors file (default: fast, or the "
        "model the --weights file holds)",
    )
    parser.add_argument(
        "--weights", help="a .safetensors file for --model fast/paper (default: shipped)"
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_NAMES,
        help="inference backend (default: auto, which says what it chose)",
    )
    low, high = WORKING_SIZE_RANGE
    parser.add_argument(
        "--working-size",
        type=int_in_range(low, high),
        default=None,
        metavar="PX",
        help=f"working resolution's short side, {low}-{high} px (default: the model's, 256)",
    )
    low, high = PATCH_RANGE
    parser.add_argument(
        "--patch",
        type=int_in_range(low, high, odd=True),
        default=None,
        metavar="N",
        help=f"dark-channel patch at a 256 px short side (odd, {low}-{high}; default 15)",
    )
    parser.add_argument(
        "--strength",
        type=unit_interval,
        default=1.0,
        help="0 to 1: 0 leaves frames untouched, 1 removes the smoke fully (default 1)",
    )


#: How the CLI picks another of a file's video streams, said in the notice about them.
VIDEO_STREAM_SWITCH = "--video-stream N exports another"
#: --video-stream's bound (a file with this many video streams is not a camera's).
MAX_VIDEO_STREAM = 999


def add_video_stream_argument(parser: argparse.ArgumentParser) -> None:
    """--video-stream N: numbered from 1, as the notice about a file of several numbers
    them ("video stream 2 of 3"); args.video_stream is that number (the engine's
    video_stream is one less)."""
    parser.add_argument(
        "--video-stream",
        type=int_in_range(1, MAX_VIDEO_STREAM),
        default=1,
        metavar="N",
        help="which video stream of a file that has several (a stereo laparoscope's two "
        "eyes, a recorder's several inputs), counted from 1 as the warning about them counts: "
        "1 is the first (default); with several inputs, the same one of each",
    )


def missing_stream_message(error: MissingVideoStream) -> str:
    """The engine's MissingVideoStream in the CLI's words (--video-stream, from 1)."""
    from engine.export import plural

    return (
        f"{error.path}: --video-stream {error.number + 1}: the file has "
        f"{plural(error.count, 'video stream')} (--video-stream 1 to {error.count})"
    )


def settle_model_choice(args: argparse.Namespace) -> None:
    """Fill in --model where it was not given: the model a --weights file holds (a paper
    model's weights alone run the paper model, as the GUI's model menu does), else fast."""
    if args.model is None:
        args.model, args.weights = (args.weights, None) if args.weights else ("fast", None)


def check_model_choice(model: str, weights: str | None) -> None:
    """Refuse, with a ValueError naming what can be used, a model the user asked for that
    would not run as asked, in the CLI's words (--model, --weights): the engine refuses the
    same (Desmoker's argument checks) in its API's words."""
    for path in (model, weights):
        reason = not_weights_reason(path) if path else ""
        if reason:
            raise ValueError(f"{reason} (--model and --weights take .safetensors weights)")
    if weights is not None:
        _check_takes_weights(model, weights)
    elif model in MODEL_NAMES and model not in runnable_models():
        raise ValueError(_no_shipped_weights_advice(model))


def _check_takes_weights(model: str, weights: str) -> None:
    if model in NETWORK_MODELS:
        return
    if model in MODEL_NAMES:
        what = "takes no weights"
    elif Path(model).suffix:
        what = "is already a weights file"
    else:
        return  # an unknown model name: the engine says so
    raise ValueError(
        f"--weights {weights}: --model {model} {what}; give weights as "
        f"--model {' or '.join(NETWORK_MODELS)} --weights W.safetensors"
    )


def _no_shipped_weights_advice(model: str) -> str:
    """What to do where no weights ship for `model`, in the CLI's words (the engine's
    NoShippedWeights names its API's weights= argument)."""
    return (
        f"no trained weights for '{model}' are shipped: pass them with --model {model} "
        f"--weights W.safetensors, or use --model {' or '.join(runnable_models())}"
    )


def make_desmoker(args: argparse.Namespace) -> Desmoker:
    """A Desmoker from the common arguments (ValueError where it would not run as asked);
    prints the engine's notice, if any."""
    from engine.pipeline import Desmoker

    settle_model_choice(args)
    check_model_choice(args.model, args.weights)
    desmoker = Desmoker(
        args.model,
        args.backend,
        weights=args.weights,
        working_short_side=args.working_size,
        patch_size=args.patch,
        strength=args.strength,
    )
    if desmoker.notice:
        print(f"desmoke: {visible(desmoker.notice)}", file=sys.stderr)
    return desmoker


#: The characters that make an argument a wildcard pattern, as glob reads them.
_WILDCARDS = frozenset("*?[")


def expand_wildcards(paths: list[Path]) -> list[Path]:
    """The input files as a POSIX shell would pass them: cmd and PowerShell hand `*.mp4` on
    as it is. An argument holding * ? or [ that names no file becomes the files it matches,
    in name order; one that matches none stays as it is (as a shell leaves it), to be
    reported missing with the other inputs going on. An existing file's name is never a
    pattern ("take [2].mp4")."""
    expanded: list[Path] = []
    for path in paths:
        name = str(path)
        is_pattern = not _WILDCARDS.isdisjoint(name) and not os.path.lexists(name)
        matches = sorted(glob.glob(name)) if is_pattern else []
        expanded.extend([Path(match) for match in matches] or [path])
    return expanded


def os_error_message(error: OSError, doing: str, path: Path | None = None) -> str:
    """One line for an OSError: the file (`path`, the user's name for it, rather than a
    temporary file's), what failed and why, without Python's "[Errno N]"."""
    where = path or error.filename
    prefix = f"{where}: " if where else ""
    return f"{prefix}cannot {doing} ({describe(error)})"


#: Unicode categories that a name can hold but a message line must not pass on as they are:
#: controls (a newline splits the line, an escape sequence drives the terminal), invisible
#: format characters (a right-to-left override reorders what follows), unpaired surrogates
#: (a name's bytes that are not UTF-8) and line or paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def visible(text: str) -> str:
    """`text` with each character of _HIDDEN_CATEGORIES written as Python writes it in a
    string literal (\\n, \\x1b, \\u202e): one line that shows a file's name as it is, and
    the same again when shown twice (a backslash is left as it is, Windows paths have them)."""
    if text.isprintable():
        return text
    return "".join(
        repr(char)[1:-1] if unicodedata.category(char) in _HIDDEN_CATEGORIES else char
        for char in text
    )


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors stay on one line (visible): they quote what was given
    ("x.safetensors: weights file not found"), which may hold a newline or an escape."""

    def error(self, message: str) -> NoReturn:
        super().error(visible(message))


def fail(message: str, code: int = 1) -> int:
    """Print "desmoke: error: `message`" on stderr, on one line (visible); returns the exit
    code `code`."""
    print(f"desmoke: error: {visible(message)}", file=sys.stderr)
    return code
