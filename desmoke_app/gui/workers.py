"""Decode and inference off the GUI thread: one small QObject per job, each in its own QThread.

Reader (reader.py: decode, real-time pacing, seek, step) -> Processor (processor.py: the
Desmoker) -> GUI (paint only); the Processor also hands every processed frame to the
Recorder (recorder.py).

Hand-over between threads goes through `Latest` (mailbox.py), a one-item mailbox: when
processing is behind, frames are dropped, never queued. Items are fresh numpy arrays
(PyAV returns a new array per frame, the Desmoker new outputs), never views into buffers a
worker reuses.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QMetaObject, Qt, QThread

from desmoke_app.gui.processor import Processor
from desmoke_app.gui.reader import Reader
from desmoke_app.gui.recorder import Recorder

log = logging.getLogger(__name__)


class WorkerThreads:
    """Starts the reader, the processor and the recorder on their own QThreads; stop()
    finishes a running recording and joins them."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.processor = Processor(record=self.recorder.submit)
        self.reader = Reader(self.processor.submit)
        self._threads = []
        self._still_running: list[QThread] = []  # stop() timed out on them
        workers = (
            ("reader", self.reader),
            ("processor", self.processor),
            ("recorder", self.recorder),
        )
        for name, worker in workers:
            thread = QThread()
            thread.setObjectName(f"desmoke-{name}")
            worker.moveToThread(thread)
            thread.start()
            self._threads.append(thread)

    @property
    def still_running(self) -> bool:
        """Whether a thread stop() gave up on is still running."""
        return any(thread.isRunning() for thread in self._still_running)

    def stop(self, timeout_ms: int = 8000) -> None:
        if not self._threads:
            return
        # Close the source on its own thread and wait for it: a posted request could be
        # dropped by quit(), and the reader's timer must stop on the thread that owns it.
        QMetaObject.invokeMethod(self.reader, "_close", Qt.ConnectionType.BlockingQueuedConnection)
        # Quitting keeps what was recorded: the file is finished, not dropped.
        QMetaObject.invokeMethod(self.recorder, "_stop", Qt.ConnectionType.BlockingQueuedConnection)
        for thread in self._threads:
            thread.quit()
        for thread in self._threads:
            if not thread.wait(timeout_ms):
                log.warning("%s did not stop in time", thread.objectName())
                # A QThread destroyed while it runs aborts the process (a processor still
                # building a TensorRT engine): kept referenced; desmoke-app's main exits
                # without Python's clean-up while one runs.
                self._still_running.append(thread)
        self._threads = []
