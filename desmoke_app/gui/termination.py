"""Termination signals for the desktop app: they close its windows as the close buttons do."""

from __future__ import annotations

import signal
import socket

from PySide6.QtCore import QObject, QSocketNotifier, QTimer
from PySide6.QtWidgets import QApplication

from engine.stop_signals import STOP_SIGNALS


class TerminationSignals(QObject):
    """SIGTERM, SIGINT, SIGHUP and on Windows SIGBREAK (`kill`, Ctrl-C, the terminal closed,
    Ctrl+Break: engine.stop_signals.STOP_SIGNALS) close the app's windows as their close
    buttons do: an export is cancelled and leaves nothing, a recording is kept.

    Python runs a signal handler only when Python code next runs, never while Qt waits for
    events in C++: the interpreter also writes the signal to a socket (signal.set_wakeup_fd)
    whose notifier wakes the event loop. Made once, on the main thread, with the app as
    parent (desmoke-app's main).
    """

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self._wakeup, self._send = socket.socketpair()
        self._wakeup.setblocking(False)
        self._send.setblocking(False)
        signal.set_wakeup_fd(self._send.fileno())
        self._notifier = QSocketNotifier(self._wakeup.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._drain)
        for number in STOP_SIGNALS:
            if signal.getsignal(number) is not signal.SIG_IGN:  # under nohup, SIGHUP stays so
                signal.signal(number, self._received)

    def _received(self, number: int, frame) -> None:
        # The handler may run in the middle of any slot: close from the event loop instead.
        QTimer.singleShot(0, QApplication.closeAllWindows)

    def _drain(self) -> None:
        self._wakeup.recv(64)  # the signal numbers: _received has handled them
