"""The window on a file with several video streams: View > Video stream lists them, the
choice reopens the file where it was, the notice says how to switch, and the export of the
file is of the stream shown."""

# The shared fixtures (clip, window) are imported from tests/gui_support.py, so their
# use as test arguments reads to ruff as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog

from desmoke_app.gui.export_dialog import ExportDialog
from tests.clips import read_index
from tests.gui_support import (
    WAIT_MS,
    clip,  # noqa: F401 (fixture)
    open_clip,
    wait_for_index,
    window,  # noqa: F401 (fixture)
)
from tests.test_video_streams import first_original_index, loudness, make_stereo


@pytest.fixture(scope="module")
def stereo(tmp_path_factory) -> Path:
    return make_stereo(tmp_path_factory.mktemp("gui_streams") / "stereo.mkv")


def stream_actions(window):
    return window.stream_menu.actions()


def test_the_video_streams_are_listed_and_the_notice_says_how_to_switch(
    qtbot, window, stereo
) -> None:
    open_clip(qtbot, window, stereo)
    actions = stream_actions(window)
    assert [a.text() for a in actions] == ["Stream 1 (64x48, 25 fps)", "Stream 2 (48x32, 25 fps)"]
    assert [a.isChecked() for a in actions] == [True, False]
    assert window.stream_menu.isEnabled()
    qtbot.waitUntil(lambda: "video streams" in window.message_bar.text(), timeout=WAIT_MS)
    assert window.message_bar.text() == (
        "stereo.mkv: the file has 2 video streams (a stereo recording?): desmoke uses video "
        "stream 1 of 2; the others are not used (View > Video stream shows another)"
    )


def test_a_file_of_one_video_stream_has_none_to_choose(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    assert not window.stream_menu.isEnabled()
    assert [a.text() for a in stream_actions(window)] == ["Stream 1 (160x96, 25 fps)"]


def test_choosing_a_stream_reopens_the_file_where_it_was(qtbot, window, stereo) -> None:
    open_clip(qtbot, window, stereo)
    window.seek_frame(20)  # 0.8 s
    wait_for_index(qtbot, window, 20)
    stream_actions(window)[1].trigger()
    qtbot.waitUntil(lambda: window.source_info.spec.video_stream == 1, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.current is not None, timeout=WAIT_MS)
    assert (window.source_info.width, window.source_info.height) == (48, 32)
    assert window.current.index == 20 and read_index(window.current.original) == 120
    assert not window.is_playing  # paused as it was
    assert [a.isChecked() for a in stream_actions(window)] == [False, True]
    assert "uses video stream 2 of 2" in window.message_bar.text()


def test_a_stream_chosen_while_playing_plays_on(qtbot, window, stereo) -> None:
    open_clip(qtbot, window, stereo)
    window.play()
    qtbot.waitUntil(lambda: window.current.index >= 5, timeout=WAIT_MS)
    stream_actions(window)[1].trigger()
    qtbot.waitUntil(lambda: window.source_info.spec.video_stream == 1, timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: window.current is not None and read_index(window.current.original) >= 105,
        timeout=WAIT_MS,
    )
    assert window.is_playing or window.current.index == 49  # played on (or reached its end)


def test_the_export_is_of_the_stream_shown(qtbot, window, stereo, tmp_path, monkeypatch) -> None:
    """The window exported the first video stream whichever one it showed."""
    source = tmp_path / "stereo.mkv"
    source.write_bytes(stereo.read_bytes())  # the export is written beside it
    open_clip(qtbot, window, source)
    stream_actions(window)[1].trigger()
    qtbot.waitUntil(lambda: window.source_info.spec.video_stream == 1, timeout=WAIT_MS)
    labels = []

    def accepted(dialog: ExportDialog) -> QDialog.DialogCode:
        labels.append(dialog.source_name.text())
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ExportDialog, "exec", accepted)
    window.settings.set_value("export/labels", False)  # the index code read unlabelled
    window.export_dialog()
    assert labels == ["stereo.mkv, video stream 2 of 2"]  # the dialog's Source row
    job = window.export_job
    assert job is not None and job.request.video_stream == 1
    with qtbot.waitSignal(job.done, timeout=30000):
        pass
    assert job.outcome == "finished", job.message
    out = Path(job.request.output)
    assert first_original_index(out) == 100
    assert loudness(out, 0.0, 0.8) > 0.2  # its sound in time with it: the tone from 1 s
    assert "(View > Video stream shows another)" in job.message


def test_the_app_opens_the_stream_asked_for_on_its_command_line(qtbot, window, stereo) -> None:
    from desmoke_app.gui.main import parse_args

    args = parse_args([str(stereo), "--video-stream", "2"])
    window.open_file(args.file, video_stream=args.video_stream - 1)
    qtbot.waitUntil(lambda: window.current is not None, timeout=WAIT_MS)
    assert window.source_info.spec.video_stream == 1
    assert read_index(window.current.original) == 100


def test_a_stream_the_file_lacks_is_said_in_the_options_words(qtbot, window, stereo) -> None:
    window.open_file(stereo, video_stream=4)
    qtbot.waitUntil(lambda: "--video-stream" in window.message_bar.text(), timeout=WAIT_MS)
    assert window.message_bar.text() == (
        f"{stereo}: --video-stream 5: the file has 2 video streams (--video-stream 1 to 2)"
    )


def test_video_stream_is_an_option_of_files_only() -> None:
    from desmoke_app.gui.main import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--video-stream", "2"])
    with pytest.raises(SystemExit):
        parse_args(["x.mp4", "--video-stream", "0"])
