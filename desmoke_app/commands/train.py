"""`desmoke train --config FILE`: train the `fast` or `paper` model (the config names which)."""

from __future__ import annotations

import argparse
import json

from desmoke_app.commands.common import Subcommands, fail


def add_parser(subparsers: Subcommands) -> None:
    from training.run import add_run_arguments  # the trainers' command line takes the same

    parser = subparsers.add_parser(
        "train",
        help="train the fast or paper network on clear footage with synthetic smoke",
        description="Train the model a TOML config names (training/configs/fast.toml, "
        "paper.toml). Writes into the run folder checkpoint.pt (to resume), metrics.jsonl, "
        "best.safetensors + best.json (the weights best on the validation split, with their "
        "scores) and, when the run completes, last.safetensors + last.json; the weights name "
        "their data as the config wrote it, not by this machine's folders. Ctrl-C (or a "
        "kill) stops after the current step (a validation: before its next frame) and "
        "writes checkpoint.pt first: --resume continues from there; Ctrl-C again stops at "
        "once, without a new checkpoint. "
        "Multi-GPU: torchrun --nproc-per-node N -m training.trainer_fast --config ...",
    )
    add_run_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from training.run import USER_ERRORS, configured_run
    from training.trainer_fast import train_fast
    from training.trainer_paper import train_paper

    try:
        config, out = configured_run(args)
        trainer = train_fast if config.model.name == "fast" else train_paper
        summary = trainer(config, out, resume=args.resume, max_minutes=args.max_minutes)
    except USER_ERRORS as exc:  # bad input, or a run folder that cannot be written
        return fail(str(exc))
    print(json.dumps(summary))
    return 0
