"""Arguments and helpers shared by the subcommands that run a model."""

from __future__ import annotations

import argparse
import sys

from engine.backends import BACKEND_NAMES
from engine.models import MODEL_NAMES


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="fast",
        help=f"{', '.join(MODEL_NAMES)}, or a .safetensors file (default: fast)",
    )
    parser.add_argument("--weights", help="weights for --model fast/paper (default: shipped)")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_NAMES,
        help="inference backend (default: auto, which says what it chose)",
    )
    parser.add_argument(
        "--working-size",
        type=int,
        default=None,
        metavar="PX",
        help="working resolution's short side (default: the model's, 256)",
    )
    parser.add_argument(
        "--patch",
        type=int,
        default=None,
        metavar="N",
        help="dark-channel patch at a 256 px short side (odd; default 15)",
    )
    parser.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="0 leaves frames untouched, 1 removes the smoke fully",
    )


def make_desmoker(args: argparse.Namespace):
    """A Desmoker from the common arguments; prints its fallback notice, if any."""
    from engine.pipeline import Desmoker

    desmoker = Desmoker(
        args.model,
        args.backend,
        weights=args.weights,
        working_short_side=args.working_size,
        patch_size=args.patch,
        strength=args.strength,
    )
    if desmoker.notice:
        print(f"desmoke: {desmoker.notice}", file=sys.stderr)
    return desmoker


def fail(message: str, code: int = 1) -> int:
    print(f"desmoke: error: {message}", file=sys.stderr)
    return code
