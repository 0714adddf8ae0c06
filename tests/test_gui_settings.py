"""The settings file: a damaged one (edited by hand, or cut short by a crash) never stops
the app; every unusable value is ignored, its default used, and the message bar names the
file and the keys once. A view saved on a bigger screen comes back in proportion."""

# The shared fixtures (window) are imported from tests/gui_support.py, so their names
# shadow the test arguments by design.
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from desmoke_app.gui.main_window import PLOTS_SHARE, PLOTS_SLACK, MainWindow
from desmoke_app.gui.settings import DEFAULT_PROCESSING, AppSettings
from tests.gui_support import WAIT_MS, make_settings, window  # noqa: F401 (fixture)

REPOSITORY = Path(__file__).resolve().parents[1]


def ini_settings(path: Path, text: str) -> AppSettings:
    """Settings read from an INI file holding `text`, as the user's file may."""
    path.write_text(text)
    return AppSettings(QSettings(str(path), QSettings.Format.IniFormat))


def built(qtbot, settings: AppSettings) -> MainWindow:
    """A window on `settings`, shown (the message bar says nothing while hidden)."""
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    return window


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[processing]\nstrength=nan\n", "processing/strength"),
        ("[processing]\nstrength=inf\n", "processing/strength"),
        ("[processing]\nstrength=7\n", "processing/strength"),
        ("[processing]\nworking_short_side=inf\n", "processing/working_short_side"),
        ("[processing]\npatch_size=big\n", "processing/patch_size"),
        ("[processing]\nbackend=quantum\n", "processing/backend"),
        ("[processing]\nmodel=nosuchmodel\n", "processing/model"),
    ],
)
def test_an_unusable_processing_value_gets_its_default(tmp_path, text, key) -> None:
    settings = ini_settings(tmp_path / "desmoke-app.conf", text)
    assert settings.processing() == DEFAULT_PROCESSING
    note = settings.unusable_note()
    assert note.startswith(f"ignored unusable settings in {tmp_path / 'desmoke-app.conf'}: ")
    assert key in note and "\n" not in note


def test_usable_values_are_read_as_saved_and_leave_no_note(tmp_path) -> None:
    saved = {"model": "dcp", "backend": "auto", "working_short_side": 128, "patch_size": 9}
    settings = make_settings(tmp_path, {**saved, "strength": 0.25})
    settings.set_value("export/layout", "2up")
    settings.sync()
    again = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert again.processing() == {**saved, "strength": 0.25}
    assert again.value("export/layout", "3up") == "2up"
    assert again.unusable_note() == ""


@pytest.mark.parametrize("line", ["geometry=garbage", "state=garbage", "geometry=1, 2"])
def test_a_window_with_a_damaged_view_starts_and_says_which(qtbot, tmp_path, line) -> None:
    """restoreGeometry(str) raised a TypeError: the app could not start, every time."""
    path = tmp_path / "desmoke-app.conf"
    window = built(qtbot, ini_settings(path, f"[window]\n{line}\n"))
    key = "window/" + line.partition("=")[0]
    assert window.message_bar.text() == (
        f"ignored unusable settings in {path}: {key} "
        "(the defaults are used until set again in the app)"
    )
    window.shutdown()


def test_damaged_values_are_named_in_one_line(qtbot, tmp_path) -> None:
    text = "[processing]\nstrength=nan\n[export]\nlayout=5up\n[window]\nstate=x\n"
    window = built(qtbot, ini_settings(tmp_path / "desmoke-app.conf", text))
    assert window.controls.settings()["strength"] == 1.0
    said = window.message_bar.text()
    assert "processing/strength, window/state, export/layout" in said and "\n" not in said
    window.shutdown()


def saved_view(qtbot, folder: Path) -> bytes:
    """A settings file as the app saves it on quitting."""
    window = built(qtbot, make_settings(folder))
    window.resize(900, 600)
    window.shutdown()
    return (folder / "settings.ini").read_bytes()


def test_a_saved_view_cut_short_anywhere_still_starts(qtbot, tmp_path) -> None:
    """A real saved file cut inside its @ByteArray( lines crashed at every cut point."""
    whole = saved_view(qtbot, tmp_path)
    cuts = []
    for key in (b"geometry=@ByteArray(", b"state=@ByteArray("):
        start = whole.index(key) + len(key)
        cuts += [start - 1, start, start + 7, start + 30]
    for cut in cuts:
        path = tmp_path / f"cut{cut}.ini"
        path.write_bytes(whole[:cut])
        window = built(qtbot, AppSettings(QSettings(str(path), QSettings.Format.IniFormat)))
        # Built, and running: its processor answers (the demo plays), the window laid out.
        qtbot.waitUntil(lambda w=window: w.processor_state is not None, timeout=WAIT_MS)
        assert window.isVisible() and window.height() > 0
        window.shutdown()


def test_recording_with_an_unknown_saved_layout_records_the_default(
    qtbot, window, tmp_path
) -> None:
    """export/layout=5up made every recording fail with "unknown layout '5up'"."""
    window.settings.set_value("export/layout", "5up")
    window.open_capture("testsrc=size=160x96:rate=30", format="lavfi")
    qtbot.waitUntil(lambda: window.current is not None, timeout=WAIT_MS)
    out = tmp_path / "recorded.mp4"
    window.start_recording(out)
    qtbot.waitUntil(lambda: window.workers.recorder.frames_written >= 2, timeout=WAIT_MS)
    window.stop_recording()
    qtbot.waitUntil(out.is_file, timeout=WAIT_MS)
    assert window.message_bar.level != "error", window.message_bar.text()


def plots_share(window: MainWindow) -> float:
    return window.plots_dock.height() / window.height()


def test_plots_the_user_enlarged_stay_so_in_a_window_back_at_its_size(qtbot, tmp_path) -> None:
    """Only a window that cannot come back as saved (another screen) has its docks fitted."""
    first = built(qtbot, make_settings(tmp_path))
    first.resize(700, 500)  # within the offscreen platform's 800x600 screen
    first.resizeDocks([first.plots_dock], [320], Qt.Orientation.Vertical)
    qtbot.waitUntil(lambda: plots_share(first) > 0.5, timeout=WAIT_MS)
    first.shutdown()
    again = built(qtbot, make_settings(tmp_path))
    qtbot.wait(200)  # _fit_restored_docks would run on the first pass of the event loop
    assert again.size() == first.size() and plots_share(again) > 0.5
    again.shutdown()


# The window as saved on one screen, reopened on another (the offscreen platform's screen
# comes from a JSON file): prints the window's height and the plots'.
APP_ON_A_SCREEN = """
import sys
from PySide6.QtWidgets import QApplication
from desmoke_app.gui.main_window import MainWindow
from tests.gui_support import make_settings
from pathlib import Path

app = QApplication(sys.argv[:1])
window = MainWindow(make_settings(Path(sys.argv[1])))
if sys.argv[2] == "big":
    window.resize(3000, 1800)
window.show()
for _ in range(20):
    app.processEvents()
print(window.height(), window.plots_dock.height())
window.shutdown()
"""


def on_screen(tmp_path: Path, width: int, height: int, how: str) -> tuple[int, int]:
    screen = tmp_path / f"screen{width}x{height}.json"
    one = {"name": "s", "x": 0, "y": 0, "width": width, "height": height}
    screen.write_text(json.dumps({"screens": [{**one, "logicalDpi": 96, "dpr": 1}]}))
    done = subprocess.run(
        [sys.executable, "-c", APP_ON_A_SCREEN, str(tmp_path), how],
        cwd=REPOSITORY,
        env={
            **os.environ,
            "QT_QPA_PLATFORM": f"offscreen:configfile={screen}",
            "DESMOKE_CACHE": str(tmp_path / "cache"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    window_height, plots_height = map(int, done.stdout.split())
    return window_height, plots_height


def test_a_view_saved_on_a_big_screen_fits_a_small_one(tmp_path) -> None:
    """Saved at 3000x1800 on a 4K screen, the window came back on a 1024x600 one with the
    plots as high as they were (228 px of 404): panes about 100 px high."""
    on_screen(tmp_path, 3840, 2160, "big")
    window_height, plots_height = on_screen(tmp_path, 1024, 600, "small")
    assert window_height <= 600
    assert plots_height <= PLOTS_SHARE * window_height + PLOTS_SLACK
