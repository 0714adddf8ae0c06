"""Recording the view (File > Record the view, Ctrl+R): a live source's panes as shown go
into a side-by-side MP4 that is finished on stop, on a new source and on quit, and left
nowhere when writing fails."""

# The shared fixtures (window) are imported from tests/gui_support.py, so their names
# shadow the test arguments by design.
# ruff: noqa: F811

from __future__ import annotations

import shutil
import time

import av
import pytest

from engine.video import writer as writer_module
from tests.clips import make_index_clip, read_index
from tests.gui_support import (
    CLIP_SIZE,
    WAIT_MS,
    clip,  # noqa: F401 (fixture)
    open_clip,
    wait_for_index,
    window,  # noqa: F401 (fixture)
)

LIVE = "testsrc=size=160x96:rate=30"


def start_live(qtbot, window) -> None:
    window.open_capture(LIVE, format="lavfi")
    qtbot.waitUntil(lambda: window.current is not None, timeout=WAIT_MS)


def record(qtbot, window, path, frames: int = 8) -> None:
    window.start_recording(path)
    qtbot.waitUntil(lambda: window.record_action.isChecked(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.workers.recorder.frames_written >= frames, timeout=WAIT_MS)


def decoded_times(path) -> tuple[tuple[int, int], list[float]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [frame.time for frame in container.decode(stream)]
        return (stream.width, stream.height), times


def test_recording_a_live_source_keeps_what_was_shown(qtbot, window, tmp_path) -> None:
    start_live(qtbot, window)
    out = tmp_path / "live.mp4"
    began = time.monotonic()
    record(qtbot, window, out)
    assert window.record_label.isVisible()
    window.stop_recording()
    window._refresh_status()  # the status timer's tick while the file is finished
    assert window.record_label.text() == "● saving the recording…"  # not REC any more
    qtbot.waitUntil(lambda: not window.record_action.isChecked(), timeout=WAIT_MS)
    wall = time.monotonic() - began
    size, times = decoded_times(out)
    assert size == (3 * 160, 96)  # the panes, laid out as the exports are
    assert len(times) >= 8 and all(b > a for a, b in zip(times, times[1:], strict=False))
    assert times[0] == 0.0 and times[-1] <= wall  # stamped when shown, from the first
    assert f"recorded {len(times)} frames" in window.message_bar.text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mp4") == ["live.mp4"]
    assert not window.record_label.isVisible()


def test_the_menu_action_asks_where_and_toggles(qtbot, window, tmp_path, monkeypatch) -> None:
    from desmoke_app.gui import main_window

    start_live(qtbot, window)
    chosen = tmp_path / "asked"  # the dialog's name without its suffix
    monkeypatch.setattr(
        main_window.QFileDialog, "getSaveFileName", lambda *a, **k: (str(chosen), "")
    )
    window.record_action.trigger()
    qtbot.waitUntil(lambda: window.workers.recorder.frames_written >= 3, timeout=WAIT_MS)
    window.record_action.trigger()
    qtbot.waitUntil(lambda: not window.workers.recorder.recording, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: (tmp_path / "asked.mp4").is_file(), timeout=WAIT_MS)


def test_a_new_source_and_quitting_finish_the_recording(qtbot, window, tmp_path, clip) -> None:
    start_live(qtbot, window)
    first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
    record(qtbot, window, first, frames=3)
    open_clip(qtbot, window, clip)  # a new source ends the recording of the old one
    qtbot.waitUntil(lambda: first.is_file(), timeout=WAIT_MS)
    assert not window.workers.recorder.recording
    window.play()
    record(qtbot, window, second, frames=3)
    window.shutdown()  # quitting keeps what was recorded
    assert second.is_file() and len(decoded_times(second)[1]) >= 3


def test_a_device_that_vanishes_finishes_the_recording(qtbot, window, tmp_path) -> None:
    from engine.video import VideoError

    start_live(qtbot, window)
    out = tmp_path / "until_unplugged.mp4"
    record(qtbot, window, out, frames=3)

    def gone():
        raise VideoError(f"{LIVE}: capture stopped (No such device)")

    window.workers.reader._source.read = gone  # as an unplugged device fails
    qtbot.waitUntil(lambda: "recorded" in window.message_bar.text(), timeout=WAIT_MS)
    assert "capture stopped" in window.message_bar.text()  # why it ended stays in view
    assert not window.workers.recorder.recording and not window.record_action.isChecked()
    assert len(decoded_times(out)[1]) >= 3


def test_a_capture_that_stops_sending_finishes_the_recording(qtbot, window, tmp_path) -> None:
    """A stream that ends (its read finds no more frames) is a source lost, as an unplugged
    device is: what was recorded is kept, and the message says why it ended."""
    start_live(qtbot, window)
    out = tmp_path / "until_the_end.mp4"
    record(qtbot, window, out, frames=3)
    window.workers.reader._source.read = lambda: None  # as the stream's end reads
    qtbot.waitUntil(lambda: "recorded" in window.message_bar.text(), timeout=WAIT_MS)
    text = window.message_bar.text()
    assert text.startswith(f"{LIVE}: the capture stopped sending frames; recorded ")
    assert window.message_bar.level == "error"
    assert not window.workers.recorder.recording and not window.record_action.isChecked()
    assert len(decoded_times(out)[1]) >= 3


def test_recording_a_paused_video_keeps_the_frame_on_screen(qtbot, window, tmp_path, clip) -> None:
    """Paused, no new frame comes: the recording holds the frame that was on screen."""
    open_clip(qtbot, window, clip)
    window.seek_frame(7)
    wait_for_index(qtbot, window, 7)
    out = tmp_path / "still.mp4"
    window.start_recording(out)
    qtbot.waitUntil(lambda: window.record_action.isChecked(), timeout=WAIT_MS)
    held = 1.0
    time.sleep(held)  # paused: the frame stays on screen, no new one comes
    window.stop_recording()
    qtbot.waitUntil(lambda: not window.record_action.isChecked(), timeout=WAIT_MS)
    assert window.message_bar.text().startswith("recorded ")
    with av.open(str(out)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        duration = container.duration / av.time_base
    # The frame on screen, written again at the stop: the file lasts as the recording did
    # (it was one frame, ending a frame interval after it starts).
    assert [read_index(frame[:, : CLIP_SIZE[0]]) for frame in frames] == [7, 7]
    assert duration >= held


def test_a_source_whose_frame_size_changes_is_recorded_whole(qtbot, window, tmp_path) -> None:
    """The source shown changes its frame size midway (a raw stream, a capture switching
    resolution): its frames are recorded scaled to the size the recording started at. The
    first frame of another size once failed the recording, and nothing was kept."""
    from tests.clips import size_changing_clip

    open_clip(qtbot, window, size_changing_clip(tmp_path))  # paused on frame 0, 160x96
    out = tmp_path / "sizes.mp4"
    window.start_recording(out)
    qtbot.waitUntil(lambda: window.workers.recorder.frames_written >= 1, timeout=WAIT_MS)
    recorder = window.workers.recorder
    for frame in (13, 22):  # 96x64 (its part's index 3), then 160x96 again (index 2)
        written = recorder.frames_written
        window.seek_frame(frame)
        qtbot.waitUntil(lambda written=written: recorder.frames_written > written, timeout=WAIT_MS)
    window.stop_recording()
    qtbot.waitUntil(lambda: not window.record_action.isChecked(), timeout=WAIT_MS)
    assert window.message_bar.text().startswith("recorded ")
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (3 * CLIP_SIZE[0], CLIP_SIZE[1])
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    indices = [read_index(frame[:, : CLIP_SIZE[0]]) for frame in frames]
    assert indices in ([0, 3, 2], [0, 3, 2, 2])  # the last again at the stop, if it held


def test_an_unwritable_target_is_an_error_and_nothing_runs(qtbot, window, tmp_path) -> None:
    start_live(qtbot, window)
    window.start_recording(tmp_path / "missing" / "x.mp4")
    qtbot.waitUntil(lambda: "does not exist" in window.message_bar.text(), timeout=WAIT_MS)
    assert not window.record_action.isChecked() and not window.workers.recorder.recording


def test_the_video_played_is_never_recorded_over(qtbot, window, tmp_path) -> None:
    video = make_index_clip(tmp_path / "surgery.mp4", n_frames=12)
    clip_bytes = video.read_bytes()
    open_clip(qtbot, window, video)
    window.start_recording(video)
    qtbot.waitUntil(lambda: "is the source video" in window.message_bar.text(), timeout=WAIT_MS)
    assert video.read_bytes() == clip_bytes and not window.workers.recorder.recording


def test_a_write_failure_mid_recording_leaves_no_file(qtbot, window, tmp_path, monkeypatch) -> None:
    """A disk that fills up: the message says so, no partial file, the preview goes on."""
    start_live(qtbot, window)
    encode = writer_module.Mp4Writer._encode

    def fills_up(writer, frame):
        if writer.frames_written >= 3:
            raise OSError(28, "No space left on device")
        encode(writer, frame)

    monkeypatch.setattr(writer_module.Mp4Writer, "_encode", fills_up)
    window.start_recording(tmp_path / "full.mp4")
    qtbot.waitUntil(lambda: "No space left" in window.message_bar.text(), timeout=WAIT_MS)
    assert not window.record_action.isChecked()
    assert not [p for p in tmp_path.iterdir() if ".mp4" in p.name]
    shown = window.current.index
    qtbot.waitUntil(lambda: window.current.index > shown, timeout=WAIT_MS)


@pytest.mark.parametrize("paused", [False, True], ids=["live", "paused"])
def test_a_folder_removed_mid_recording_stops_it_at_once(
    qtbot, window, tmp_path, clip, paused
) -> None:
    """The recording's folder deleted: said within a second or so, the recording stopped
    (not carried on into a file no one can reach, to fail at stop), the preview goes on.
    Live, the folder may go before the encoder opens its file (its first packet); paused,
    with the file open and no frame coming to fail on writing, the folder is checked."""
    if paused:
        open_clip(qtbot, window, clip)
        window.play()
    else:
        start_live(qtbot, window)
    folder = tmp_path / "recordings"
    folder.mkdir()
    record(qtbot, window, folder / "rec.mp4", frames=1)
    if paused:
        # The encoder has written its header: its file is open, writes to it succeed.
        qtbot.waitUntil(lambda: any(f.stat().st_size for f in folder.iterdir()), timeout=WAIT_MS)
        window.pause()
        qtbot.waitUntil(lambda: not window.is_playing, timeout=WAIT_MS)
    shutil.rmtree(folder)
    qtbot.waitUntil(lambda: "was removed" in window.message_bar.text(), timeout=3000)
    text = window.message_bar.text()
    assert text.startswith(f"recording to {folder / 'rec.mp4'} stopped after ")
    assert f"its folder {folder} was removed or renamed" in text and "record again" in text
    assert window.message_bar.level == "error"
    assert not window.workers.recorder.recording and not window.record_action.isChecked()
    window.play()
    shown = window.current.index
    qtbot.waitUntil(lambda: window.current.index != shown, timeout=WAIT_MS)
    folder.mkdir()  # the user records again
    record(qtbot, window, folder / "rec.mp4", frames=3)
    window.stop_recording()
    qtbot.waitUntil(lambda: (folder / "rec.mp4").is_file(), timeout=WAIT_MS)


def test_nothing_to_record_without_a_source(qtbot, window) -> None:
    window.record_action.trigger()
    assert "nothing to record" in window.message_bar.text()
    assert not window.record_action.isChecked()
