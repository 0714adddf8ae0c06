"""Recording the view: the processed panes, as they are shown, into a side-by-side MP4.

For a live capture there is no file to export afterwards: what the surgeon saw can only be
kept while it happens. The processor hands every processed frame to `Recorder.submit`
(from its thread); the recorder, on its own thread, keeps only the newest unwritten frame
(`Latest`), so a slow encoder drops frames instead of queueing them, and each frame is
stamped with the moment it was processed (a variable frame rate: playback keeps real time
however many frames were dropped). The engine's writer works on a temporary file: stopping
(or quitting) finishes the file; a failure, a disk full say, leaves nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from desmoke_app.gui.workers import Latest, ProcessedFrame, _one_line

#: Timestamps to the millisecond: frames keep the moments they were shown, even two that
#: were processed less than a frame apart (after a stall, say).
MILLISECOND = Fraction(1, 1000)


@dataclass
class RecordRequest:
    output: str
    source_id: int  # frames of another source (opened meanwhile) are not recorded
    frame_size: tuple[int, int]  # (width, height) of the source
    fps: float  # the source's nominal rate
    layout: str = "3up"
    labels: bool = True
    source: str | None = None  # the file or device shown: never recorded over


@dataclass
class RecordingReport:
    output: Path
    frames: int
    dropped: int
    seconds: float


class Recorder(QObject):
    """Writes submitted frames while a recording runs; one recording at a time."""

    started = Signal(str)  # output path
    finished = Signal(object)  # RecordingReport
    failed = Signal(str)

    _wake = Signal()
    _start_wanted = Signal(object)
    _stop_wanted = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.inbox = Latest()
        self._recording = threading.Event()
        self._request: RecordRequest | None = None
        self._writer = None
        self._started_at = 0.0
        self._origin: float | None = None  # when the first recorded frame was shown
        self._wake.connect(self._drain)
        self._start_wanted.connect(self._start)
        self._stop_wanted.connect(self._stop)

    @property
    def recording(self) -> bool:
        return self._recording.is_set()

    @property
    def frames_written(self) -> int:
        writer = self._writer
        return writer.frames_written if writer is not None else 0

    # Thread-safe -----------------------------------------------------------------------------
    def submit(self, frame: ProcessedFrame) -> None:
        """Called from the processor's thread for every processed frame."""
        if self._recording.is_set():
            stamped = (time.monotonic(), frame)
            if self.inbox.put(stamped):
                self._wake.emit()

    def request_start(self, request: RecordRequest) -> None:
        self._start_wanted.emit(request)

    def request_stop(self) -> None:
        self._stop_wanted.emit()

    # On the recorder's thread ----------------------------------------------------------------
    @Slot(object)
    def _start(self, request: RecordRequest) -> None:
        from engine.video import SideBySideWriter

        if self._writer is not None:
            self.failed.emit("a recording is already running")
            return
        try:
            self._writer = SideBySideWriter(
                request.output,
                fps=request.fps,
                frame_size=request.frame_size,
                layout=request.layout,
                labels=request.labels,
                source=request.source,
                copy_audio=False,  # the view's timing is not the file's
                time_base=MILLISECOND,
            )
        except Exception as error:  # noqa: BLE001 - shown in the window, the app goes on
            self.failed.emit(_one_line(error, f"cannot record to {request.output}"))
            return
        self._request = request
        self._started_at, self._origin = time.monotonic(), None
        self.inbox.clear()
        self.inbox.dropped = 0
        self._recording.set()
        self.started.emit(request.output)

    @Slot()
    def _drain(self) -> None:
        item = self.inbox.take()
        if item is None or self._writer is None:
            return
        seen_at, frame = item
        if frame.source_id != self._request.source_id:
            return
        if self._origin is None:
            self._origin = seen_at  # the file starts with its first frame
        try:
            self._writer.write(
                frame.original, frame.dark_channel, frame.desmoked, time=seen_at - self._origin
            )
        except Exception as error:  # noqa: BLE001 - shown in the window, the app goes on
            writer, output = self._writer, self._request.output
            self._end()
            writer.abort()  # nothing left behind
            self.failed.emit(_one_line(error, f"recording to {output} failed"))

    @Slot()
    def _stop(self) -> None:
        """Finish the file; with no frame recorded there is nothing to keep."""
        if self._writer is None:
            return
        self._recording.clear()
        self._drain()  # the newest frame, if it has not been written yet
        if self._writer is None:
            return  # writing it failed: reported, nothing left behind
        writer, request, dropped = self._writer, self._request, self.inbox.dropped
        seconds = time.monotonic() - self._started_at
        self._end()
        if writer.frames_written == 0:
            writer.abort()
            self.failed.emit(f"nothing recorded to {request.output}: no frame was shown")
            return
        try:
            path = writer.close()
        except Exception as error:  # noqa: BLE001 - the writer has removed its file
            self.failed.emit(_one_line(error, f"cannot save {request.output}"))
            return
        self.finished.emit(RecordingReport(path, writer.frames_written, dropped, seconds))

    def _end(self) -> None:
        self._recording.clear()
        self._writer, self._request = None, None
        self.inbox.clear()
