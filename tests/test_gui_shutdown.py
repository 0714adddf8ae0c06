"""Quitting while work runs: closing the window (or SIGTERM / SIGINT to the app) cancels an
export, which leaves no file, finishes a recording, which is kept, and returns promptly."""

# The shared fixtures (window) are imported from tests/gui_support.py, so their names
# shadow the test arguments by design.
# ruff: noqa: F811

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.video import FileSource
from tests.clips import make_index_clip
from tests.gui_support import (
    CLIP_SIZE,
    WAIT_MS,
    export_under_way,
    long_clip,
    open_clip,
    window,  # noqa: F401 (fixture)
)

REPOSITORY = Path(__file__).resolve().parents[1]

# desmoke-app's main with the export started at once, in a process of its own: a signal
# ends the whole process.
APP_EXPORTING = """
import sys
from pathlib import Path
from PySide6.QtWidgets import QApplication
from desmoke_app.gui.export_worker import ExportRequest
from desmoke_app.gui.main_window import MainWindow
from desmoke_app.gui.termination import TerminationSignals
from tests.gui_support import DCP, make_settings

clip, folder = sys.argv[1], Path(sys.argv[2])
app = QApplication(sys.argv[:1])
TerminationSignals(app)
window = MainWindow(make_settings(folder))
app.aboutToQuit.connect(window.shutdown)
window.show()
window.start_export(ExportRequest(clip, str(folder / "exports" / "out.mp4"), settings=DCP))
sys.exit(app.exec())
"""


def frames_in(path: Path) -> int:
    with FileSource(path) as video:
        return sum(1 for _ in video.frames())


def test_closing_mid_export_cancels_it_and_keeps_the_recording(qtbot, window, tmp_path) -> None:
    recording = tmp_path / "recording.mp4"
    open_clip(qtbot, window, make_index_clip(tmp_path / "shown.mp4", 200, CLIP_SIZE, 25))
    window.play()
    window.start_recording(recording)
    qtbot.waitUntil(lambda: window.workers.recorder.frames_written >= 3, timeout=WAIT_MS)
    out = tmp_path / "exports" / "out.mp4"
    job, _ = export_under_way(qtbot, window, long_clip(tmp_path), out)
    window.close()
    # Finished when close returns: the old deadlock gave up waiting after 30 s with the
    # thread still running.
    assert job.thread.isFinished()
    qtbot.waitUntil(lambda: job.outcome != "", timeout=WAIT_MS)  # its queued outcome
    assert job.outcome == "cancelled"
    assert list(out.parent.iterdir()) == []  # neither the output nor a temporary file
    assert frames_in(recording) >= 3


@pytest.mark.parametrize(
    "number", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"]
)
def test_a_termination_signal_closes_the_app_cleanly(tmp_path, number) -> None:
    clip = make_index_clip(tmp_path / "long.mp4", 600, (320, 192), 25, gop=50)
    exports = tmp_path / "exports"
    exports.mkdir()
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "DESMOKE_CACHE": str(tmp_path / "cache"),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", APP_EXPORTING, str(clip), str(tmp_path)],
        cwd=REPOSITORY,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(exports.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [p.name for p in exports.iterdir() if p.name.endswith(".partial.mp4")], (
        "the export had not started, or had ended, before the signal"
    )
    process.send_signal(number)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert list(exports.iterdir()) == []
