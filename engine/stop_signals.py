"""The signals that stop a run as Ctrl-C does (kill, a closed terminal, Ctrl+Break), handled once.

The CLI turns the first into an interrupt that removes temporary outputs, the trainer into
a stop between steps with a checkpoint, the app into closing its windows; a second signal
must not cut short what the first began, except where the first only asked for a stop
later (the trainer: a second one stops a hung step at once).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Ctrl-C, kill, a closed terminal (SIGHUP: not on Windows), Ctrl+Break (SIGBREAK: Windows
#: only; closing the console window sends it too, though Windows may end the process before
#: Python's handler runs).
STOP_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK")
    if hasattr(signal, name)
)


@contextmanager
def first_stop_signal(
    on_signal: Callable[[int], None], on_second: Callable[[int], None] | None = None
) -> Iterator[None]:
    """Within the block, the first stop signal calls on_signal(signum), which may raise;
    later ones are ignored until the block ends. Given on_second, the second signal calls
    on_second(signum) instead (it may raise: stop at once what on_signal only asked to
    stop later) and the ones after it are ignored: they cannot cut that stop short.
    A signal already ignored (SIGHUP under nohup) stays ignored, and the previous handlers
    come back after the block. Handlers can only be set on the main thread: elsewhere
    nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    # None: a handler not set from Python, which could not be put back.
    handled = [s for s, handler in previous.items() if handler not in (signal.SIG_IGN, None)]
    pending = [on_signal] if on_second is None else [on_signal, on_second]

    def handle(signum: int, _frame) -> None:
        if not pending:  # one more, in the instant before the last callback ignored them
            return
        callback = pending.pop(0)
        if not pending:  # ignored before the call: it may raise, or take a while
            for other in handled:
                signal.signal(other, signal.SIG_IGN)
        callback(signum)

    for signum in handled:
        signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum in handled:
            signal.signal(signum, previous[signum])


def ignore_stop_signals(*_args: object) -> None:
    """Ignore the stop signals in this process (e.g. a DataLoader worker: a terminal's Ctrl-C
    reaches it too, and only the main process decides when to stop)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
