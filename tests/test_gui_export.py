"""Export from the window (range, cancel, bad output) and the snapshot PNG."""

# The shared fixtures (clip, window) are imported from tests/gui_support.py, so their
# use as test arguments reads to ruff as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMessageBox

from desmoke_app.gui.export_dialog import ExportDialog, ExportProgress, default_output
from desmoke_app.gui.export_worker import ExportRequest
from desmoke_app.gui.outputs import OutputClaims
from desmoke_app.gui.reader import SourceSpec
from engine.video import FileSource
from tests.clips import corrupt_clip, make_index_clip, read_index
from tests.gui_support import (
    CLIP_SIZE,
    DCP,
    WAIT_MS,
    clip,  # noqa: F401 (fixture)
    damaged_clip,
    export_under_way,
    long_clip,
    open_clip,
    wait_for_index,
    window,  # noqa: F401 (fixture)
)


def run_export(qtbot, window, request: ExportRequest):
    job = window.start_export(request)
    assert window.export_progress.isVisible()
    with qtbot.waitSignal(job.done, timeout=30000):
        pass
    qtbot.waitUntil(lambda: window.export_job is None, timeout=WAIT_MS)
    assert not window.export_progress.isVisible()
    return job


def test_export_a_range(qtbot, window, clip, tmp_path) -> None:
    open_clip(qtbot, window, clip)
    out = tmp_path / "range.mp4"
    request = ExportRequest(str(clip), str(out), start=0.4, end=1.2, layout="3up", settings=DCP)
    job = run_export(qtbot, window, request)
    assert job.outcome == "finished", job.message
    assert "exported range.mp4 (20 frames in " in window.message_bar.text()
    with FileSource(out) as exported:
        frames = list(exported.frames())
        assert (exported.width, exported.height) == (3 * CLIP_SIZE[0], CLIP_SIZE[1])
    assert len(frames) == 20  # frames 10..29: [0.4 s, 1.2 s) at 25 fps
    first_pane = frames[0].rgb[:, : CLIP_SIZE[0]]
    last_pane = frames[-1].rgb[:, : CLIP_SIZE[0]]
    assert (read_index(first_pane), read_index(last_pane)) == (10, 29)


def test_export_of_a_cut_short_file_warns(qtbot, window, tmp_path) -> None:
    whole = make_index_clip(tmp_path / "whole.mp4", 100, CLIP_SIZE, 25)  # states 4 s
    cut = corrupt_clip(whole, tmp_path / "cut.mp4", keep=0.5, flips=0)
    job = run_export(qtbot, window, ExportRequest(str(cut), str(tmp_path / "o.mp4"), settings=DCP))
    assert job.outcome == "finished", job.message
    assert "cut short" in window.message_bar.text()
    assert window.message_bar.level == "warning"


def test_an_export_that_skipped_frames_is_a_warning(qtbot, window, tmp_path) -> None:
    """Most of the input does not decode: the output lacks them, which must not fade away
    as a routine note."""
    damaged = damaged_clip(tmp_path)
    out = tmp_path / "out.mp4"
    job = run_export(qtbot, window, ExportRequest(str(damaged), str(out), settings=DCP))
    assert job.outcome == "finished", job.message
    text = window.message_bar.text()
    assert text.startswith("exported out.mp4 (") and "undecodable frames skipped" in text
    assert "cut short" not in text  # the frames skipped alone make it a warning
    assert window.message_bar.level == "warning"


def test_an_export_to_the_file_being_recorded_is_refused(qtbot, window, clip, tmp_path) -> None:
    """Both would be lost (each renames its own file onto the name): the export is refused,
    the recording goes on and is kept; once it ends, the name is free again."""
    open_clip(qtbot, window, clip)
    out = tmp_path / "same.mp4"
    window.play()
    window.start_recording(out)
    qtbot.waitUntil(lambda: window.workers.recorder.frames_written >= 3, timeout=WAIT_MS)
    other_spelling = tmp_path / "." / "same.mp4"
    assert window.start_export(ExportRequest(str(clip), str(other_spelling), settings=DCP)) is None
    refused = "same.mp4 is being recorded: choose another name"
    assert window.message_bar.text() == refused and window.message_bar.level == "error"
    assert window.export_job is None and not window.export_progress.isVisible()
    dialog = ExportDialog(str(clip), 1.92)
    dialog.output.setText(str(out))
    assert dialog.validate() == refused  # the dialog says so before it closes
    assert window.workers.recorder.recording
    window.stop_recording()
    # "recorded N frames ...", the refusal not glued before it (it did not end the recording)
    qtbot.waitUntil(lambda: window.message_bar.text().startswith("recorded "), timeout=WAIT_MS)
    assert out.is_file() and not window.workers.recorder.recording
    window.pause()
    job = run_export(qtbot, window, ExportRequest(str(clip), str(out), settings=DCP))
    assert job.outcome == "finished", job.message


def test_one_job_at_a_time_writes_a_file(tmp_path) -> None:
    claims = OutputClaims()
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert claims.claim(tmp_path / "real" / "a.mp4", "exported") == ""
    refused = "a.mp4 is being exported: choose another name"
    assert claims.claim(tmp_path / "link" / "a.mp4", "recorded") == refused  # another spelling
    assert claims.problem(str(tmp_path / "real" / "." / "a.mp4")) == refused
    assert claims.claim(tmp_path / "real" / "b.mp4", "recorded") == ""  # another file
    claims.release(tmp_path / "real" / "a.mp4")
    assert claims.problem(tmp_path / "link" / "a.mp4") == ""
    assert claims.claim(tmp_path / "link" / "a.mp4", "recorded") == ""
    (tmp_path / "link").unlink()  # the link claimed through goes: the claim still ends
    claims.release(tmp_path / "link" / "a.mp4")
    assert claims.problem(tmp_path / "real" / "a.mp4") == ""


def test_a_recording_to_the_file_being_exported_is_refused(qtbot, window, tmp_path) -> None:
    clip = long_clip(tmp_path)
    open_clip(qtbot, window, clip)
    out = tmp_path / "exports" / "out.mp4"
    job, _ = export_under_way(qtbot, window, clip, out)
    window.start_recording(out)
    refused = "out.mp4 is being exported: choose another name"
    qtbot.waitUntil(lambda: window.message_bar.text() == refused, timeout=WAIT_MS)
    assert not window.workers.recorder.recording and not window.record_action.isChecked()
    with qtbot.waitSignal(job.done, timeout=30000):
        pass
    assert job.outcome == "finished", job.message
    with FileSource(out) as exported:  # the export's, whole
        assert sum(1 for _ in exported.frames()) == 400


def test_export_keeps_the_app_usable(qtbot, window, clip, tmp_path) -> None:
    open_clip(qtbot, window, clip)
    out = tmp_path / "whole.mp4"
    job = window.start_export(ExportRequest(str(clip), str(out), layout="2up", settings=DCP))
    window.seek_frame(33)  # playback keeps working while the export runs
    wait_for_index(qtbot, window, 33)
    with qtbot.waitSignal(job.done, timeout=30000):
        pass
    with FileSource(out) as exported:
        assert exported.width == 2 * CLIP_SIZE[0]
        assert sum(1 for _ in exported.frames()) == 48


def test_cancel_leaves_no_file(qtbot, window, tmp_path) -> None:
    clip = long_clip(tmp_path)
    open_clip(qtbot, window, clip)
    out = tmp_path / "exports" / "cancelled.mp4"
    job, progress = export_under_way(qtbot, window, clip, out)
    qtbot.mouseClick(window.export_progress.cancel, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(job.done, timeout=30000):
        pass
    assert job.outcome == "cancelled"
    assert progress[-1] < 400  # it really stopped part-way
    assert list(out.parent.iterdir()) == []  # neither the output nor a temporary file
    assert "cancelled" in window.message_bar.text()


def test_export_to_a_bad_folder_shows_a_message(qtbot, window, clip, tmp_path) -> None:
    open_clip(qtbot, window, clip)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "out.mp4"
    job = run_export(qtbot, window, ExportRequest(str(clip), str(out), settings=DCP))
    assert job.outcome == "failed"
    assert "out.mp4" in window.message_bar.text() and window.message_bar.level == "error"
    assert not out.exists()
    window.seek_frame(5)  # the app carries on
    wait_for_index(qtbot, window, 5)


def test_export_dialog_builds_the_request(qtbot, clip, tmp_path) -> None:
    dialog = ExportDialog(str(clip), 1.92, selection=(0.4, 1.0), layout="vertical", labels=False)
    qtbot.addWidget(dialog)
    assert dialog.range.isChecked() and dialog.output.text() == default_output(str(clip))
    request = dialog.request(DCP)
    assert (request.start, request.end, request.layout, request.labels) == (
        0.4,
        1.0,
        "vertical",
        False,
    )
    dialog.output.setText(str(clip))
    assert "overwrite" in dialog.validate()
    dialog.output.setText(str(tmp_path / "x.avi"))
    assert "name it .mp4" in dialog.validate()
    dialog.output.setText(str(tmp_path / "missing" / "x.mp4"))
    assert "does not exist" in dialog.validate()
    dialog.output.setText(str(tmp_path / "x.mp4"))
    dialog.end.setValue(0.2)
    assert "after its start" in dialog.validate()
    dialog.whole.setChecked(True)
    assert dialog.validate() == ""
    assert dialog.request(DCP).end is None
    assert dialog.request(DCP).crf == 20  # the default quality
    dialog.quality.setCurrentIndex(dialog.quality.findData(16))
    assert dialog.request(DCP).crf == 16


def test_export_dialog_keeps_a_quality_set_elsewhere(qtbot, clip) -> None:
    dialog = ExportDialog(str(clip), 1.92, crf=23)
    qtbot.addWidget(dialog)
    assert dialog.quality.currentText() == "crf 23" and dialog.request(DCP).crf == 23


def test_the_export_dialog_is_deleted_once_answered(qtbot, window, clip, monkeypatch) -> None:
    """A dialog left to Python's garbage collector was freed on whichever thread collected
    it, the export's among them: the app crashed in 3 runs of 5 when an export was started
    from its dialog while a clip played. It is deleted in the GUI thread instead."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    open_clip(qtbot, window, clip)
    answers = iter([QDialog.DialogCode.Rejected, QDialog.DialogCode.Accepted])
    monkeypatch.setattr(ExportDialog, "exec", lambda dialog: next(answers))
    for _ in range(2):
        window.export_dialog()
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        assert window.findChildren(ExportDialog) == []
    job = window.export_job  # the accepted one runs all the same
    assert job is not None
    with qtbot.waitSignal(job.done, timeout=30000):
        window.cancel_export()


def test_export_needs_a_file_source(qtbot, window) -> None:
    window.open_demo(autoplay=False)
    qtbot.waitUntil(lambda: window.current is not None, timeout=WAIT_MS)
    window.export_dialog()
    assert "video files" in window.message_bar.text()


def test_snapshot_png_has_the_three_panes(qtbot, window, clip, tmp_path) -> None:
    open_clip(qtbot, window, clip)
    window.seek_frame(17)
    wait_for_index(qtbot, window, 17)
    path = window.snapshot(tmp_path / "snap.png")
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    width, height = CLIP_SIZE
    assert image.shape == (height, 3 * width, 3)
    # Labels sit in the top-left corner; the code's cells are big enough to read past them.
    assert read_index(image[:, width : 2 * width]) == 17
    assert read_index(image[:, 2 * width :]) == 17
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".snap")] == []


def test_snapshot_that_cannot_be_written_names_the_file(
    qtbot, window, clip, tmp_path, monkeypatch
) -> None:
    from PySide6.QtWidgets import QFileDialog

    open_clip(qtbot, window, clip)
    target = tmp_path / "missing" / "snap.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    window.snapshot_dialog()
    message = window.message_bar.text()
    assert message.startswith(f"cannot save the snapshot to {target} (")
    assert ".snap.png." not in message  # not the temporary file's name


def test_snapshot_without_a_frame_is_an_error(qtbot, window, tmp_path) -> None:
    with pytest.raises(ValueError, match="no frame"):
        window.snapshot(tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_export_progress_says_the_rate_and_the_time_left(qtbot) -> None:
    progress = ExportProgress()
    qtbot.addWidget(progress)
    progress.begin("/videos/case 12_desmoked.mp4", now=100.0)
    assert progress.label.text() == "Exporting case 12_desmoked.mp4"
    progress.set_progress(50, 250, now=110.0)
    assert progress.label.text() == "Exporting case 12_desmoked.mp4 · 5.0 fps · 0:40 left"
    assert progress.bar.value() == 50
    progress.set_progress(60, 90_000, now=112.0)
    assert progress.label.text().endswith("· 5.0 fps · 4:59:48 left")


@pytest.mark.parametrize("answer", [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
def test_export_dialog_asks_before_replacing_a_file(qtbot, tmp_path, monkeypatch, answer) -> None:
    source = tmp_path / "case.mp4"
    existing = Path(default_output(str(source)))
    existing.write_bytes(b"an earlier export")
    questions = []

    def question(parent, title, text, buttons, default):
        questions.append((text, default))
        return answer

    monkeypatch.setattr(QMessageBox, "question", question)
    dialog = ExportDialog(str(source), 2.0)
    qtbot.addWidget(dialog)
    dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()
    assert questions == [(f"{existing} already exists. Replace it?", QMessageBox.StandardButton.No)]
    replaced = answer == QMessageBox.StandardButton.Yes
    assert (dialog.result() == QDialog.DialogCode.Accepted) == replaced


def test_export_dialog_does_not_ask_twice_or_for_a_new_file(qtbot, tmp_path, monkeypatch) -> None:
    from PySide6.QtWidgets import QFileDialog

    existing = tmp_path / "chosen.mp4"
    existing.write_bytes(b"an earlier export")
    monkeypatch.setattr(QMessageBox, "question", lambda *a: pytest.fail("asked again"))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(existing), ""))
    dialog = ExportDialog(str(tmp_path / "case.mp4"), 2.0)  # its default output is new
    qtbot.addWidget(dialog)
    dialog._accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    dialog.setResult(QDialog.DialogCode.Rejected)
    dialog._browse()  # the save dialog asked about replacing it
    dialog._accept()
    assert dialog.result() == QDialog.DialogCode.Accepted


def test_export_dialog_refuses_a_file_name_too_long(qtbot, tmp_path) -> None:
    """Path.exists raises on such a name (Python 3.11): the OK button's slot died with a
    traceback and the dialog said nothing."""
    dialog = ExportDialog(str(tmp_path / "case.mp4"), 2.0)
    qtbot.addWidget(dialog)
    dialog.output.setText(str(tmp_path / ("a" * 300 + ".mp4")))
    dialog._accept()
    assert "file name is too long" in dialog.error.text()
    assert dialog.result() != QDialog.DialogCode.Accepted


@pytest.mark.parametrize(
    "spec, stem",
    [
        (SourceSpec("capture", "testsrc=size=160x96:rate=30", "lavfi"), "live_testsrc_size_"),
        (SourceSpec("capture", "/dev/video2"), "live_video2"),
        (SourceSpec("capture", ""), "live"),
        (SourceSpec("demo"), "demo"),
        (SourceSpec("file", "/videos/case 12.mp4"), "case 12"),
    ],
)
def test_what_is_saved_from_a_source_is_named_after_it(spec, stem) -> None:
    assert spec.stem.startswith(stem)


def test_a_snapshot_of_a_live_capture_is_named_live(qtbot, window, monkeypatch) -> None:
    from PySide6.QtWidgets import QFileDialog

    offered = []
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda _p, _t, name, _f: offered.append(name) or ("", "")
    )
    window.open_capture("testsrc=size=160x96:rate=30", format="lavfi")
    qtbot.waitUntil(lambda: window.current is not None, timeout=WAIT_MS)
    window.snapshot_dialog()
    assert Path(offered[0]).name.startswith("live_testsrc")
