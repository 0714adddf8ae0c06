"""Export on its own thread: the engine's export_video with progress and cancel.

The worker builds its own Desmoker (a Desmoker is not shared across threads) and runs
engine.export.export_video, whose writer works on a temporary file: cancel, error or a
full disk leave nothing at the output path. The output is claimed (outputs.CLAIMS) for the
export's run: no recording or other export writes the same file meanwhile.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from desmoke_app.gui.messages import one_line
from desmoke_app.gui.outputs import CLAIMS
from desmoke_app.gui.processor import make_desmoker
from desmoke_app.gui.reader import VIDEO_STREAM_SWITCH

#: Progress signals at most this often: one per frame could flood the GUI's event queue.
PROGRESS_INTERVAL_S = 0.1


@dataclass
class ExportRequest:
    source: str
    output: str
    start: float = 0.0
    end: float | None = None
    layout: str = "3up"
    labels: bool = True
    settings: dict[str, Any] = field(default_factory=dict)
    crf: int | None = None  # H.264 quality; None: the writer's default
    video_stream: int = 0  # which of the source's video streams (0 the first): the one shown


class ExportWorker(QObject):
    progress = Signal(int, int)  # frames done, frames expected
    finished = Signal(object)  # engine.export.ExportReport
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, request: ExportRequest) -> None:
        super().__init__()
        self.request = request
        self._stop = threading.Event()
        self._last_progress = 0.0
        self._claimed = False

    def claim_output(self) -> str:
        """Claim the output for this export (released when run() ends): "", or why another
        job's use of that file refuses it."""
        problem = CLAIMS.claim(self.request.output, "exported")
        self._claimed = not problem
        return problem

    def cancel(self) -> None:
        """Thread-safe: the export stops before its next frame and removes its file."""
        self._stop.set()

    def _progress(self, done: int, expected: int) -> None:
        now = time.monotonic()
        if done >= expected or now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.progress.emit(done, expected)

    @Slot()
    def run(self) -> None:
        from engine.export import ExportCancelled, export_video

        request = self.request
        try:
            desmoker = make_desmoker(request.settings)
            report = export_video(
                request.source,
                request.output,
                desmoker,
                layout=request.layout,
                labels=request.labels,
                start=request.start,
                end=request.end,
                progress=self._progress,
                should_stop=self._stop.is_set,
                crf=request.crf,
                video_stream=request.video_stream,
                how_to_switch=VIDEO_STREAM_SWITCH,
            )
        except ExportCancelled:
            self.cancelled.emit()
        except Exception as error:  # noqa: BLE001 - shown in the window, the app goes on
            self.failed.emit(one_line(error, f"export to {request.output} failed"))
        else:
            self.finished.emit(report)
        finally:
            if self._claimed:  # the file is written (or removed): free for another job
                CLAIMS.release(request.output)
                self._claimed = False
            # The thread ends here, not in a slot queued to the GUI thread: the window's
            # shutdown waits for this thread on the GUI thread, where that slot cannot run.
            self.thread().quit()


class ExportJob(QObject):
    """One export: its worker on its own QThread, which ends with the worker's run;
    `done` fires after that, with the outcome."""

    done = Signal(str, str)  # outcome ("finished", "failed", "cancelled"), message

    def __init__(self, request: ExportRequest, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.request = request
        self.outcome = ""
        self.message = ""
        self.report = None
        self.level = "info"  # how the window shows the outcome's message
        self.worker = ExportWorker(request)
        self.thread = QThread()
        self.thread.setObjectName("desmoke-export")
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.worker.finished.connect(self._finished)
        # Bound methods of this GUI-thread object: the calls are queued to the GUI thread.
        self.worker.failed.connect(self._failed)
        self.worker.cancelled.connect(self._cancelled)
        self.thread.finished.connect(self._thread_finished)

    def start(self) -> str:
        """Start the export, unless another export or a recording is writing its output:
        then nothing starts and the answer says why ("" when it started)."""
        problem = self.worker.claim_output()
        if not problem:
            self.thread.start()
        return problem

    def cancel(self) -> None:
        self.worker.cancel()

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def wait(self, timeout_ms: int = 30000) -> bool:
        return self.thread.wait(timeout_ms)

    def _finished(self, report) -> None:
        self.report = report
        message = f"exported {Path(report.output).name} ({report.summary()})"
        if report.warning:
            message += f"; {report.warning}"
        # Frames left out (undecodable input) or a cut-short input: the output is not the
        # whole video the user asked for, which must not fade away as a routine note.
        if report.warning or report.skipped_frames:
            self.level = "warning"
        self._end("finished", message)

    def _failed(self, message: str) -> None:
        self._end("failed", message)

    def _cancelled(self) -> None:
        self._end("cancelled", "export cancelled: no file was left")

    def _thread_finished(self) -> None:
        self.done.emit(self.outcome, self.message)

    def _end(self, outcome: str, message: str) -> None:
        self.outcome, self.message = outcome, message
