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

from collections.abc import Callable
from typing import ClassVar

from PySide6.QtCore import QDeadlineTimer, QObject, QThread, QTimer

from desmoke_app.gui.processor import Processor
from desmoke_app.gui.reader import Reader
from desmoke_app.gui.recorder import Recorder


class WorkerThreads:
    """Starts the reader, the processor and the recorder on their own QThreads; stop()
    finishes a running recording and joins them."""

    #: The instances whose threads have not been stopped yet: stop_all() stops those of a
    #: window that raised while it was being built (it cannot stop its own).
    _unstopped: ClassVar[list[WorkerThreads]] = []

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
        WorkerThreads._unstopped.append(self)

    @classmethod
    def stop_all(cls) -> list[str]:
        """stop() every instance not stopped yet: the workers still running after it."""
        for workers in list(cls._unstopped):
            workers.stop()
        return [name for workers in cls._unstopped for name in workers.stuck()]

    def stuck(self) -> list[str]:
        """The workers whose thread stop() gave up on and that still run ("reader", ...)."""
        return [
            thread.objectName().removeprefix("desmoke-")
            for thread in self._still_running
            if thread.isRunning()
        ]

    def stop(self, timeout_ms: int = 8000) -> None:
        """Close the source, finish a running recording (quitting keeps what was
        recorded) and end the threads, giving up on the reader and processor still running
        after `timeout_ms`: a reader blocked opening a source (a FIFO nobody writes to, a
        stream that does not answer) runs nothing until the open returns, if ever. The
        recorder is waited for as long as finishing its file takes (an hour's recording
        rewritten for fast start on a slow drive can take longer than any deadline)."""
        if not self._threads:
            return
        reader, processor, recorder = self._threads
        # Posted, not waited for: each runs on its own thread (the reader's timer must stop
        # on the thread that owns it), then ends that thread. A quit() posted apart could
        # end the thread before the request had run.
        _finish_then_quit(self.reader, self.reader._close, reader)
        _finish_then_quit(self.recorder, self.recorder._stop, recorder)
        processor.quit()
        deadline = QDeadlineTimer(timeout_ms)
        for thread in self._threads:
            forever = QDeadlineTimer(QDeadlineTimer.ForeverConstant.Forever)
            if not thread.wait(forever if thread is recorder else deadline):
                # A QThread destroyed while it runs aborts the process (a processor still
                # building a TensorRT engine): kept referenced; desmoke-app's main exits
                # without Python's clean-up while one runs.
                self._still_running.append(thread)
        self._threads = []
        if not self._still_running:  # else kept referenced, its threads with it
            WorkerThreads._unstopped.remove(self)


def _finish_then_quit(worker: QObject, finish: Callable[[], None], thread: QThread) -> None:
    """Run finish() on `worker`'s thread, then end that thread's event loop."""

    def run() -> None:
        try:
            finish()
        finally:
            thread.quit()

    QTimer.singleShot(0, worker, run)
