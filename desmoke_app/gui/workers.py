"""Decode and inference off the GUI thread: one small QObject per job, each in its own QThread.

Reader (decode, real-time pacing, seek, step) -> Processor (Desmoker) -> GUI (paint only).

Hand-over between threads goes through `Latest`, a one-item mailbox: a new item replaces an
unread one (counted as dropped) and at most one wake-up event is queued at a time. So when
processing is behind, frames are dropped, never queued: an unbounded backlog of queued
signals would freeze the GUI and grow memory without bound. Items are fresh numpy arrays
(PyAV returns a new array per frame, the Desmoker new outputs), never views into buffers a
worker reuses.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QMetaObject, QObject, Qt, QThread, QTimer, Signal, Slot

log = logging.getLogger(__name__)

#: Playback further behind its clock than this re-anchors the clock instead of rushing.
MAX_LAG_S = 0.25
#: What runs when the first settings cannot (a remembered backend this machine lacks, a
#: weights file since deleted), tried in turn: the same model on any backend, the shipped
#: model, the classical prior (which needs nothing).
FALLBACKS = (
    {"backend": "auto"},
    {"model": "fast", "backend": "auto", "working_short_side": None, "patch_size": None},
    {"model": "dcp", "backend": "auto", "working_short_side": None, "patch_size": None},
)


class Latest:
    """Thread-safe single-item mailbox: put() replaces (or merges into) the unread item,
    take() empties.

    put() returns True when the receiver must be woken (no wake-up is pending yet).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: Any = None
        self._full = False
        self._armed = False
        self.dropped = 0

    def put(self, item: Any, merge: Callable[[Any, Any], Any] | None = None) -> bool:
        """merge(unread, item): what replaces an unread item instead of `item` alone (then
        nothing counts as dropped)."""
        with self._lock:
            if self._full and merge is not None:
                item = merge(self._item, item)
            elif self._full:
                self.dropped += 1
            self._item, self._full = item, True
            if self._armed:
                return False
            self._armed = True
            return True

    def take(self) -> Any:
        with self._lock:
            item = self._item if self._full else None
            self._item, self._full, self._armed = None, False, False
            return item

    def clear(self) -> None:
        with self._lock:
            self._item, self._full = None, False


# -- what travels between the threads ------------------------------------------------------
@dataclass(frozen=True)
class Move:
    """Where the user asked to go: frame `target` (None: from the frame shown) plus `delta`
    frames. `pause`: a step pauses playback; a seek or a jump plays on."""

    target: int | None = None
    delta: int = 0
    pause: bool = False

    def then(self, later: Move) -> Move:
        """This move followed by `later`, as one: a seek replaces what came before it (the
        latest intent wins), steps and jumps add up (from the seek before them, if any)."""
        pause = self.pause or later.pause
        if later.target is not None:
            return replace(later, pause=pause)
        return Move(self.target, self.delta + later.delta, pause)


@dataclass
class SourceSpec:
    """What to open: kind "file" (path), "capture" (device path + format, size, fps and
    pixel format, each None for the device's default), "demo"."""

    kind: str
    path: str = ""
    format: str | None = None
    size: tuple[int, int] | None = None
    fps: float | None = None
    autoplay: bool = False
    pixel_format: str | None = None

    @property
    def label(self) -> str:
        if self.kind == "demo":
            return "demo"
        return self.path

    @property
    def stem(self) -> str:
        """A file name stem for what is saved from this source (snapshots): the file's, the
        capture device's after "live", or "demo"."""
        if self.kind == "file":
            return Path(self.path).stem
        if self.kind == "capture":
            device = re.sub(r"[^\w-]+", "_", Path(self.path).name).strip("_")
            return f"live_{device}" if device else "live"
        return "demo"


@dataclass
class SourceInfo:
    source_id: int
    spec: SourceSpec
    width: int
    height: int
    fps: float
    duration: float | None
    frame_count: int | None
    is_live: bool
    seekable: bool


@dataclass
class FramePacket:
    source_id: int
    index: int
    time: float
    rgb: np.ndarray
    # Decoded (monotonic seconds); None for a frame processed again, whose time since
    # decoding is a pause or a configuration, not a delay the app adds: no latency for it.
    read_at: float | None = field(default_factory=time.monotonic)


@dataclass
class ProcessedFrame:
    source_id: int
    index: int
    time: float
    original: np.ndarray
    dark_channel: np.ndarray
    desmoked: np.ndarray
    smoke_level: float
    timings: dict[str, float] = field(default_factory=dict)
    read_at: float | None = None  # as its FramePacket's


@dataclass
class ProcessorState:
    """What the processor runs now (after a configure), and what that configure asked for:
    they differ where the asked settings could not run (a fallback, or the old ones kept)."""

    settings: dict[str, Any]
    model_name: str
    backend_name: str
    device: str
    description: str
    notice: str
    config: dict[str, Any]
    asked: dict[str, Any]

    @property
    def runs_what_was_asked(self) -> bool:
        return self.settings == self.asked


def state_of(
    desmoker, settings: dict[str, Any], asked: dict[str, Any] | None = None
) -> ProcessorState:
    """What a Desmoker built from `settings` runs now, for the GUI; `asked`: the settings
    requested, where `settings` is a fallback from them."""
    backend = desmoker.backend
    return ProcessorState(
        settings=dict(settings),
        model_name=desmoker.model_name,
        backend_name=desmoker.backend_name,
        device=getattr(backend, "device", "cpu") if backend else "cpu",
        description=desmoker.describe(),
        notice=desmoker.notice,
        config=dict(desmoker.config),
        asked=dict(settings if asked is None else asked),
    )


def open_source(spec: SourceSpec):
    """A FileSource, CaptureSource or DemoSource for `spec`; raises VideoError/ValueError."""
    from engine.video import CaptureSource, FileSource

    if spec.kind == "file":
        return FileSource(spec.path)
    if spec.kind == "capture":
        return CaptureSource(
            spec.path,
            format=spec.format,
            size=spec.size,
            fps=spec.fps,
            pixel_format=spec.pixel_format,
        )
    if spec.kind == "demo":
        from desmoke_app.gui.demo import DemoSource

        return DemoSource()
    raise ValueError(f"unknown source kind {spec.kind!r}")


# -- reader ------------------------------------------------------------------------------
class Reader(QObject):
    """Owns the source: opens it, paces playback, seeks and steps; hands frames on."""

    opened = Signal(object)  # SourceInfo
    failed = Signal(str)
    playing_changed = Signal(bool)
    ended = Signal()
    # A flaw of the file the user must know: its frames end before the duration it states,
    # a seek past its last decodable frame, a jump over frames that do not decode.
    warned = Signal(str)
    broke = Signal()  # reading the open source failed (an unplugged device): it is stopped

    _open_wanted = Signal(object)
    _move_wanted = Signal()
    _play_wanted = Signal(bool)
    _close_wanted = Signal()
    _speed_wanted = Signal(float)
    _loop_wanted = Signal(bool)

    def __init__(self, deliver) -> None:
        """deliver(FramePacket): called on the reader thread (Processor.submit)."""
        super().__init__()
        self._deliver = deliver
        self._source = None
        self._info: SourceInfo | None = None
        self._source_id = 0
        self._playing = False
        self._speed = 1.0
        self._loop = False
        self._current = -1
        self._current_time = 0.0
        self._told_cut_short = False
        self._told_jump = False
        self._read_failed = False  # the last read raised (said): no "end" to report then
        self._anchor = (0.0, 0.0)  # (wall clock, media time) at which playback (re)started
        self._moves = Latest()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._tick)
        self._open_wanted.connect(self._open)
        self._move_wanted.connect(self._move)
        self._play_wanted.connect(self._set_playing)
        self._close_wanted.connect(self._close)
        self._speed_wanted.connect(self._set_speed)
        self._loop_wanted.connect(self._set_loop)

    # Thread-safe requests (called from the GUI thread) ------------------------------------
    def request_open(self, spec: SourceSpec) -> None:
        self._open_wanted.emit(spec)

    def request_play(self, playing: bool) -> None:
        self._play_wanted.emit(playing)

    # Moves are merged while one runs (a seek can take a second): a held arrow key must not
    # queue a seek per key repeat, each run long after the key is released.
    def request_seek(self, index: int) -> None:
        self._request_move(Move(target=int(index)))

    def request_step(self, delta: int) -> None:
        """`delta` frames on from the frame shown (or asked for: see Move.then); pauses."""
        self._request_move(Move(delta=int(delta), pause=True))

    def request_jump(self, frames: int) -> None:
        """As request_step, but playback goes on (and a live source ignores it)."""
        self._request_move(Move(delta=int(frames)))

    def _request_move(self, move: Move) -> None:
        if self._moves.put(move, Move.then):
            self._move_wanted.emit()

    def request_close(self) -> None:
        self._close_wanted.emit()

    def request_speed(self, speed: float) -> None:
        self._speed_wanted.emit(float(speed))

    def request_loop(self, loop: bool) -> None:
        self._loop_wanted.emit(bool(loop))

    # On the reader thread -------------------------------------------------------------------
    @Slot(object)
    def _open(self, spec: SourceSpec) -> None:
        try:
            source = open_source(spec)
        except Exception as error:  # noqa: BLE001 - any failure: message, old source kept
            self.failed.emit(_one_line(error, f"cannot open {spec.label}"))
            return
        self._close()
        self._source_id += 1
        self._source = source
        self._current = -1
        self._told_cut_short = self._told_jump = False
        self._moves.clear()
        seekable = not source.is_live and hasattr(source, "seek_frame")
        self._info = SourceInfo(
            self._source_id,
            spec,
            int(source.width),
            int(source.height),
            float(source.fps),
            source.duration,
            source.frame_count,
            bool(source.is_live),
            seekable,
        )
        self.opened.emit(self._info)
        if source.is_live or spec.autoplay:
            self._set_playing(True)
        else:
            self._read_and_deliver()

    @Slot(float)
    def _set_speed(self, speed: float) -> None:
        self._speed = max(0.01, speed)
        self._anchor = (time.monotonic(), self._media_time())

    @Slot(bool)
    def _set_loop(self, loop: bool) -> None:
        self._loop = loop

    @Slot()
    def _close(self) -> None:
        self._set_playing(False)
        if self._source is not None:
            try:
                self._source.close()
            except Exception:  # noqa: BLE001 - closing a failed device must not raise
                log.exception("closing the source failed")
        self._source = None

    @Slot(bool)
    def _set_playing(self, playing: bool) -> None:
        playing = bool(playing) and self._source is not None
        if playing == self._playing:
            return
        if playing and self._at_end() and not self._seek_to(0):
            return  # play at the last frame starts again, as players do: nothing decodes
        self._playing = playing
        if playing:
            self._anchor = (time.monotonic(), self._media_time())
            self._timer.start(0)
        else:
            self._timer.stop()
        self.playing_changed.emit(playing)

    def _at_end(self) -> bool:
        info = self._info
        if not info.seekable:
            return False
        return bool(info.frame_count and self._current >= self._last_index())

    def _last_index(self) -> int:
        """The last frame: the last that decodes where the source has found it (a file cut
        short ends before its frame_count), else the one the file states."""
        stated = max(0, (self._info.frame_count or 1) - 1)
        found = getattr(self._source, "last_index", None)  # a FileSource's; None: not found
        return stated if found is None else min(stated, found)

    def _check_the_end(self) -> None:
        """Past the last decodable frame of a file: say so, once, if it ends well before
        the duration it states (a cut-short file plays to its cut, then loops or stops)."""
        info = self._info
        if info is None or info.is_live or self._told_cut_short:
            return
        # None where the source has not met its end (a read after a seek that found nothing
        # ends nowhere in particular), or never ends early (the demo).
        ended = getattr(self._source, "end_time", None)
        if ended is None:
            return
        from engine.video import cut_short_warning

        warning = cut_short_warning(info.spec.path, ended, self._stated_end())
        if warning:
            self._told_cut_short = True
            self.warned.emit(warning)

    def _stated_end(self) -> float:
        """The duration the video stream states (not the file's, which covers its audio)."""
        return getattr(self._source, "video_duration", 0.0)

    def _media_time(self) -> float:
        """Presentation time of the next frame (from the last frame's own time: exact for
        variable frame rate files too)."""
        fps = self._info.fps if self._info else 25.0
        if self._current < 0:
            return 0.0
        return self._current_time + 1 / fps

    @Slot()
    def _tick(self) -> None:
        if not self._playing or self._source is None:
            return
        frame = self._read_next()
        if not self._playing:  # reading failed: stopped, and said
            return
        if frame is None and not self._loop_or_stop():
            return
        self._timer.start(self._delay_ms())

    def _loop_or_stop(self) -> bool:
        """At the end of the video: back to the start when looping (True), else stop."""
        self._check_the_end()
        if self._loop and self._info.seekable and self._current > 0 and self._seek_to(0):
            self._anchor = (time.monotonic(), self._media_time())
            return True
        self._stop_at_the_end()
        return False

    def _stop_at_the_end(self) -> None:
        """No next frame. A capture has no end of its own: one that stops sending (a device
        unplugged, a stream that closed) is lost, as a device whose read fails is."""
        if self._info.is_live:
            self._stop_broken(f"{self._info.spec.path}: the capture stopped sending frames")
            return
        self._set_playing(False)
        self.ended.emit()

    def _read_next(self):
        """Read and hand on the next frame (None at the end). After a gap (frames that do
        not decode, a pause) say so, and go on from it: waiting for its time would stall
        playback for as long as the gap, minutes maybe."""
        previous = self._current_time
        frame = self._read_and_deliver()
        if frame is not None and frame.after_gap:
            self._anchor = (time.monotonic(), frame.time)  # due one frame interval from now
            self._tell_a_jump(previous, frame.time)
        return frame

    def _tell_a_jump(self, before: float, after: float) -> None:
        info = self._info
        if self._told_jump or info.is_live:
            return
        self._told_jump = True  # once per source: a damaged file can jump again and again
        # Said neutrally: a variable frame rate file may pause that long on purpose.
        self.warned.emit(
            f"{self._name()}: the video jumps from {before:.2f} s to {after:.2f} s with no "
            "frame between (frames that do not decode in a damaged file, or a pause in the "
            "recording)"
        )

    def _delay_ms(self) -> int:
        """Milliseconds until the next frame is due (files and lavfi are paced by the clock;
        a real device paces itself: its read blocks until the next frame)."""
        info = self._info
        if info.is_live and info.spec.format != "lavfi":
            return 0
        speed = 1.0 if info.is_live else self._speed
        wall0, media0 = self._anchor
        due = wall0 + (self._media_time() - media0) / speed
        now = time.monotonic()
        if now - due > MAX_LAG_S:  # far behind (slow decode): restart the clock from here
            self._anchor = (now, self._media_time())
            return 0
        return max(0, round((due - now) * 1000))

    def _read_and_deliver(self):
        """The next frame, handed on; None at the end, or where reading failed (said, and
        stopped: _read_failed tells which)."""
        self._read_failed = False
        try:
            frame = self._source.read()
        except Exception as error:  # noqa: BLE001 - a vanished device or broken stream
            self._read_failed = True
            self._fail_during_playback(error)
            return None
        if frame is not None:
            self._hand_on(frame)
        return frame

    def _fail_during_playback(self, error: BaseException) -> None:
        self._stop_broken(_one_line(error, "reading the source failed"))

    def _stop_broken(self, message: str) -> None:
        self._set_playing(False)
        self.failed.emit(message)
        self.broke.emit()

    def _hand_on(self, frame) -> None:
        self._current, self._current_time = frame.index, frame.time
        self._deliver(FramePacket(self._source_id, frame.index, frame.time, frame.rgb))

    @Slot()
    def _move(self) -> None:
        move = self._moves.take()
        if move is None or self._source is None or not self._can_make(move):
            return
        if move.pause:
            self._set_playing(False)
        next_frame = move.target is None and move.pause and move.delta == 1
        if next_frame or not self._info.seekable:
            self._step_forward()  # the next frame decodes: cheaper than any seek
        elif move.target is not None or move.delta:
            self._seek_and_play_on(self._landing(move))

    def _can_make(self, move: Move) -> bool:
        """A live source only steps forward: it has no earlier frame to go back to, nor a
        way to skip ahead."""
        return self._info.seekable or (move.pause and move.delta > 0)

    def _landing(self, move: Move) -> int:
        """The frame `move` goes to. From the shown frame's time, not its count: frames of a
        variable frame rate file are numbered by count as they play, but seeks go by time."""
        start = move.target
        if start is None:
            start = round(self._current_time * self._info.fps) if self._current >= 0 else 0
        return start + move.delta

    def _step_forward(self) -> None:
        if self._read_next() is None and not self._read_failed:
            self._check_the_end()
            self._stop_at_the_end()

    def _seek_and_play_on(self, index: int) -> None:
        if not self._seek_to(index):
            self._set_playing(False)
        elif self._playing:  # the next frame is due one frame after this one, not before
            self._anchor = (time.monotonic(), self._media_time())
            self._timer.start(self._delay_ms())

    def _seek_to(self, index: int) -> bool:
        """Show frame `index`; where the file ends before it (cut short), its last frame
        that decodes (the source finds it), and say so. False when no frame could be shown
        (said too)."""
        wanted = min(max(0, index), max(0, (self._info.frame_count or 1) - 1))
        try:
            frame = self._source.seek_frame(wanted)
        except Exception as error:  # noqa: BLE001
            self._fail_during_playback(error)
            return False
        if frame is None:
            self.failed.emit(
                f"{self._name()}: no frame decodes at {wanted / self._info.fps:.2f} s or "
                "before (a damaged file, or one changed while open?)"
            )
            return False
        self._hand_on(frame)
        if self._last_index() < wanted:  # not frame.index < wanted: a VFR index is rounded
            self._tell_past_the_end(wanted)
        return True

    def _tell_past_the_end(self, wanted: int) -> None:
        """A seek to frame `wanted` showed the last frame, which comes before it: say so
        where the gap is more than a frame count's rounding (a cut-short file)."""
        from engine.video import cut_short_warning
        from engine.video.file_source import missing_tail

        if self._told_cut_short:  # once a source: every End press or drag past it is not news
            return
        name, fps = self._name(), self._info.fps
        asked, ended = wanted / fps, self._source.end_time
        where = f"{name}: no frame at {asked:.2f} s: "
        warning = cut_short_warning(self._info.spec.path, ended, self._stated_end())
        if warning:
            self._told_cut_short = True  # not again when playback reaches the cut
            self.warned.emit(warning.replace(f"{name}: ", where, 1))
        elif missing_tail(ended, asked):  # no duration stated: the gap to the time asked
            self._told_cut_short = True
            self.warned.emit(f"{where}the video ends at {ended:.2f} s")

    def _name(self) -> str:
        return Path(self._info.spec.path).name


# -- processor -----------------------------------------------------------------------------
class Processor(QObject):
    """Owns the Desmoker: processes only the newest frame; rebuilds on a settings change."""

    result_available = Signal()
    configured = Signal(object)  # ProcessorState
    failed = Signal(str)

    _wake = Signal()
    _configure_wanted = Signal(object)

    def __init__(self, record=None) -> None:
        """record(ProcessedFrame): called on the processor thread for every processed
        frame (Recorder.submit), besides the outbox the window paints from."""
        super().__init__()
        self.inbox = Latest()
        self.outbox = Latest()
        self._record = record
        self._desmoker = None
        self._state: ProcessorState | None = None
        self._last: FramePacket | None = None
        self.frames_done = 0
        self._wake.connect(self._drain)
        self._configure_wanted.connect(self._configure)

    @property
    def dropped(self) -> int:
        """Frames replaced before being processed or painted since the last reset."""
        return self.inbox.dropped + self.outbox.dropped

    def reset_counters(self) -> None:
        self.inbox.dropped = 0
        self.outbox.dropped = 0

    def submit(self, packet: FramePacket) -> None:
        """Called from the reader thread: the newest frame wins."""
        if self.inbox.put(packet):
            self._wake.emit()

    def request_configure(self, settings: dict[str, Any]) -> None:
        self._configure_wanted.emit(dict(settings))

    @Slot()
    def _drain(self) -> None:
        packet = self.inbox.take()
        if packet is not None:
            self._process(packet)

    def _process(self, packet: FramePacket) -> None:
        if self._desmoker is None:
            self._last = packet  # processed as soon as a configuration arrives
            return
        try:
            result = self._desmoker.process(packet.rgb)
        except Exception as error:  # noqa: BLE001 - one bad frame must not stop playback
            self.failed.emit(_one_line(error, f"processing frame {packet.index} failed"))
            return
        self._last = packet
        self.frames_done += 1
        self._report_a_new_notice()
        processed = ProcessedFrame(
            packet.source_id,
            packet.index,
            packet.time,
            result.original,
            result.dark_channel,
            result.desmoked,
            float(result.smoke_level),
            dict(result.timings),
            packet.read_at,
        )
        if self._record is not None:
            self._record(processed)
        if self.outbox.put(processed):
            self.result_available.emit()

    def _report_a_new_notice(self) -> None:
        """A fallback decided mid-run (the GPU frame path out of memory at 4K, a backend
        that stops working) is shown like one decided at configure time."""
        if self._state is not None and self._desmoker.notice != self._state.notice:
            self._state = state_of(self._desmoker, self._state.settings, self._state.asked)
            self.configured.emit(self._state)

    @Slot(object)
    def _configure(self, settings: dict[str, Any]) -> None:
        # The state goes out before the error, so that whoever sees the error also sees
        # the controls set back to what runs.
        problem = ""
        runs = settings
        try:
            desmoker = make_desmoker(settings)
        except Exception as error:  # noqa: BLE001 - keep the old one running
            problem = _one_line(error, "cannot use these settings")
            if self._desmoker is not None:
                self.configured.emit(replace(self._state, asked=dict(settings)))
                self.failed.emit(problem)
                return
            desmoker, runs = _first_that_runs(settings)  # nothing runs yet
        self._desmoker = desmoker
        self._state = state_of(desmoker, runs, asked=settings)
        if problem:
            problem += f"; using {self._state.model_name} on {self._state.backend_name}"
        self.configured.emit(self._state)
        if problem:
            self.failed.emit(problem)
        if self._last is not None:  # show the current frame with the new settings at once
            self._process(replace(self._last, read_at=None))


def _first_that_runs(settings: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The Desmoker of the first of FALLBACKS applied to `settings` that can run, and those
    settings (the last, dcp, raises if even it cannot)."""
    for changes in FALLBACKS[:-1]:
        candidate = {**settings, **changes}
        if candidate == settings:  # what just failed (a backend already auto): not again
            continue
        try:
            return make_desmoker(candidate), candidate
        except Exception:  # noqa: BLE001 - the next one down
            log.info("fallback %s cannot run either", changes)
    candidate = {**settings, **FALLBACKS[-1]}
    return make_desmoker(candidate), candidate


def make_desmoker(settings: dict[str, Any]):
    """A Desmoker from the app's settings dict (model, backend, working_short_side,
    patch_size, strength)."""
    from engine.models import NoShippedWeights
    from engine.pipeline import Desmoker

    try:
        return Desmoker(
            settings.get("model", "dcp"),
            settings.get("backend", "auto"),
            working_short_side=settings.get("working_short_side") or None,
            patch_size=settings.get("patch_size") or None,
            strength=float(settings.get("strength", 1.0)),
        )
    except NoShippedWeights as missing:  # its advice names an API argument: the menu's
        from desmoke_app.gui.controls import no_weights_advice

        raise ValueError(no_weights_advice(missing.model)) from missing


def _one_line(error: BaseException, context: str) -> str:
    """One readable line: the error's own message (the engine's name the file), else context."""
    text = " ".join(str(error).split())
    if not text:
        return f"{context}: {type(error).__name__}"
    known = ("VideoError", "VideoOpenError", "VideoWriteError", "WeightsError")
    if type(error).__name__ in known or isinstance(error, (ValueError, OSError)):
        return text
    return f"{context}: {text}"


# -- threads ------------------------------------------------------------------------------
class WorkerThreads:
    """Starts the reader, the processor and the recorder on their own QThreads; stop()
    finishes a running recording and joins them."""

    def __init__(self) -> None:
        from desmoke_app.gui.recorder import Recorder

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
