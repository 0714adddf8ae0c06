"""Playback behind its clock (2x, 4x on a slow CPU) drops the frames it is late for:
FileSource.read(until) decodes them but does not convert them to RGB, and numbers and
times what follows exactly as reading every frame does; the Reader reads on to the frame
its clock has reached. Deterministic: a fake clock, no timing asserted on the real one."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import desmoke_app.gui.reader as reader_module
import engine.video.file_source as file_source
from desmoke_app.gui.reader import MAX_DROPPED_IN_A_ROW, Reader, SourceSpec
from engine.video import FileSource
from tests.clips import (
    break_packet,
    corrupt_clip,
    damaged_clip,
    make_index_clip,
    make_vfr_clip,
    read_index,
)

FPS = 25


@pytest.fixture
def conversions(monkeypatch) -> list[int]:
    """One entry a frame converted to RGB (FileSource's displayed_rgb)."""
    converted: list[int] = []
    displayed_rgb = file_source.displayed_rgb

    def counted(frame, sar):
        converted.append(1)
        return displayed_rgb(frame, sar)

    monkeypatch.setattr(file_source, "displayed_rgb", counted)
    return converted


def _constant_rate(folder: Path) -> Path:
    return make_index_clip(folder / "cfr.mp4", 60, fps=FPS)


def _variable_rate(folder: Path) -> Path:
    times = [0, 0.03, 0.1, 0.12, 0.4, 0.41, 0.5, 0.9, 1.0, 1.05, 1.3, 1.31, 1.32, 1.6, 2.2]
    return make_vfr_clip(folder / "vfr.mp4", times)


def _raw_stream(folder: Path) -> Path:
    return make_index_clip(folder / "raw.h264", 60, fps=FPS, bframes=2)


def _raw_stream_with_a_gap(folder: Path) -> Path:
    whole = make_index_clip(folder / "whole.h264", 72, fps=FPS, gop=12, bframes=0)
    return break_packet(whole, folder / "broken.h264", packet=53)


def _cut_short(folder: Path) -> Path:
    whole = make_index_clip(folder / "whole.mp4", 100, fps=FPS)
    return corrupt_clip(whole, folder / "cut.mp4", keep=0.5, flips=0)


def _anamorphic_and_turned(folder: Path) -> Path:
    return make_index_clip(
        folder / "turned.mp4", 40, size=(96, 180), rotation=90, sample_aspect_ratio=Fraction(4, 3)
    )


def _after_a_gap(folder: Path) -> Path:
    return damaged_clip(folder)  # frames to about 1.8 s, then from about 26 s


CLIPS = {
    "constant rate": _constant_rate,
    "variable rate": _variable_rate,
    "raw h264": _raw_stream,
    "raw h264, a packet that does not decode": _raw_stream_with_a_gap,
    "cut short": _cut_short,
    "anamorphic and rotated": _anamorphic_and_turned,
    "a gap of 24 s": _after_a_gap,
}


def expected_reads(every: list, untils: list[float]) -> list:
    """What read(until) returns for each of `untils` in turn, from the frames read() gives
    (`every`): the next frame, or the last one after it that starts by `until`, never past
    a frame after a gap; None at the end."""
    returned, position = [], 0
    for until in untils:
        if position == len(every):
            returned.append(None)
            continue
        last = position
        if not every[last].after_gap:
            while (
                last + 1 < len(every)
                and not every[last + 1].after_gap
                and every[last + 1].time <= until
            ):
                last += 1
        returned.append(every[last])
        position = last + 1
    return returned


def untils_for(every: list, seed: int) -> list[float]:
    """Clock times from the first frame's to past the last, in random steps (some of which
    fall behind the frames read: no frame dropped then)."""
    rng = random.Random(seed)
    end = every[-1].time + 1.0
    step = max(end / 40, 0.05)
    untils, until = [], 0.0
    while until < end:
        untils.append(until)
        until += rng.uniform(-0.2, 3.0) * step
    return untils + [end] * (len(every) + 1)


def stamp(frame) -> tuple | None:
    return None if frame is None else (frame.index, frame.time, frame.after_gap)


@pytest.mark.parametrize("kind", list(CLIPS))
def test_read_until_numbers_frames_as_reading_every_frame(tmp_path, conversions, kind):
    path = CLIPS[kind](tmp_path)
    with FileSource(path) as source:
        every = list(source.frames())
        end = (source.last_index, source.end_time)
    pictures = {frame.index: frame.rgb for frame in every}
    untils = untils_for(every, seed=len(every))
    wanted = expected_reads(every, untils)
    conversions.clear()
    with FileSource(path) as source:
        got = [source.read(until) for until in untils]
        assert (source.last_index, source.end_time) == end
    assert [stamp(f) for f in got] == [stamp(f) for f in wanted]
    assert sum(f is not None for f in got) < len(every)  # some were dropped
    assert len(conversions) == sum(f is not None for f in got)  # only those returned
    for frame in filter(None, got):
        assert np.array_equal(frame.rgb, pictures[frame.index]), f"frame {frame.index}"


def test_read_until_goes_on_after_a_seek_as_read_does(tmp_path):
    path = _raw_stream(tmp_path)
    with FileSource(path) as source:
        every = {frame.index: frame for frame in source.frames()}
        source.seek_frame(20)
        frame = source.read(until=every[30].time + 0.001)
        assert (frame.index, read_index(frame.rgb)) == (30, 30)
        assert source.read().index == 31
        assert source.read(until=0.0).index == 32  # the clock behind: the next frame


def test_read_until_keeps_the_frame_after_a_gap(tmp_path):
    """The frame after a gap is returned (marked), not dropped over: the reader re-anchors
    its clock there and says the video jumps."""
    path = _after_a_gap(tmp_path)
    with FileSource(path) as source:
        every = list(source.frames())
        after = next(frame for frame in every if frame.after_gap)
        before = every[every.index(after) - 1]
        source.seek_frame(0)
        assert source.read(until=1000.0).index == before.index
        shown = source.read(until=1000.0)
        assert (shown.index, shown.after_gap) == (after.index, True)


# -- the Reader ----------------------------------------------------------------------------
class FakeClock:
    """time.monotonic for the reader: moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def play_with_slow_reads(qtbot, monkeypatch, clip: Path, speed: float, read_s: float):
    """Play `clip` at `speed` to its end with a fake clock on which every read takes
    `read_s`, the reader's timer fired at its due times; (delivered packets, wall time to
    the end)."""
    clock = FakeClock()
    monkeypatch.setattr(reader_module, "time", SimpleNamespace(monotonic=clock))
    read = FileSource.read

    def slow_read(self, *args):
        clock.now += read_s
        return read(self, *args)

    monkeypatch.setattr(FileSource, "read", slow_read)
    delivered = []
    reader = Reader(delivered.append)
    try:
        reader._open(SourceSpec("file", str(clip)))
        reader._set_speed(speed)
        began = clock.now
        reader._set_playing(True)
        for _ in range(10_000):
            if not reader._playing:
                break
            clock.now += reader._timer.interval() / 1000  # the timer fires when due
            reader._tick()
        return delivered, clock.now - began
    finally:
        reader._close()


@pytest.fixture(scope="module")
def index_clip(tmp_path_factory) -> Path:
    """48 frames at 25 fps: 1.92 s."""
    return make_index_clip(tmp_path_factory.mktemp("skip") / "index.mp4", 48, fps=FPS)


def test_the_reader_behind_its_clock_drops_frames_unconverted(
    qtbot, monkeypatch, conversions, index_clip
) -> None:
    """4x at 25 fps asks for a frame every 10 ms; each read takes 30 ms. Every frame was
    read, converted and handed on, and 1.92 s of video took 1.44 s instead of 0.48 s. Now
    it keeps time: each read goes on to the frame due."""
    delivered, wall = play_with_slow_reads(qtbot, monkeypatch, index_clip, 4.0, 0.03)
    indices = [packet.index for packet in delivered]
    assert indices == sorted(set(indices)) and indices[-1] == 47  # on to the last frame
    assert len(indices) < 48 / 2  # most frames dropped
    assert max(np.diff(indices)) <= MAX_DROPPED_IN_A_ROW + 1
    assert len(conversions) == len(delivered)  # the dropped ones never converted
    assert all(read_index(packet.rgb) == packet.index for packet in delivered)
    assert wall < 1.2 * 1.92 / 4  # kept its clock (the last read's 30 ms to spare)


def test_the_reader_on_time_drops_nothing(qtbot, monkeypatch, conversions, index_clip) -> None:
    delivered, wall = play_with_slow_reads(qtbot, monkeypatch, index_clip, 1.0, 0.03)
    assert [packet.index for packet in delivered] == list(range(48))
    assert len(conversions) == 48
    assert wall == pytest.approx(1.92, abs=0.05)


def test_the_reader_far_behind_still_hands_frames_on_often(
    qtbot, monkeypatch, conversions, index_clip
) -> None:
    """Reads of 80 ms at 4x: 8 frames are due a read, more than the reader drops in a row
    (the processor would wait for frames while it decoded them): it falls behind its clock,
    as it must, but hands on every (MAX_DROPPED_IN_A_ROW + 1)th frame or closer."""
    delivered, _ = play_with_slow_reads(qtbot, monkeypatch, index_clip, 4.0, 0.08)
    indices = [packet.index for packet in delivered]
    steps = np.diff(indices)  # 1 where the clock started again (MAX_LAG_S behind)
    assert max(steps) == MAX_DROPPED_IN_A_ROW + 1 and np.median(steps) == max(steps)
    assert len(conversions) == len(delivered)


def play_timed(monkeypatch, clip: Path, ticks: int, before_tick=None) -> list[tuple[float, int]]:
    """Play `clip` looping for `ticks` timer firings on a fake clock (reads take no time);
    (clock time, index) of each frame handed on. before_tick(reader, tick) may move it."""
    clock = FakeClock()
    monkeypatch.setattr(reader_module, "time", SimpleNamespace(monotonic=clock))
    timed: list[tuple[float, int]] = []
    reader = Reader(lambda packet: timed.append((clock.now, packet.index)))
    try:
        reader._open(SourceSpec("file", str(clip)))
        reader._set_loop(True)
        reader._set_playing(True)
        for tick in range(ticks):
            if before_tick is not None:
                before_tick(reader, tick)
            clock.now += reader._timer.interval() / 1000
            reader._tick()
        return timed
    finally:
        reader._close()


def shown_for(timed: list[tuple[float, int]], index: int, occurrence: int) -> float:
    """How long (s) the `occurrence`th showing of frame `index` stayed before the next frame."""
    at = [i for i, (_, shown) in enumerate(timed) if shown == index][occurrence]
    return timed[at + 1][0] - timed[at][0]


def test_the_first_frame_after_a_loop_is_shown_its_full_time(qtbot, monkeypatch, index_clip):
    """Going back to the start, frame 0 was anchored as if already past: frame 1 followed
    it at once, so the newest-frame processor dropped frame 0 every loop."""
    timed = play_timed(monkeypatch, index_clip, 48 * 2 + 5)
    assert [index for _, index in timed[:50]] == list(range(48)) + [0, 1]
    assert shown_for(timed, 0, occurrence=1) == pytest.approx(1 / FPS, abs=1e-6)


def test_a_seek_while_playing_shows_its_frame_its_full_time(qtbot, monkeypatch, index_clip):
    def seek_once(reader, tick):
        if tick == 5:
            reader._seek_and_play_on(30)

    timed = play_timed(monkeypatch, index_clip, 20, before_tick=seek_once)
    assert 30 in [index for _, index in timed] and 31 in [index for _, index in timed]
    assert shown_for(timed, 30, occurrence=0) == pytest.approx(1 / FPS, abs=1e-6)
