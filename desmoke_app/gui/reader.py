"""The Reader: owns the video source on its own thread; opens it, paces playback, seeks and
steps, and hands each frame on (to the Processor) as a FramePacket.

Also what the GUI asks it and hears back: SourceSpec (what to open), SourceInfo (what
opened), Move (a seek, step or jump; moves asked while one runs merge into one).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import cast

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from desmoke_app.commands.common import missing_stream_message
from desmoke_app.gui.mailbox import Latest
from desmoke_app.gui.messages import one_line
from engine.video import (
    CaptureSource,
    FileSource,
    SeekableSource,
    VideoFrame,
    VideoSource,
    cut_short_warning,
)
from engine.video.file_source import MissingVideoStream, StreamChoice, missing_tail

log = logging.getLogger(__name__)

#: Playback further behind its clock than this re-anchors the clock instead of rushing.
MAX_LAG_S = 0.25
#: Playback behind its clock drops the frames it is late for (decoded, not converted), at
#: most this many in a row (frame intervals at the average rate): the frames handed on
#: come often enough to keep the processor busy (catching up 0.1 s of the clock at once,
#: 12 to 24 frames at 2x and 4x of 60 fps, handed frames on 5 times a second on 2 cores,
#: fewer than the processor took), and a move asked meanwhile waits for a few decodes at
#: most. Up to 4x, no more than the file's own frame rate is converted.
MAX_DROPPED_IN_A_ROW = 3
#: How the app picks another of a file's video streams, said in the notice about them.
VIDEO_STREAM_SWITCH = "View > Video stream shows another"


# -- what the GUI asks for and hears back, and what goes on to the processor ---------------
@dataclass(frozen=True)
class Move:
    """What the user asked for: frame `target` (None: from the frame shown) plus `delta`
    frames, then playing or paused as `play` says (None: as it was). A step pauses; a seek
    or a jump plays on; play/pause alone moves nowhere. They share one mailbox so that
    they happen in the order asked, however they merge."""

    target: int | None = None
    delta: int = 0
    play: bool | None = None

    def then(self, later: Move) -> Move:
        """This move followed by `later`, as one: a seek replaces where earlier moves went
        (the latest intent wins), steps and jumps add up (from the seek before them, if
        any), and the latest play/pause wins."""
        play = self.play if later.play is None else later.play
        if later.target is not None:
            return replace(later, play=play)
        return Move(self.target, self.delta + later.delta, play)


@dataclass
class SourceSpec:
    """What to open: kind "file" (path; which of its video streams, 0 the first, and the
    time (s) to show first), "capture" (device path + format, size, fps and pixel format,
    each None for the device's default), "demo"."""

    kind: str
    path: str = ""
    format: str | None = None
    size: tuple[int, int] | None = None
    fps: float | None = None
    autoplay: bool = False
    pixel_format: str | None = None
    video_stream: int = 0
    start_at: float = 0.0

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
    # The file's video streams (spec.video_stream the one shown); () for other sources.
    stream_choices: tuple[StreamChoice, ...] = ()


@dataclass
class FramePacket:
    source_id: int
    index: int
    time: float
    rgb: np.ndarray
    # Decoded (monotonic seconds); None for a frame processed again, whose time since
    # decoding is a pause or a configuration, not a delay the app adds: no latency for it.
    read_at: float | None = field(default_factory=time.monotonic)


def open_source(spec: SourceSpec) -> VideoSource:
    """A FileSource, CaptureSource or DemoSource for `spec`; raises VideoError/ValueError."""
    if spec.kind == "file":
        return FileSource(spec.path, video_stream=spec.video_stream)
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


def _notices_of(source: VideoSource) -> tuple[str, ...]:
    """The source's notices, the one about a file's several video streams saying how the
    app shows another."""
    if isinstance(source, FileSource):
        return source.notices_saying(VIDEO_STREAM_SWITCH)
    return source.notices


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

    _open_wanted = Signal()
    _move_wanted = Signal()
    _speed_wanted = Signal(float)
    _loop_wanted = Signal(bool)

    def __init__(self, deliver) -> None:
        """deliver(FramePacket): called on the reader thread (Processor.submit)."""
        super().__init__()
        self._deliver = deliver
        self._source: VideoSource | None = None
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
        self._opens = Latest()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._tick)
        self._open_wanted.connect(self._open_latest)
        self._move_wanted.connect(self._move)
        self._speed_wanted.connect(self._set_speed)
        self._loop_wanted.connect(self._set_loop)

    # Thread-safe requests (called from the GUI thread) ------------------------------------
    # Opens asked while one runs (probing a file or a device can take seconds) are merged,
    # the last one asked winning: clicking through the recent files opens the last one once,
    # not each of them in turn.
    def request_open(self, spec: SourceSpec) -> None:
        if self._opens.put(spec):
            self._open_wanted.emit()

    # Moves are merged while one runs (a seek can take a second): a held arrow key must not
    # queue a seek per key repeat, each run long after the key is released.
    def request_play(self, playing: bool) -> None:
        self._request_move(Move(play=bool(playing)))

    def request_seek(self, index: int) -> None:
        self._request_move(Move(target=int(index)))

    def request_step(self, delta: int) -> None:
        """`delta` frames on from the frame shown (or asked for: see Move.then); pauses. A
        live source ignores it (see _move)."""
        self._request_move(Move(delta=int(delta), play=False))

    def request_jump(self, frames: int) -> None:
        """As request_step, but playback goes on."""
        self._request_move(Move(delta=int(frames)))

    def _request_move(self, move: Move) -> None:
        if self._moves.put(move, Move.then):
            self._move_wanted.emit()

    def request_speed(self, speed: float) -> None:
        self._speed_wanted.emit(float(speed))

    def request_loop(self, loop: bool) -> None:
        self._loop_wanted.emit(bool(loop))

    # On the reader thread -------------------------------------------------------------------
    @Slot()
    def _open_latest(self) -> None:
        spec = self._opens.take()
        if spec is not None:
            self._open(spec)

    def _open(self, spec: SourceSpec) -> None:
        try:
            source = open_source(spec)
        except MissingVideoStream as error:  # only --video-stream asks for one: its words
            self.failed.emit(missing_stream_message(error))
            return
        except Exception as error:  # noqa: BLE001 - any failure: message, old source kept
            self.failed.emit(one_line(error, f"cannot open {spec.label}"))
            return
        self._close()
        self._source_id += 1
        self._source = source
        self._current = -1
        self._told_cut_short = self._told_jump = False
        asked = self._moves.take()  # a move was for the old source; play/pause still holds
        seekable = not source.is_live and isinstance(source, SeekableSource)
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
            source.stream_choices if isinstance(source, FileSource) else (),
        )
        self.opened.emit(self._info)
        notices = _notices_of(source)
        if notices:  # the bar shows one message: all of them in it
            self.warned.emit("; ".join(notices))
        shown = seekable and spec.start_at > 0 and self._seek_to(round(spec.start_at * source.fps))
        if asked is not None and asked.play is not None:
            self._set_playing(asked.play)
        elif source.is_live or spec.autoplay:
            self._set_playing(True)
        elif not shown:
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
            self._restart_clock()
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
        found = self._seekable.last_index
        return stated if found is None else min(stated, found)

    def _check_the_end(self) -> None:
        """Past the last decodable frame of a file: say so, once, if it ends well before
        the duration it states (a cut-short file plays to its cut, then loops or stops)."""
        info = self._info
        if info is None or not info.seekable or self._told_cut_short:
            return
        # None where the source has not met its end (a read after a seek that found nothing
        # ends nowhere in particular), or never ends early (the demo).
        ended = self._seekable.end_time
        if ended is None:
            return
        warning = cut_short_warning(info.spec.path, ended, self._stated_end())
        if warning:
            self._told_cut_short = True
            self.warned.emit(warning)

    def _stated_end(self) -> float:
        """The duration the video stream states (not the file's, which covers its audio)."""
        return self._seekable.video_duration

    def _restart_clock(self) -> None:
        """Playback (re)starts at the frame on screen: it is shown now, and the next is due
        one frame interval later. (Anchored at the next frame's time instead, that frame
        was due at once and superseded the loop's or seek's first frame before it could be
        processed.)"""
        self._anchor = (time.monotonic(), self._current_time if self._current >= 0 else 0.0)

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
        frame = self._read_next(self._catch_up_to())
        if not self._playing:  # reading failed: stopped, and said
            return
        if frame is None and not self._loop_or_stop():
            return
        self._timer.start(self._delay_ms())

    def _loop_or_stop(self) -> bool:
        """At the end of the video: back to the start when looping (True), else stop."""
        self._check_the_end()
        if self._loop and self._info.seekable and self._current > 0 and self._seek_to(0):
            self._restart_clock()
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

    def _read_next(self, until: float | None = None) -> VideoFrame | None:
        """Read and hand on the next frame (None at the end), or the one shown at `until`
        (s; see _read_and_deliver). After a gap (frames that do not decode, a pause) say so,
        and go on from it: waiting for its time would stall playback for as long as the
        gap, minutes maybe."""
        previous = self._current_time
        frame = self._read_and_deliver(until)
        if frame is not None and frame.after_gap:
            self._restart_clock()
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

    def _catch_up_to(self) -> float | None:
        """Playing, the media time (s) to read on to, dropping the frames before the one
        shown then, where the next frame is late (the clock is past it: at 2x and 4x,
        decoding and converting every frame can take longer than their time); None when on
        time. Only a file drops frames unconverted (a capture device paces itself; the demo
        draws each frame anyway)."""
        if not isinstance(self._source, FileSource):
            return None
        wall0, media0 = self._anchor
        now = time.monotonic()
        clock = media0 + (now - wall0) * self._speed
        next_time = self._media_time()
        if clock <= next_time:
            return None
        return min(clock, next_time + MAX_DROPPED_IN_A_ROW / self._info.fps)

    def _read_and_deliver(self, until: float | None = None) -> VideoFrame | None:
        """The next frame, handed on; None at the end, or where reading failed (said, and
        stopped: _read_failed tells which). until: read on to the frame shown then (a
        FileSource drops the frames before it unconverted)."""
        self._read_failed = False
        try:
            frame = self._source.read() if until is None else self._source.read(until)
        except Exception as error:  # noqa: BLE001 - a vanished device or broken stream
            self._read_failed = True
            self._fail_during_playback(error)
            return None
        if frame is not None:
            self._hand_on(frame)
        return frame

    def _fail_during_playback(self, error: BaseException) -> None:
        self._stop_broken(one_line(error, "reading the source failed"))

    def _stop_broken(self, message: str) -> None:
        self._set_playing(False)
        self.failed.emit(message)
        self.broke.emit()

    def _hand_on(self, frame: VideoFrame) -> None:
        self._current, self._current_time = frame.index, frame.time
        self._deliver(FramePacket(self._source_id, frame.index, frame.time, frame.rgb))

    @Slot()
    def _move(self) -> None:
        move = self._moves.take()
        if move is None or self._source is None:
            return
        if not self._info.seekable:
            self._move_live(move)
            return
        if move.play is False:  # a step shows its frame paused: stop first
            self._set_playing(False)
        self._go(move)
        if move.play:
            self._set_playing(True)

    def _move_live(self, move: Move) -> None:
        """A live source has no frame to step, jump or seek to: only play/pause counts. A
        step's pause is no pause here: a stray arrow key froze the live view (a still image
        that looks live, in surgery). A pause merged with a step is lost with it (the view
        stays live, the safe side); play always counts (no step asks for it)."""
        if move.play or (move.play is False and move.target is None and not move.delta):
            self._set_playing(move.play)

    def _go(self, move: Move) -> None:
        if move.target is None and move.play is False and move.delta == 1:
            self._step_forward()  # the next frame decodes: cheaper than any seek
        elif move.target is not None or move.delta:
            self._seek_and_play_on(self._landing(move))

    def _landing(self, move: Move) -> int:
        """The frame `move` goes to. From the shown frame's time, not its count: frames of a
        variable frame rate file are numbered by count as they play, but seeks go by time."""
        start = move.target
        if start is None:
            start = round(self._current_time * self._info.fps) if self._current >= 0 else 0
        return start + move.delta

    def _step_forward(self) -> bool:
        """Show the next frame; False where there is none (the end, or a failed read)."""
        if self._read_next() is not None:
            return True
        if not self._read_failed:
            self._check_the_end()
            self._stop_at_the_end()
        return False

    def _seek_and_play_on(self, index: int) -> None:
        if not self._seek_to(index):
            self._set_playing(False)
        elif self._playing:
            self._restart_clock()
            self._timer.start(self._delay_ms())

    def _seek_to(self, index: int) -> bool:
        """Show frame `index`; where the file ends before it (cut short), its last frame
        that decodes (the source finds it), and say so. False when no frame could be shown
        (said too)."""
        wanted = min(max(0, index), max(0, (self._info.frame_count or 1) - 1))
        try:
            frame = self._seekable.seek_frame(wanted)
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
        if self._told_cut_short:  # once a source: every End press or drag past it is not news
            return
        name, fps = self._name(), self._info.fps
        asked, ended = wanted / fps, self._seekable.end_time
        where = f"{name}: no frame at {asked:.2f} s: "
        warning = cut_short_warning(self._info.spec.path, ended, self._stated_end())
        if warning:
            self._told_cut_short = True  # not again when playback reaches the cut
            self.warned.emit(warning.replace(f"{name}: ", where, 1))
        elif missing_tail(ended, asked):  # no duration stated: the gap to the time asked
            self._told_cut_short = True
            self.warned.emit(f"{where}the video ends at {ended:.2f} s")

    @property
    def _seekable(self) -> SeekableSource:
        """The open source, as the seekable one it is where info.seekable: only used then."""
        return cast(SeekableSource, self._source)

    def _name(self) -> str:
        return Path(self._info.spec.path).name
