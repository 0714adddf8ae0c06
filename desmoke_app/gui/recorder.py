"""Recording the view: the processed panes, as they are shown, into a side-by-side MP4.

For a live capture there is no file to export afterwards: what the surgeon saw can only be
kept while it happens. The processor hands every processed frame to `Recorder.submit`
(from its thread); the recorder, on its own thread, keeps only the newest unwritten frame
(`Latest`), so a slow encoder drops frames instead of queueing them, and each frame is
stamped with the moment it was processed (a variable frame rate: playback keeps real time
however many frames were dropped). The engine's writer works on a temporary file: stopping
(or quitting) finishes the file; a failure, a disk full say, leaves nothing.

The temporary file lies in the output's folder: if that folder goes (deleted, renamed, a
drive unmounted) the recording goes with it, and the writer would carry on into a file no
one can reach. The folder is checked every second: once it is gone, the recording stops at
once with a message, so that the user can record again elsewhere. Its output is claimed
(outputs.CLAIMS) while it runs: no export writes the same file meanwhile.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from desmoke_app.gui.mailbox import Latest
from desmoke_app.gui.messages import one_line
from desmoke_app.gui.outputs import CLAIMS
from desmoke_app.gui.processor import ProcessedFrame

#: Timestamps to the millisecond: frames keep the moments they were shown, even two that
#: were processed less than a frame apart (after a stall, say).
MILLISECOND = Fraction(1, 1000)
#: How often a running recording checks that its folder is still there (ms).
FOLDER_CHECK_MS = 1000
#: A frame up this many frame intervals at the stop (a paused view) is written again then.
HOLD_INTERVALS = 2


@dataclass
class RecordRequest:
    output: str
    source_id: int  # frames of another source (opened meanwhile) are not recorded
    frame_size: tuple[int, int]  # (width, height) of the source
    fps: float  # the source's nominal rate
    layout: str = "3up"
    labels: bool = True
    source: str | None = None  # the file or device shown: never recorded over
    # The frame on screen as the recording starts: its first frame. A paused video shows
    # no new one: without it, recording a still would record nothing.
    shown: ProcessedFrame | None = None


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
        self._last: tuple[float, ProcessedFrame] | None = None  # written last, when shown
        # A child: it moves to the recorder's thread with it, and fires there.
        self._folder_check = QTimer(self)
        self._folder_check.setInterval(FOLDER_CHECK_MS)
        self._folder_check.timeout.connect(self._check_folder)
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
        problem = CLAIMS.claim(request.output, "recorded")
        if problem:  # an export writes that file
            self.failed.emit(problem)
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
            CLAIMS.release(request.output)
            self.failed.emit(one_line(error, f"cannot record to {request.output}"))
            return
        self._request = request
        self._started_at, self._origin, self._last = time.monotonic(), None, None
        self.inbox.clear()
        self.inbox.dropped = 0
        if request.shown is not None:  # before any frame processed from now on can come
            self.inbox.put((self._started_at, request.shown))
        self._recording.set()
        self._folder_check.start()
        self.started.emit(request.output)
        self._drain()

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
        self._write(seen_at, frame)

    def _write(self, seen_at: float, frame: ProcessedFrame) -> None:
        try:
            self._writer.write(
                frame.original, frame.dark_channel, frame.desmoked, time=seen_at - self._origin
            )
            self._last = (seen_at, frame)
        except Exception as error:  # noqa: BLE001 - shown in the window, the app goes on
            # A folder gone is the cause to name (the encoder opens its file only with its
            # first packet, which then fails with a bare "No such file or directory").
            output = self._request.output
            problem = self._folder_gone() or one_line(error, f"recording to {output} failed")
            self._abort()  # nothing left behind
            self.failed.emit(problem)

    @Slot()
    def _check_folder(self) -> None:
        """Stop the recording at once, with a message, when its folder has gone: what it
        wrote went with the folder, and every frame written from now on would be lost too."""
        if self._writer is None:
            return
        problem = self._folder_gone()
        if problem:
            self._abort()  # its file is unreachable already: let the writer go
            self.failed.emit(problem)

    def _folder_gone(self) -> str:
        """Why the recording cannot go on, if its folder has gone; else ""."""
        output = Path(self._request.output)
        if os.path.isdir(output.parent):
            return ""
        seconds = time.monotonic() - self._started_at
        return (
            f"recording to {output} stopped after {seconds:.0f} s: its folder {output.parent} "
            "was removed or renamed, and the recording with it: record again to another folder"
        )

    @Slot()
    def _stop(self) -> None:
        """Finish the file; with no frame recorded there is nothing to keep."""
        self._check_folder()  # gone since the last check: say so, not "writing failed"
        if self._writer is None:
            return
        self._recording.clear()
        self._drain()  # the newest frame, if it has not been written yet
        if self._writer is not None:
            self._hold_last_frame(time.monotonic())
        if self._writer is None:
            return  # writing failed: reported, nothing left behind
        writer, request, dropped = self._writer, self._request, self.inbox.dropped
        seconds = time.monotonic() - self._started_at
        self._end()
        saved = _save(writer, request.output)
        CLAIMS.release(request.output)  # in place or removed: free for another job
        if isinstance(saved, str):
            self.failed.emit(saved)
        else:
            self.finished.emit(RecordingReport(saved, writer.frames_written, dropped, seconds))

    def _hold_last_frame(self, stopped_at: float) -> None:
        """Write the frame on screen once more at the stop where it has been up for more
        than HOLD_INTERVALS frame intervals (a paused view): the file then lasts as long as
        the recording did (to the stop, plus the interval its last frame is given), not to the
        last frame's time plus one interval (a paused 10 s recording as a one-frame clip)."""
        if self._last is None:
            return
        shown_at, frame = self._last
        if stopped_at - shown_at > HOLD_INTERVALS / self._request.fps:
            self._write(stopped_at, frame)

    def _abort(self) -> None:
        """End the recording, its file removed."""
        writer, output = self._writer, self._request.output
        self._end()
        writer.abort()
        CLAIMS.release(output)

    def _end(self) -> None:
        self._recording.clear()
        self._folder_check.stop()
        self._writer, self._request = None, None
        self.inbox.clear()


def _save(writer, output: str) -> Path | str:
    """Finish `writer`'s file: its path, or why nothing was kept (the file removed)."""
    if writer.frames_written == 0:
        writer.abort()
        return f"nothing recorded to {output}: no frame was shown"
    try:
        return writer.close()
    except Exception as error:  # noqa: BLE001 - the writer has removed its file
        return one_line(error, f"cannot save {output}")
