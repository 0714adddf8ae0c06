"""The `desmoke` command line: one module per subcommand in desmoke_app/commands/.

Each module has `add_parser(subparsers)` (which sets `func=run`) and `run(args) -> int`.
User errors print one line to stderr and give a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: Subcommand modules, in the order `desmoke --help` lists them.
COMMANDS = (
    "export",
    "info",
    "devices",
    "synth_smoke",
    "train",
    "evaluate",
    "export_model",
    "build_engine",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="desmoke",
        description="Remove surgical smoke from laparoscopic video (full resolution, real time).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        # Optional libraries (TensorRT, cuda-python) are imported inside run(), so every
        # command is always listed and says itself what it is missing.
        importlib.import_module(f"desmoke_app.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="desmoke: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("desmoke: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
