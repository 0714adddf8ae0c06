"""Fixtures and helpers shared by the GUI tests (imported by tests/test_gui_*.py)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402

from desmoke_app.gui.lifetime import GuiThreadCollector  # noqa: E402
from desmoke_app.gui.main_window import MainWindow  # noqa: E402
from desmoke_app.gui.settings import AppSettings  # noqa: E402
from tests.clips import damaged_clip, make_index_clip, read_index  # noqa: E402, F401

CLIP_FRAMES = 48
CLIP_SIZE = (160, 96)
CLIP_FPS = 25
WAIT_MS = 10000
# Strength 0.5: dcp at full strength flattens the grey index code of the clips (it reads
# uniform grey as dense smoke); at half strength all three panes still spell the index.
DCP = {
    "model": "dcp",
    "backend": "auto",
    "working_short_side": 96,
    "patch_size": 15,
    "strength": 0.5,
}


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """48 frames of 160x96 at 25 fps; frame i shows index i."""
    folder = tmp_path_factory.mktemp("gui_clips")
    return make_index_clip(folder / "index.mp4", CLIP_FRAMES, CLIP_SIZE, CLIP_FPS)


def make_settings(folder: Path, processing: dict | None = None) -> AppSettings:
    """Settings in an INI file of the test's own: nothing read from or written to the user's."""
    settings = AppSettings(QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat))
    settings.set_processing({**DCP, **(processing or {})})
    return settings


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """The main window as desmoke-app runs it: garbage collected on the GUI thread only
    (desmoke_app.gui.lifetime), while it is up."""
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))
    collector = GuiThreadCollector()
    collector.start()
    try:
        win = MainWindow(make_settings(tmp_path))
        qtbot.addWidget(win)
        win.resize(900, 600)
        win.show()
        qtbot.waitUntil(lambda: win.processor_state is not None, timeout=WAIT_MS)
        yield win
        win.shutdown()
    finally:
        collector.stop()


def pane_indices(win: MainWindow) -> tuple[int, int, int]:
    """The frame index each of the three panes shows, read from the painted images."""
    return tuple(read_index(win.panes[k].array()) for k in ("original", "dark_channel", "desmoked"))


def wait_for_index(qtbot, win: MainWindow, index: int, timeout: int = WAIT_MS) -> None:
    """Until the window shows frame `index` in all three panes."""

    def shown() -> bool:
        if win.current is None or win.current.index != index:
            return False
        return pane_indices(win) == (index, index, index)

    qtbot.waitUntil(shown, timeout=timeout)


def wait_holding_the_gui(condition, timeout: int = WAIT_MS) -> None:
    """Until condition() (read across threads), with the GUI thread held: the workers run,
    but what they send the window stays queued, in order, until the test lets it run."""
    end = time.monotonic() + timeout / 1000
    while not condition():
        assert time.monotonic() < end, "timed out with the GUI thread held"
        time.sleep(0.005)


def open_clip(qtbot, win: MainWindow, path: Path) -> None:
    win.open_file(path)
    qtbot.waitUntil(
        lambda: win.source_info is not None and win.source_info.spec.path == str(path),
        timeout=WAIT_MS,
    )
    wait_for_index(qtbot, win, 0)


def long_clip(folder: Path) -> Path:
    """400 frames: an export of it is still running when a test acts on it."""
    return make_index_clip(folder / "long.mp4", 400, CLIP_SIZE, 25, gop=50)


def export_under_way(qtbot, win: MainWindow, clip: Path, out: Path):
    """Start exporting `clip` to `out` (its folder made) and wait for its first progress:
    (the job, the frame counts it has reported, a list that keeps growing)."""
    from desmoke_app.gui.export_worker import ExportRequest

    out.parent.mkdir()
    job = win.start_export(ExportRequest(str(clip), str(out), settings=DCP))
    progress = []
    job.worker.progress.connect(lambda done, total: progress.append(done))
    qtbot.waitUntil(lambda: len(progress) > 0, timeout=WAIT_MS)
    return job, progress


def is_uint8_image(array: np.ndarray) -> bool:
    return array.dtype == np.uint8 and array.ndim in (2, 3)
