"""The main window driven by qtbot: open, play, pause, seek, step, switch model and backend
while playing, a live (lavfi) source, and bad input that must leave the app running."""

# The shared fixtures (clip, window) are imported from tests/gui_support.py, so their
# use as test arguments reads to ruff as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from PySide6.QtCore import QCoreApplication, Qt

from engine.backends.torch_backend import TorchBackend
from engine.models import build_network, default_config, save_weights
from engine.video import FileSource
from tests.backend_failures import lost_device, out_of_gpu_memory
from tests.clips import corrupt_clip, make_index_clip, make_vfr_clip
from tests.gui_support import (
    CLIP_FRAMES,
    CLIP_SIZE,
    WAIT_MS,
    clip,  # noqa: F401 (fixture)
    damaged_clip,
    make_settings,
    open_clip,
    pane_indices,
    wait_for_index,
    wait_holding_the_gui,
    window,  # noqa: F401 (fixture)
)

LIVE = "testsrc=size=160x96:rate=30"


def test_open_shows_frame_zero_in_all_panes(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    info = window.source_info
    assert (info.width, info.height) == CLIP_SIZE and info.frame_count == CLIP_FRAMES
    assert window.panes["dark_channel"].array().shape == (CLIP_SIZE[1], CLIP_SIZE[0])
    assert window.status_labels["source"].text() == clip.name
    assert window.transport.slider.maximum() == CLIP_FRAMES - 1
    assert not window.is_playing  # a file opens paused unless asked to play


@pytest.mark.parametrize("targets", [(30, 7, 47, 0)])
def test_seek_shows_the_frame_asked_for(qtbot, window, clip, targets) -> None:
    open_clip(qtbot, window, clip)
    for target in targets:
        window.seek_frame(target)
        wait_for_index(qtbot, window, target)
        assert f"frame {target} / {CLIP_FRAMES}" in window.transport.time_label.text()
        assert window.transport.slider.value() == target


def test_slider_and_keys_seek(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    window.transport.slider.setValue(20)  # as a user drag would
    wait_for_index(qtbot, window, 20)
    window.seek_last()  # End
    wait_for_index(qtbot, window, CLIP_FRAMES - 1)
    window.seek_frame(0)  # Home
    wait_for_index(qtbot, window, 0)


def test_step_forward_and_back(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    window.seek_frame(10)
    wait_for_index(qtbot, window, 10)
    for delta, expected in ((1, 11), (1, 12), (-1, 11), (-1, 10), (-1, 9)):
        window.step(delta)
        wait_for_index(qtbot, window, expected)


class HeldSeeks:
    """FileSource.seek_frame counted, the first call held until release(): the moves asked
    for meanwhile pile up as they do behind a slow seek (a second on a 1080p file with one
    keyframe)."""

    def __init__(self, monkeypatch) -> None:
        self.targets: list[int] = []
        self.started, self._released = threading.Event(), threading.Event()
        seek_frame = FileSource.seek_frame

        def held(source, index):
            self.targets.append(index)
            self.started.set()
            self._released.wait(WAIT_MS / 1000)
            return seek_frame(source, index)

        monkeypatch.setattr(FileSource, "seek_frame", held)

    def hold(self, first_move) -> None:
        """Run first_move() and wait until its seek is under way."""
        first_move()
        wait_holding_the_gui(self.started.is_set)

    def release(self) -> None:
        self._released.set()


@pytest.mark.parametrize(
    ("moves", "landing"),
    [
        ([("step", -1)] * 29, 10),  # Left held: key repeats while the first seek runs
        ([("step", -1)] * 20 + [("seek", 0)], 0),  # then Home: it wins over the steps
        ([("seek", 20), ("step", 1), ("step", 1)], 22),  # steps count from the seek
    ],
    ids=["steps add up", "a seek replaces them", "steps after a seek"],
)
def test_moves_asked_during_a_seek_make_one_seek(
    qtbot, window, clip, monkeypatch, moves, landing
) -> None:
    open_clip(qtbot, window, clip)
    window.seek_frame(40)
    wait_for_index(qtbot, window, 40)
    seeks = HeldSeeks(monkeypatch)
    try:
        seeks.hold(lambda: window.step(-1))
        for kind, value in moves:
            {"step": window.step, "seek": window.seek_frame}[kind](value)
    finally:
        seeks.release()
    wait_for_index(qtbot, window, landing)
    qtbot.wait(200)  # any seek still queued would land by now
    assert seeks.targets == [39, landing] and window.current.index == landing
    window.step(1)  # one frame on decodes the next: no seek
    wait_for_index(qtbot, window, landing + 1)
    assert seeks.targets == [39, landing]


def opened_path(window) -> str | None:
    return window.source_info.spec.path if window.source_info is not None else None


def test_opens_asked_while_one_runs_open_only_the_last(
    qtbot, window, tmp_path, monkeypatch
) -> None:
    """Clicking through four recent files while the first still opens opened each in turn
    (seconds each for a slow probe); now the last one asked is the one opened next."""
    from desmoke_app.gui import reader as reader_module

    clips = [make_index_clip(tmp_path / f"c{i}.mp4", n_frames=4) for i in range(4)]
    opened = []
    first_open = threading.Event()
    real_open = reader_module.open_source

    def slow_open(spec):
        opened.append(spec.path)
        first_open.set()
        time.sleep(0.3)  # a probe that takes a while
        return real_open(spec)

    monkeypatch.setattr(reader_module, "open_source", slow_open)
    window.open_file(str(clips[0]))
    assert first_open.wait(5)  # the reader is busy opening the first
    for later in clips[1:]:
        window.open_file(str(later))
    qtbot.waitUntil(lambda: opened_path(window) == str(clips[-1]), timeout=WAIT_MS)
    qtbot.wait(500)  # an open still queued would have started by now
    assert opened == [str(clips[0]), str(clips[-1])]


@pytest.mark.parametrize(
    ("seconds", "presses", "landing"), [(1.0, 3, 175), (-1.0, 4, 0), (-1.0, 5, 0)]
)
def test_jumps_pressed_during_a_seek_add_up(
    qtbot, window, tmp_path, monkeypatch, seconds, presses, landing
) -> None:
    """Shift+Right three times from frame 100 is 3 s on (frame 175), however fast the
    presses come: not 1 s on from the frame shown when the last one came."""
    long = make_index_clip(tmp_path / "long.mp4", 200, CLIP_SIZE, 25, gop=50)
    open_clip(qtbot, window, long)
    window.seek_frame(100)
    wait_for_index(qtbot, window, 100)
    seeks = HeldSeeks(monkeypatch)
    try:
        seeks.hold(lambda: window.jump(seconds))
        for _ in range(presses - 1):
            window.jump(seconds)
    finally:
        seeks.release()
    wait_for_index(qtbot, window, landing)
    qtbot.wait(200)
    assert window.current.index == landing and len(seeks.targets) == 2


def test_play_then_pause_holds_a_frame(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    window.play()
    qtbot.waitUntil(lambda: window.is_playing, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.current.index >= 8, timeout=WAIT_MS)
    window.pause()
    qtbot.waitUntil(lambda: not window.is_playing, timeout=WAIT_MS)
    qtbot.wait(300)  # anything in flight lands
    held = window.current.index
    qtbot.wait(300)
    assert window.current.index == held
    assert pane_indices(window) == (held, held, held)


def test_real_time_pacing(qtbot, window, clip) -> None:
    """Playback follows the clock: about 25 frames per second of wall time, not faster."""
    open_clip(qtbot, window, clip)
    window.transport.loop.setChecked(False)
    began = time.monotonic()
    window.play()
    qtbot.waitUntil(lambda: window.current.index >= 25, timeout=WAIT_MS)
    elapsed = time.monotonic() - began
    assert elapsed >= 0.85  # 25 frames at 25 fps: one second (a little slack for timers)
    window.pause()


def test_play_to_the_end_stops_without_loop(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    window.transport.loop.setChecked(False)
    window.seek_frame(CLIP_FRAMES - 6)
    wait_for_index(qtbot, window, CLIP_FRAMES - 6)
    window.play()
    qtbot.waitUntil(lambda: window.is_playing, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.is_playing, timeout=WAIT_MS)
    wait_for_index(qtbot, window, CLIP_FRAMES - 1)


def test_a_cut_short_file_says_so_at_its_cut(qtbot, window, tmp_path) -> None:
    whole = make_index_clip(tmp_path / "whole.mp4", 100, CLIP_SIZE, 25)  # states 4 s
    cut = corrupt_clip(whole, tmp_path / "cut.mp4", keep=0.5, flips=0)
    open_clip(qtbot, window, cut)
    assert window.message_bar.text() == ""  # opening it: nothing to say yet
    window.transport.loop.setChecked(False)
    window.transport.speed.setCurrentIndex(window.transport.speed.findData(4.0))
    window.play()
    qtbot.waitUntil(lambda: "cut short" in window.message_bar.text(), timeout=WAIT_MS)
    assert window.message_bar.level == "warning" and "4.00 s" in window.message_bar.text()


def test_a_monochrome_file_is_said_at_open(qtbot, window, tmp_path) -> None:
    """FileSource's notices (here: a grey video, which the models darken) reach the bar."""
    grey = make_index_clip(tmp_path / "grey.mkv", 4, CLIP_SIZE, 25, codec="ffv1", pix_fmt="gray")
    open_clip(qtbot, window, grey)
    qtbot.waitUntil(lambda: "monochrome" in window.message_bar.text(), timeout=WAIT_MS)
    assert window.message_bar.level == "warning"
    assert window.message_bar.text().startswith("grey.mkv: a monochrome video")


def test_a_seek_past_the_cut_shows_the_last_frame_and_says_so(qtbot, window, tmp_path) -> None:
    """A file cut short (here to half its bytes: about a quarter of its 10 s decodes): a
    seek past its cut shows its last frame at once, with why; the end it states is not
    taken for a frame to step back from one by one (silently, for half a minute)."""
    whole = make_index_clip(tmp_path / "whole.mp4", 250, CLIP_SIZE, 25)  # states 10 s
    cut = corrupt_clip(whole, tmp_path / "cut.mp4", keep=0.5, flips=0)
    with FileSource(cut) as source:
        last = list(source.frames())[-1]
    assert last.index < 240 - 64  # further from the end than the old step-back reached
    open_clip(qtbot, window, cut)
    window.seek_frame(240)
    wait_for_index(qtbot, window, last.index, timeout=5000)
    ends = f"the video ends at {last.time + 0.04:.2f} s, though the file states 10.00 s"
    assert window.message_bar.text().startswith(f"cut.mp4: no frame at 9.60 s: {ends}")
    assert window.message_bar.level == "warning"
    window.message_bar.hide()
    window.step(1)  # nothing after it: the end, not a cut "at 0.04 s" (the old frame's time)
    qtbot.wait(300)
    assert window.current.index == last.index and not window.message_bar.isVisible()
    window.seek_frame(5)
    wait_for_index(qtbot, window, 5)
    window.seek_last()  # the end found once: straight to it, and not said again
    wait_for_index(qtbot, window, last.index, timeout=2000)
    qtbot.wait(200)
    assert not window.message_bar.isVisible()
    window.seek_frame(10)  # the frames before the cut seek as ever
    wait_for_index(qtbot, window, 10)


def test_a_jump_over_undecodable_frames_does_not_stall(qtbot, window, tmp_path) -> None:
    """Frames that do not decode from 1.8 s to 26 s: playback goes on from 26 s at once,
    with a word, instead of waiting the 24 s out with no frame and no message."""
    damaged = damaged_clip(tmp_path)
    open_clip(qtbot, window, damaged)
    window.transport.loop.setChecked(False)
    window.play()
    qtbot.waitUntil(lambda: window.current.time > 20, timeout=6000)
    text = window.message_bar.text()
    assert text.startswith("damaged.mp4: the video jumps from 1.8") and "to 26." in text
    assert window.message_bar.level == "warning"
    window.pause()
    qtbot.waitUntil(lambda: not window.is_playing, timeout=WAIT_MS)
    window.seek_frame(5)  # and seeks still work
    wait_for_index(qtbot, window, 5)


def test_loop_goes_back_to_the_start(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    window.transport.loop.setChecked(True)
    window.transport.speed.setCurrentIndex(window.transport.speed.findData(4.0))
    window.seek_frame(CLIP_FRAMES - 4)
    wait_for_index(qtbot, window, CLIP_FRAMES - 4)
    window.play()
    qtbot.waitUntil(lambda: window.current.index < 10, timeout=WAIT_MS)
    assert window.is_playing
    window.pause()


def test_seek_while_playing(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    window.play()
    qtbot.waitUntil(lambda: window.current.index >= 3, timeout=WAIT_MS)
    window.seek_frame(40)
    qtbot.waitUntil(lambda: window.current.index >= 40, timeout=WAIT_MS)
    window.pause()
    qtbot.waitUntil(lambda: not window.is_playing, timeout=WAIT_MS)
    qtbot.wait(200)
    index = window.current.index
    assert index >= 40 and pane_indices(window) == (index, index, index)


@pytest.fixture
def fast_weights(tmp_path):
    """A small untrained 'fast' network: exercises the network path, not desmoking quality."""
    torch.manual_seed(0)
    arch = {"widths": [8, 16, 32]}
    net = build_network("fast", arch)
    return save_weights(tmp_path / "tiny_fast.safetensors", net, default_config("fast", arch))


def test_switch_model_and_backend_while_playing(qtbot, window, clip, fast_weights) -> None:
    open_clip(qtbot, window, clip)
    window.play()
    qtbot.waitUntil(lambda: window.is_playing, timeout=WAIT_MS)
    steps = [
        (str(fast_weights), "torch", "fast", "torch"),
        (str(fast_weights), "onnxruntime", "fast", "onnxruntime"),
        ("dcp", "auto", "dcp", "none"),
    ]
    for model, backend, model_name, backend_name in steps:
        window.set_processing(model=model, backend=backend)
        qtbot.waitUntil(
            lambda m=model_name, b=backend_name: (
                window.processor_state.model_name == m and window.processor_state.backend_name == b
            ),
            timeout=30000,
        )
        seen = window.current.index
        qtbot.waitUntil(lambda s=seen: window.current.index != s, timeout=WAIT_MS)  # still playing
        assert window.is_playing
        assert backend_name in window.status_labels["backend"].text()
    assert window.message_bar.text() == ""


def test_backend_that_cannot_load_keeps_the_old_one(qtbot, window, clip, fast_weights) -> None:
    open_clip(qtbot, window, clip)
    window.set_processing(model=str(fast_weights), backend="torch")
    qtbot.waitUntil(lambda: window.processor_state.backend_name == "torch", timeout=30000)
    window.play()
    window.set_processing(backend="tensorrt")  # not installed here
    qtbot.waitUntil(lambda: "tensorrt" in window.message_bar.text(), timeout=WAIT_MS)
    assert window.processor_state.backend_name == "torch"
    assert window.controls.settings()["backend"] == "torch"  # the controls show what runs
    seen = window.current.index
    qtbot.waitUntil(lambda: window.current.index != seen, timeout=WAIT_MS)
    window.pause()


def test_a_file_that_is_no_model_is_not_remembered(qtbot, window, clip, fast_weights, tmp_path):
    """Picking a training checkpoint as the model: an error, the old model kept, nothing
    saved; the error goes once a model that runs is chosen, and that one is saved."""
    open_clip(qtbot, window, clip)
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(b"\x80\x04 a pickle, never loaded")
    window.set_processing(model=str(checkpoint))
    qtbot.waitUntil(lambda: "training checkpoint" in window.message_bar.text(), timeout=WAIT_MS)
    assert window.processor_state.model_name == "dcp"
    assert window.settings.processing()["model"] == "dcp"  # not the checkpoint
    window.set_processing(model=str(fast_weights), backend="torch")
    qtbot.waitUntil(lambda: window.processor_state.model_name == "fast", timeout=30000)
    assert window.message_bar.text() == ""  # the stale error is gone
    assert window.settings.processing()["model"] == str(fast_weights)


@pytest.mark.parametrize(
    "method, failure, warning, backend_after",
    [
        ("process_frame", out_of_gpu_memory, "out of GPU memory for 160x96", "torch"),
        ("run", lost_device, "torch stopped working", "onnxruntime"),
    ],
)
def test_failure_mid_run_is_shown_and_playback_goes_on(
    qtbot, window, clip, fast_weights, monkeypatch, method, failure, warning, backend_after
) -> None:
    """The fused GPU path out of memory (pre/post-processing moves to the CPU) or a backend
    that stops working (the next one takes over): a warning, and playback goes on."""
    monkeypatch.setattr(TorchBackend, method, failure, raising=False)
    open_clip(qtbot, window, clip)
    window.set_processing(model=str(fast_weights), backend="torch")
    qtbot.waitUntil(lambda: warning in window.message_bar.text(), timeout=30000)
    assert window.message_bar.level == "warning"
    assert window.processor_state.backend_name == backend_after
    assert backend_after in window.status_labels["backend"].text()
    window.play()
    seen = window.current.index
    qtbot.waitUntil(lambda: window.current.index != seen, timeout=WAIT_MS)
    window.pause()


def test_live_lavfi_source(qtbot, window) -> None:
    window.open_capture(LIVE, format="lavfi")
    qtbot.waitUntil(lambda: window.source_info is not None, timeout=WAIT_MS)
    info = window.source_info
    assert info.is_live and not info.seekable and (info.width, info.height) == CLIP_SIZE
    qtbot.waitUntil(
        lambda: window.current is not None and window.current.index >= 15, timeout=WAIT_MS
    )
    assert window.is_playing
    assert not window.transport.slider.isEnabled()
    window.export_dialog()  # Ctrl+E: says why not, and what keeps a live capture
    assert window.message_bar.text() == (
        "export works on video files: a live capture is kept by recording the view (Ctrl+R)"
    )
    assert "live" in window.status_labels["source"].text()
    assert window.timeline.live  # the smoke level scrolls over the last minute
    qtbot.waitUntil(lambda: len(window.timeline._live_levels) >= 10, timeout=WAIT_MS)
    window.pause()
    qtbot.waitUntil(lambda: not window.is_playing, timeout=WAIT_MS)


def test_live_source_drops_frames_when_processing_is_slow(qtbot, window, monkeypatch) -> None:
    """The newest frame wins: a processor slower than the device drops, never queues."""
    processor = window.workers.processor
    window.open_capture("testsrc=size=160x96:rate=60", format="lavfi")
    qtbot.waitUntil(lambda: window.current is not None, timeout=WAIT_MS)
    original = processor._desmoker.process
    processed = []

    def slow(frame):
        time.sleep(0.05)  # 20 fps of processing against a 60 fps source
        processed.append(frame)
        return original(frame)

    monkeypatch.setattr(processor._desmoker, "process", slow)
    start = window.current.index
    qtbot.waitUntil(lambda: window.current.index >= start + 40, timeout=WAIT_MS)
    shown = len(processed)
    assert processor.dropped > 10
    assert shown < window.current.index - start + 5  # far fewer processed than read
    # The status bar's latency (decoded to shown) includes the 50 ms of processing.
    window._refresh_status()
    latency = window.status_labels["latency"].text()
    assert latency.startswith("latency ") and 50 <= int(latency.split()[1]) < 5000
    window.pause()


def test_a_paused_frame_processed_again_adds_no_latency(qtbot, window, clip, monkeypatch) -> None:
    """A new setting re-processes the paused frame: its time since decoding is the pause,
    not a delay the app adds, so it is no latency sample (its stage times still are)."""
    open_clip(qtbot, window, clip)
    added = []
    monkeypatch.setattr(window.performance, "add", added.append)
    window.set_processing(strength=0.8)
    qtbot.waitUntil(lambda: len(added) == 1, timeout=WAIT_MS)
    assert "latency" not in added[0] and added[0]["total"] > 0
    window.step(1)  # a frame decoded now: its latency counts
    qtbot.waitUntil(lambda: len(added) == 2, timeout=WAIT_MS)
    assert added[1]["latency"] > 0


def test_bad_file_shows_a_message_and_keeps_the_clip(qtbot, window, clip, tmp_path) -> None:
    open_clip(qtbot, window, clip)
    window.seek_frame(12)
    wait_for_index(qtbot, window, 12)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    window.open_file(bad)
    qtbot.waitUntil(lambda: "broken.mp4" in window.message_bar.text(), timeout=WAIT_MS)
    assert window.source_info.spec.path == str(clip)  # the clip stays open
    window.seek_frame(20)  # and the app still works
    wait_for_index(qtbot, window, 20)
    window.open_file(tmp_path / "missing.mp4")
    qtbot.waitUntil(lambda: "missing.mp4" in window.message_bar.text(), timeout=WAIT_MS)


def test_bad_capture_device_shows_a_message(qtbot, window) -> None:
    window.open_capture("/dev/video-none", format="v4l2")
    qtbot.waitUntil(lambda: "video-none" in window.message_bar.text(), timeout=WAIT_MS)
    assert window.source_info is None


def test_demo_plays(qtbot, window) -> None:
    window.open_demo()
    qtbot.waitUntil(
        lambda: window.current is not None and window.current.index >= 5, timeout=WAIT_MS
    )
    info = window.source_info
    assert info.spec.kind == "demo" and info.seekable and info.frame_count > 0
    window.pause()
    window.seek_frame(3)
    qtbot.waitUntil(lambda: window.current.index == 3, timeout=WAIT_MS)
    assert window.current.smoke_level > 0.05  # the demo is smoky


def test_device_that_vanishes_mid_stream(qtbot, window) -> None:
    from engine.video import VideoError

    window.open_capture(LIVE, format="lavfi")
    qtbot.waitUntil(
        lambda: window.current is not None and window.current.index >= 3, timeout=WAIT_MS
    )
    source = window.workers.reader._source

    def gone():
        raise VideoError(f"{LIVE}: capture stopped (No such device)")

    source.read = gone  # the next read on the reader thread fails as an unplugged device does
    qtbot.waitUntil(lambda: "capture stopped" in window.message_bar.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.is_playing, timeout=WAIT_MS)
    assert window.current is not None  # the last frame stays on screen
    window.open_demo(autoplay=False)  # and the app goes on
    qtbot.waitUntil(lambda: window.source_info.spec.kind == "demo", timeout=WAIT_MS)


def test_marked_range_feeds_the_export_dialog(qtbot, window, clip, monkeypatch) -> None:
    from desmoke_app.gui import main_window

    open_clip(qtbot, window, clip)
    window.seek_frame(10)
    wait_for_index(qtbot, window, 10)
    window.mark(0)
    window.seek_frame(30)
    wait_for_index(qtbot, window, 30)
    window.mark(1)
    assert window.timeline.selection.isVisible()
    assert window.timeline.selection.getRegion() == pytest.approx((0.4, 1.2))
    seen = {}

    def fake_exec(dialog):
        seen["range"] = (dialog.range.isChecked(), dialog.start.value(), dialog.end.value())
        return 0  # rejected: nothing is exported

    monkeypatch.setattr(main_window.ExportDialog, "exec", fake_exec)
    window.export_dialog()
    assert seen["range"] == (True, pytest.approx(0.4), pytest.approx(1.2))
    assert window.export_job is None


def test_end_shows_the_last_frame_of_a_variable_frame_rate_file(qtbot, window, tmp_path):
    """The app's own recordings have a variable frame rate: End showed the frame before
    the last (sought by the average rate). It shows the last, numbered as the last, and
    Right from it is the end."""
    times = [0.0, 0.5, 1.0, 1.5, 1.52, 1.54, 1.56]
    path = make_vfr_clip(tmp_path / "vfr.mp4", times)
    window.open_file(path)
    qtbot.waitUntil(lambda: window.current is not None, timeout=WAIT_MS)
    window.pane_area.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_End)
    last = len(times) - 1
    wait_for_index(qtbot, window, last)
    assert window.current.time == pytest.approx(times[-1])
    assert window.transport.time_label.text().endswith(f"frame {last} / {len(times)}")
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(
        lambda: window.statusBar().currentMessage() == "end of the video", timeout=WAIT_MS
    )
    assert window.current.index == last


def test_play_at_the_last_frame_starts_again(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    window.transport.loop.setChecked(False)
    window.seek_last()
    wait_for_index(qtbot, window, CLIP_FRAMES - 1)
    window.play()
    qtbot.waitUntil(lambda: window.current.index < 10, timeout=WAIT_MS)
    window.pause()


def test_real_footage_seeks_exactly(qtbot, window, data_dir) -> None:
    """The 720p laparoscopic clip: the pane shows exactly the frame the engine decodes."""
    from engine.video import FileSource

    path = data_dir / "clear" / "endo_720p.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    window.open_file(path)
    qtbot.waitUntil(lambda: window.current is not None, timeout=WAIT_MS)
    window.seek_frame(137)
    qtbot.waitUntil(lambda: window.current.index == 137, timeout=WAIT_MS)
    with FileSource(path) as source:
        expected = source.seek_frame(137).rgb
    assert window.panes["original"].array().shape == (720, 1280, 3)
    assert np.array_equal(window.panes["original"].array(), expected)
    assert window.panes["desmoked"].array().shape == (720, 1280, 3)


@pytest.mark.parametrize(
    ("remembered", "named", "runs"),
    [
        ({"model": "gone.safetensors"}, "gone.safetensors", "fast"),  # the shipped model
        pytest.param(
            {"model": "fast", "backend": "torch-cuda"},
            "torch-cuda",
            "fast",  # the model asked for, on what this machine has
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="torch-cuda runs here"),
        ),
    ],
    ids=["deleted weights", "backend this machine lacks"],
)
def test_remembered_settings_that_cannot_run(
    qtbot, tmp_path, monkeypatch, clip, remembered, named, runs
) -> None:
    """A message naming what failed and what runs instead; frames go on being processed."""
    from desmoke_app.gui.main_window import MainWindow

    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))
    if "model" in remembered and remembered["model"].endswith(".safetensors"):
        remembered = {"model": str(tmp_path / remembered["model"])}
    win = MainWindow(make_settings(tmp_path, remembered))
    qtbot.addWidget(win)
    win.show()
    try:
        qtbot.waitUntil(lambda: named in win.message_bar.text(), timeout=WAIT_MS)
        assert win.processor_state.model_name == runs
        assert f"using {runs}" in win.message_bar.text()
        open_clip(qtbot, win, clip)
    finally:
        win.shutdown()


def test_switch_source_while_playing(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    window.play()
    qtbot.waitUntil(lambda: window.current.index >= 3, timeout=WAIT_MS)
    window.open_capture(LIVE, format="lavfi")
    qtbot.waitUntil(lambda: window.source_info.is_live, timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: window.current is not None and window.current.index >= 5, timeout=WAIT_MS
    )
    assert window.current.source_id == window.source_info.source_id
    assert window.current.original.shape[:2] == (96, 160)
    open_clip(qtbot, window, clip)  # back to the file: frame 0, paused, nothing stale shown
    qtbot.wait(300)
    assert not window.is_playing and pane_indices(window) == (0, 0, 0)


def test_an_edit_made_while_another_is_applied_is_kept(qtbot, window, clip, monkeypatch) -> None:
    """Strength, then patch while the strength is still being applied: the configure
    that finishes in between must not put the old patch back in the controls."""
    from desmoke_app.gui import processor as processor_module

    make_desmoker = processor_module.make_desmoker
    patch_edited = threading.Event()

    def held_make_desmoker(settings):
        patch_edited.wait(WAIT_MS / 1000)  # the strength's configure ends after the patch edit
        return make_desmoker(settings)

    monkeypatch.setattr(processor_module, "make_desmoker", held_make_desmoker)
    open_clip(qtbot, window, clip)
    controls, processor = window.controls, window.workers.processor
    strength_applied = threading.Event()
    # Runs on the processor thread, after the window's call to its slot has been queued.
    processor.configured.connect(lambda _state: strength_applied.set())
    with qtbot.waitSignal(controls.settings_changed, timeout=WAIT_MS):
        controls.strength.setValue(30)
    controls.patch.setValue(9)  # sent after the controls' pause
    patch_edited.set()
    assert strength_applied.wait(WAIT_MS / 1000)
    # The window takes the strength's state while the patch edit still waits: posted
    # events only, so no timer can end the pause here, however loaded the machine.
    QCoreApplication.sendPostedEvents()
    assert controls.edit_pending() and window.processor_state.settings["strength"] == 0.3
    assert controls.patch.value() == 9
    # The processor's signal comes before the window's slot has run: wait for the window.
    qtbot.waitUntil(
        lambda: not controls.edit_pending() and window.processor_state.asked == controls.settings(),
        timeout=WAIT_MS,
    )
    assert controls.patch.value() == 9 and controls.strength.value() == 30
    assert window.processor_state.settings["patch_size"] == 9
    assert window.processor_state.settings["strength"] == 0.3


def live_frames_come(qtbot, window) -> None:
    """Until the live view shows a newer frame than now (it plays)."""
    shown = window.current.index
    qtbot.waitUntil(lambda: window.current.index > shown + 2, timeout=WAIT_MS)


def test_a_live_view_never_freezes_on_a_move(qtbot, window) -> None:
    """A live capture has no frame to step, jump or seek to: the arrows, Shift+arrows,
    Home and End do nothing, and above all do not pause it (a stray Right froze the view,
    which still read "live": a still image that looks live, in surgery). The status bar
    says why nothing happened."""
    window.open_capture(LIVE, format="lavfi")
    qtbot.waitUntil(
        lambda: window.current is not None and window.current.index >= 3, timeout=WAIT_MS
    )
    window.pane_area.setFocus()
    shift = Qt.KeyboardModifier.ShiftModifier
    for key, modifier in [
        (Qt.Key.Key_Right, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_Left, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_Right, shift),
        (Qt.Key.Key_Home, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_End, Qt.KeyboardModifier.NoModifier),
    ]:
        qtbot.keyClick(window, key, modifier)
        assert "no frames to step" in window.statusBar().currentMessage()
        live_frames_come(qtbot, window)
        assert window.is_playing, key
    window.transport.forward.click()  # disabled: a live source has nothing to step to
    window.workers.reader.request_step(1)  # the reader refuses it too, whoever asks
    window.workers.reader.request_jump(-25)
    live_frames_come(qtbot, window)
    assert window.is_playing and window.windowTitle() == f"desmoke - live: {LIVE}"


def test_a_paused_live_view_says_so_everywhere(qtbot, window) -> None:
    """A deliberate pause stays possible, and is unmistakable: the title, the time label,
    the source label and every pane (the full-screen one too) say PAUSED, not live, until
    it plays again; a capture lost says STOPPED."""
    window.open_capture(LIVE, format="lavfi")
    qtbot.waitUntil(lambda: window.current is not None and window.is_playing, timeout=WAIT_MS)
    views = [*window.panes.values(), window.pane_area.split_view]
    assert window.pane_area.notice == "" and "/ live" in window.transport.time_label.text()
    window.show_full_screen("desmoked")
    window.toggle_play()  # Space
    qtbot.waitUntil(lambda: not window.is_playing, timeout=WAIT_MS)
    assert window.windowTitle() == f"desmoke - PAUSED (not live): {LIVE}"
    assert window.transport.time_label.text().endswith("/ PAUSED")
    assert window.status_labels["source"].text().startswith("PAUSED (not live)")
    assert all(view.notice == "PAUSED — not live" for view in views)
    assert window._full_screen.view.notice == "PAUSED — not live"
    window.toggle_play()
    qtbot.waitUntil(lambda: window.is_playing, timeout=WAIT_MS)
    assert window.windowTitle() == f"desmoke - live: {LIVE}"
    assert not any(view.notice for view in (*views, window._full_screen.view))
    assert window.transport.time_label.text().endswith("/ live")
    window._full_screen.close()
    window.open_capture("testsrc=size=160x96:rate=30:duration=0.5", format="lavfi")
    qtbot.waitUntil(lambda: window.message_bar.level == "error", timeout=WAIT_MS)
    assert window.pane_area.notice == "STOPPED — not live"
    assert window.windowTitle().startswith("desmoke - STOPPED (not live): ")


def test_a_paused_notice_is_drawn_over_the_pane(qtbot) -> None:
    from desmoke_app.gui.panes import PaneView

    view = PaneView("original")
    qtbot.addWidget(view)
    view.resize(300, 200)
    view.set_array(np.zeros((100, 150, 3), np.uint8))
    band = (10, 100)  # the middle row, left of the text
    assert view.grab().toImage().pixelColor(*band).red() < 30  # the pane's dark border
    view.set_notice("PAUSED — not live")
    colour = view.grab().toImage().pixelColor(*band)
    assert colour.red() > 150 and colour.green() < 60  # a red band across the pane
    view.set_notice("")
    assert view.grab().toImage().pixelColor(*band).red() < 30


@pytest.mark.parametrize(
    "marks",
    [[(0, 30), (1, 10)], [(1, 10), (0, 30)]],
    ids=["end marked before the start", "start marked after the end"],
)
def test_range_marks_are_kept_in_order(qtbot, window, clip, marks) -> None:
    open_clip(qtbot, window, clip)
    for which, frame in marks:  # which: 0 the start (I), 1 the end (O)
        window.seek_frame(frame)
        wait_for_index(qtbot, window, frame)
        window.mark(which)
    assert window.selection == pytest.approx([0.4, 1.2])
    assert window.timeline.selection.getRegion() == pytest.approx((0.4, 1.2))
    assert window.message_bar.text() == "export range: 0.40 s to 1.20 s"


def test_a_new_files_first_frame_survives_an_old_wake_up(qtbot, window, clip, tmp_path) -> None:
    """The outbox wakes the window once per unread item. Here the wake-up for the old
    file's frame is queued ahead of the new file's "opened", and the new file's first frame
    replaces that old one in the outbox before the window runs: it must be shown once
    "opened" arrives (a paused file sends no other frame), never dropped as the old one's."""
    other = make_index_clip(tmp_path / "other.mp4", 8, (128, 64))
    open_clip(qtbot, window, clip)
    processor = window.workers.processor
    woken = threading.Event()  # set on the processor thread as it wakes the window
    processor.result_available.connect(woken.set, Qt.ConnectionType.DirectConnection)
    window.step(1)  # the old file's frame 1: its wake-up is queued for the window
    wait_holding_the_gui(woken.is_set)
    replaced = processor.outbox.dropped
    window.open_file(other)  # "opened" queued behind that wake-up, then its frame 0
    wait_holding_the_gui(lambda: processor.outbox.dropped > replaced)  # frame 1 replaced
    qtbot.waitUntil(lambda: window.source_info.spec.path == str(other), timeout=WAIT_MS)
    wait_for_index(qtbot, window, 0)
    assert window.current.source_id == window.source_info.source_id
    assert window.panes["original"].array().shape[:2] == (64, 128)


def test_a_new_source_never_shows_the_old_ones_frame(qtbot, window, clip, tmp_path) -> None:
    """Until the new source's first frame comes, the panes are blank at its size: not the
    previous video's last frame under the new title."""
    other = make_index_clip(tmp_path / "other.mp4", 8, (128, 64))
    open_clip(qtbot, window, clip)
    processor = window.workers.processor
    woken = threading.Event()  # set on the processor thread as it wakes the window
    processor.result_available.connect(woken.set, Qt.ConnectionType.DirectConnection)
    window.open_file(other)
    wait_holding_the_gui(woken.is_set)
    frame = processor.outbox.take()  # held back: the window takes "opened" alone
    qtbot.waitUntil(lambda: window.source_info.spec.path == str(other), timeout=WAIT_MS)
    assert window.current is None
    for pane in window.panes.values():
        assert pane.array().shape[:2] == (64, 128) and not pane.array().any()
    processor.outbox.put(frame)
    window._result_available()
    wait_for_index(qtbot, window, 0)


def test_a_capture_that_stops_sending_frames_is_lost(qtbot, window) -> None:
    """A live stream that ends (a device unplugged, a stream closed) is a failed source,
    said as such: it is no "end of the video"."""
    window.open_capture("testsrc=size=160x96:rate=30:duration=0.5", format="lavfi")
    qtbot.waitUntil(lambda: "stopped sending frames" in window.message_bar.text(), timeout=WAIT_MS)
    assert window.message_bar.text() == (
        "testsrc=size=160x96:rate=30:duration=0.5: the capture stopped sending frames"
    )
    assert window.message_bar.level == "error" and not window.is_playing
    assert window.statusBar().currentMessage() == ""  # no "end of the video"
    assert window.current is not None  # the last frame stays on screen, marked stopped
    assert window.pane_area.notice == "STOPPED — not live"


def test_range_marks_and_their_note_belong_to_the_file(qtbot, window, clip) -> None:
    """The marks are the export's range: a new source drops them and their note, and the
    demo, which cannot be exported, takes none."""
    open_clip(qtbot, window, clip)
    window.mark(0)
    assert window.message_bar.text() == "export range: 0.00 s to the end"
    window.open_capture(LIVE, format="lavfi")
    qtbot.waitUntil(lambda: window.source_info.is_live, timeout=WAIT_MS)
    assert window.message_bar.text() == "" and window.selection == [None, None]
    window.open_demo(autoplay=False)
    qtbot.waitUntil(
        lambda: window.current is not None and window.current.source_id == 3, timeout=WAIT_MS
    )
    window.mark(0)  # I: enabled, to say why it cannot mark here
    assert window.selection == [None, None]
    assert window.message_bar.text() == "export range marks work on video files: open one (Ctrl+O)"
