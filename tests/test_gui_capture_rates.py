"""The capture dialog's NTSC frame rates: 29.97 and 59.94 fps (30000/1001, 60000/1001),
which an NTSC-rate card sends and which only the command line's --fps could ask for."""

from __future__ import annotations

from fractions import Fraction

import pytest
from PySide6.QtCore import QSettings

from desmoke_app.gui.settings import AppSettings
from engine.video import CaptureDevice
from tests.gui_support import make_settings

CARD = CaptureDevice("USB3 capture", "/dev/video4", "v4l2", "USB3 capture (v4l2)")


def _dialog(qtbot, monkeypatch, settings=None):
    import engine.video
    from desmoke_app.gui.capture_dialog import CaptureDialog

    monkeypatch.setattr(engine.video, "list_capture_devices", lambda: [CARD])
    dialog = CaptureDialog(settings=settings)
    qtbot.addWidget(dialog)
    return dialog


def test_capture_dialog_offers_the_ntsc_rates(qtbot, monkeypatch) -> None:
    dialog = _dialog(qtbot, monkeypatch)
    labels = [dialog.fps.itemText(i) for i in range(dialog.fps.count())]
    assert labels == [
        "device default",
        "25 fps",
        "29.97 fps",
        "30 fps",
        "50 fps",
        "59.94 fps",
        "60 fps",
    ]
    for label, exact in (
        ("29.97 fps", Fraction(30000, 1001)),
        ("59.94 fps", Fraction(60000, 1001)),
    ):
        dialog.fps.setCurrentIndex(dialog.fps.findText(label))
        rate = dialog.spec().fps
        assert rate == exact.numerator / exact.denominator  # the quotient, not 29.97
        assert Fraction(rate).limit_denominator(1001) == exact


@pytest.mark.parametrize("label", ["29.97 fps", "59.94 fps", "25 fps"])
def test_a_saved_ntsc_rate_comes_back_selected(qtbot, monkeypatch, tmp_path, label) -> None:
    settings = make_settings(tmp_path)
    dialog = _dialog(qtbot, monkeypatch, settings)
    dialog.fps.setCurrentIndex(dialog.fps.findText(label))
    chosen = dialog.spec()
    dialog.remember()
    settings.sync()
    # A new session: the settings read back from the file.
    reread = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    again = _dialog(qtbot, monkeypatch, reread)
    assert again.fps.currentText() == label
    assert again.spec() == chosen


def test_a_rate_saved_before_the_ntsc_rates_still_comes_back(qtbot, monkeypatch, tmp_path) -> None:
    """Earlier versions saved str(30.0): the item data of 30 fps is still that float."""
    settings = make_settings(tmp_path)
    settings.set_value("capture/fps", "30.0")
    assert _dialog(qtbot, monkeypatch, settings).fps.currentText() == "30 fps"


def test_the_test_pattern_opens_at_an_ntsc_rate(qtbot, monkeypatch) -> None:
    """The rate the dialog gives is one CaptureSource takes (lavfi: an fps filter)."""
    from engine.video import CaptureSource

    dialog = _dialog(qtbot, monkeypatch)
    dialog.device.setCurrentIndex(dialog.device.count() - 1)  # the test pattern
    dialog.size.setCurrentIndex(dialog.size.findText("640x480"))
    dialog.fps.setCurrentIndex(dialog.fps.findText("29.97 fps"))
    spec = dialog.spec()
    with CaptureSource(spec.path, format=spec.format, size=spec.size, fps=spec.fps) as source:
        assert source.fps == pytest.approx(29.97, abs=0.001)
        assert source.read() is not None
