"""The `desmoke` command line: one module per subcommand in desmoke_app/commands/.

Each module has `add_parser(subparsers)` (which sets `func=run`) and `run(args) -> int`.
User errors print one line to stderr and give a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys

from desmoke_app import version
from engine.stop_signals import first_stop_signal

#: SIGPIPE's number (13); Windows has no SIGPIPE.
SIGPIPE = getattr(signal, "SIGPIPE", 13)

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


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised where Ctrl-C raises KeyboardInterrupt, so that the same
    cleanup runs (temporary outputs removed) for `kill`, a closed terminal or Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int) -> None:
    raise Interrupted(signum)


def _add_verbose(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log details")


def build_parser() -> argparse.ArgumentParser:
    from desmoke_app.commands.common import OneLineArgumentParser  # subcommands' class too

    parser = OneLineArgumentParser(
        prog="desmoke",
        description="Remove surgical smoke from laparoscopic video (full resolution, real time).",
    )
    parser.add_argument("--version", action="version", version=f"desmoke {version()}")
    _add_verbose(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        # Optional libraries (TensorRT, cuda-python) are imported inside run(), so every
        # command is always listed and says itself what it is missing.
        importlib.import_module(f"desmoke_app.commands.{name}").add_parser(subparsers)
    for subparser in subparsers.choices.values():
        # -v after the command too; SUPPRESS keeps a -v given before it.
        _add_verbose(subparser, default=argparse.SUPPRESS)
    return parser


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="desmoke: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


def _stdout_closed() -> int:
    """The reader of stdout went away (`desmoke info | head`): stop quietly, as a pipeline's
    commands do, with the exit code of a SIGPIPE. Python flushes stdout once more on exit,
    which would fail the same way and print a traceback: stdout goes to devnull first
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + SIGPIPE


def main(argv: list[str] | None = None) -> int:
    # The handlers come first: building the parser imports torch, which takes a second.
    with first_stop_signal(_interrupt):  # a second signal cannot cut the cleanup short
        try:
            code = _run(argv)
            sys.stdout.flush()  # a closed pipe is found here, not at exit, past this handler
            return code
        except BrokenPipeError:
            return _stdout_closed()
        except KeyboardInterrupt as stop:
            print("desmoke: interrupted", file=sys.stderr)
            return 128 + getattr(stop, "signum", signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
