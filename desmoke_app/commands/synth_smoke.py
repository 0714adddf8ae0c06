"""`desmoke synth-smoke IN OUT`: a smoky H.264 MP4 version of a clear clip (demos, benchmarks)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from desmoke_app.commands.common import SEED_RANGE, Subcommands, fail, int_in_range, visible
from engine.export import plural


def add_parser(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "synth-smoke",
        help="composite synthetic, temporally coherent smoke over a clear video",
        description="Composite seeded fBm smoke (I = J(1 - alpha) + A alpha) over every frame "
        "of IN and write an H.264 MP4 to OUT with IN's audio (written to a temporary file, "
        "then renamed; never over IN).",
    )
    parser.add_argument("input", type=Path, metavar="IN", help="clear video (any FFmpeg format)")
    parser.add_argument("output", type=Path, metavar="OUT", help="smoky MP4 to write")
    parser.add_argument(
        "--seed",
        type=int_in_range(*SEED_RANGE),
        default=0,
        help=f"smoke seed, {SEED_RANGE[0]}-{SEED_RANGE[1]} (default 0)",
    )
    parser.add_argument(
        "--density",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="range of the plume's peak opacity, 0..1 (default: the training range 0.05 0.95)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from training.smoke import SmokeConfig, synthesize_video

    start = time.perf_counter()
    try:
        config = SmokeConfig()
        if args.density:
            low, high = args.density
            if not 0.0 <= low <= high <= 1.0:
                raise ValueError(f"--density needs 0 <= LOW <= HIGH <= 1, got {low} {high}")
            config = SmokeConfig(density=(low, high))
        frames = synthesize_video(args.input, args.output, seed=args.seed, config=config)
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    seconds = time.perf_counter() - start
    output = visible(str(args.output))
    print(f"wrote {output}: {plural(frames, 'frame')} in {seconds:.1f} s (seed {args.seed})")
    return 0
