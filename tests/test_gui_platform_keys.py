"""Key hints and choices as each platform has them: the hints in messages and tips are
written from the actions' own keys (macOS shows ⌘ where Linux and Windows show Ctrl), the
full-screen panes have keys that a Mac laptop keeps (its F9-F11 are media keys), and the
capture dialog offers only the streams the device format can be asked for.

No macOS here: its key text is simulated (QKeySequence's NativeText written as Qt writes it
on a Mac), and its devices by their format name."""

# The shared fixtures (window, clip) are imported from tests/gui_support.py, so their
# names shadow the test arguments by design.
# ruff: noqa: F811

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from desmoke_app.gui.shortcuts_dialog import key_hint
from engine.video import CaptureDevice
from tests.gui_support import (
    WAIT_MS,
    clip,  # noqa: F401 (fixture)
    make_settings,
    open_clip,
    window,  # noqa: F401 (fixture)
)

LIVE = "testsrc=size=160x96:rate=30"
NATIVE = QKeySequence.SequenceFormat.NativeText
MAC_MODIFIERS = {"Ctrl+": "⌘", "Shift+": "⇧", "Alt+": "⌥", "Meta+": "⌃"}


@pytest.fixture
def mac_key_text(monkeypatch):
    """QKeySequence's NativeText as Qt writes it on macOS (Ctrl+R: ⌘R); other formats as
    they are."""
    portable = QKeySequence.toString

    def to_string(self, format=QKeySequence.SequenceFormat.PortableText):
        text = portable(self, QKeySequence.SequenceFormat.PortableText)
        if format != NATIVE:
            return text
        for modifier, symbol in MAC_MODIFIERS.items():
            text = text.replace(modifier, symbol)
        return text

    monkeypatch.setattr(QKeySequence, "toString", to_string)


def test_key_hint_is_the_first_key_as_the_platform_writes_it(qtbot, window, mac_key_text) -> None:
    assert key_hint(window.record_action) == "⌘R"
    assert key_hint(window.open_action) == "⌘O"


def test_hints_in_messages_name_the_mac_keys(qtbot, window, clip, tmp_path, mac_key_text) -> None:
    """They read "Ctrl+R" and "Ctrl+O" whatever the platform: wrong on a Mac."""
    window.mark(0)  # no source yet
    assert window.message_bar.text() == "export range marks work on video files: open one (⌘O)"
    window.open_capture(LIVE, format="lavfi")
    qtbot.waitUntil(lambda: window.current is not None, timeout=WAIT_MS)
    window.export_dialog()
    assert window.message_bar.text() == (
        "export works on video files: a live capture is kept by recording the view (⌘R)"
    )
    out = tmp_path / "live.mp4"
    window.start_recording(out)
    qtbot.waitUntil(window.record_action.isChecked, timeout=WAIT_MS)
    assert window.message_bar.text() == f"recording to {out}: ⌘R stops"
    assert window.record_label.toolTip() == "Recording the view (⌘R stops)"
    window.stop_recording()
    qtbot.waitUntil(lambda: not window.record_action.isChecked(), timeout=WAIT_MS)


def test_hints_follow_the_actions_keys(qtbot, window) -> None:
    """One source for a key and its hint: a key changed is a hint changed."""
    window.open_action.setShortcut(QKeySequence("Ctrl+Shift+O"))
    window.mark(1)
    assert window.message_bar.text().endswith("open one (Ctrl+Shift+O)")


def full_screen_actions(window) -> dict[str, list[str]]:
    return {
        action.text(): [key.toString() for key in action.shortcuts()]
        for action in window.actions()
        if action.text().startswith("Full screen:")
    }


def test_full_screen_panes_have_keys_a_mac_laptop_keeps(qtbot, window, clip) -> None:
    """F9-F11 are media keys on a Mac laptop (F11: Show Desktop): Ctrl+1-3 (⌘1-3) as well."""
    assert list(full_screen_actions(window).values()) == [
        ["F9", "Ctrl+1"],
        ["F10", "Ctrl+2"],
        ["F11", "Ctrl+3"],
    ]
    open_clip(qtbot, window, clip)
    window.pane_area.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window._full_screen is not None, timeout=WAIT_MS)
    pane = window._full_screen
    assert pane.kind == "dark_channel"
    qtbot.keyClick(pane, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)  # again: leaves
    assert window._full_screen is None


def test_no_two_actions_share_a_key(window) -> None:
    keys = [key.toString() for action in window.actions() for key in action.shortcuts()]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_the_keys_dialog_lists_the_mac_full_screen_keys(qtbot, window, mac_key_text) -> None:
    from tests.test_gui_widgets import open_shortcuts

    (dialog,) = open_shortcuts(qtbot, window)
    text = dialog.browser.toPlainText()
    assert "\nF9, ⌘1\nFull screen: Original\n" in text
    assert "\nF11, ⌘3\nFull screen: Desmoked\n" in text
    assert "F9-F11" not in text  # the double-click's row names no keys a Mac lacks


def capture_dialog(qtbot, monkeypatch, devices, settings=None):
    import engine.video
    from desmoke_app.gui.capture_dialog import CaptureDialog

    monkeypatch.setattr(engine.video, "list_capture_devices", lambda: devices)
    dialog = CaptureDialog(settings=settings)
    qtbot.addWidget(dialog)
    return dialog


def streams(dialog) -> list:
    return [dialog.stream.itemData(i) for i in range(dialog.stream.count())]


MAC_CARD = CaptureDevice("USB3 capture", "0", "avfoundation", "USB3 capture (avfoundation)")
WINDOWS_CARD = CaptureDevice("USB3 capture", "video=USB3 capture", "dshow", "USB3 capture (dshow)")
LINUX_CARD = CaptureDevice("USB3 capture", "/dev/video4", "v4l2", "USB3 capture (v4l2)")


@pytest.mark.parametrize("card", [MAC_CARD, WINDOWS_CARD], ids=["avfoundation", "dshow"])
def test_the_capture_dialog_offers_no_mjpeg_where_the_format_cannot_take_it(
    qtbot, monkeypatch, card
) -> None:
    """avfoundation's pixel_format is raw only ("mjpeg" failed to open); dshow picks MJPEG
    by size and rate alone (its "vcodec" was no option: silently unused). The tip says why."""
    dialog = capture_dialog(qtbot, monkeypatch, [card])
    assert dialog.stream.isEnabled() and streams(dialog) == [None, "yuyv422"]
    assert f"No MJPEG choice with {card.format}" in dialog.stream.toolTip()
    assert dialog.spec().pixel_format is None


def test_the_capture_dialog_keeps_mjpeg_for_v4l2_and_drops_it_on_a_switch(
    qtbot, monkeypatch, tmp_path
) -> None:
    settings = make_settings(tmp_path)
    dialog = capture_dialog(qtbot, monkeypatch, [LINUX_CARD, MAC_CARD], settings)
    assert (
        streams(dialog) == [None, "mjpeg", "yuyv422"] and "No MJPEG" not in dialog.stream.toolTip()
    )
    dialog.stream.setCurrentIndex(dialog.stream.findData("yuyv422"))
    dialog.device.setCurrentIndex(1)  # the Mac card: the raw choice is kept
    assert streams(dialog) == [None, "yuyv422"] and dialog.spec().pixel_format == "yuyv422"
    dialog.device.setCurrentIndex(0)
    dialog.stream.setCurrentIndex(dialog.stream.findData("mjpeg"))
    dialog.remember()
    dialog.device.setCurrentIndex(1)  # MJPEG chosen, then a device that has none: default
    assert dialog.spec().pixel_format is None
    settings.set_value("capture/device", MAC_CARD.path)  # remembered MJPEG, a Mac card now
    again = capture_dialog(qtbot, monkeypatch, [LINUX_CARD, MAC_CARD], settings)
    assert again.spec().path == MAC_CARD.path and again.spec().pixel_format is None
