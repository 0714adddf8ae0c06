"""The app's text from outside (file names, paths, error messages) as widgets show it: one
line with its control characters visible, never read as HTML or as a menu's mnemonic."""

from __future__ import annotations

from html import escape

from PySide6 import QtGui
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from desmoke_app.commands.common import visible
from engine.video.errors import VideoError


def one_line(error: BaseException, context: str) -> str:
    """One readable line: the error's own message, else `context` before it (or its class
    name where it says nothing); control characters shown (visible)."""
    text = str(error).strip()
    if not text:
        return f"{context}: {type(error).__name__}"
    # These name the file, device or setting themselves (the engine's VideoError and
    # WeightsError, a ValueError, an OSError), on one line: a newline in them is a name's,
    # shown as \n; the context would only repeat them.
    if isinstance(error, (VideoError, ValueError, OSError)):
        return visible(text)
    # A library's message may run over lines: they are joined.
    return f"{context}: {visible(' '.join(text.split()))}"


def plain_label(text: str = "") -> QLabel:
    """A QLabel that shows its text as it is: by default Qt reads text that looks like
    HTML as HTML (a file named "<font size=7>OK<br>.mp4" would be drawn as a big "OK").
    Every label that may show a name is one."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def literal(text: str) -> str:
    """`text` for a widget that guesses whether text is HTML and has no setting to say
    (tooltips, QMessageBox's static functions): on one line, shown as it is. Text it would
    take for HTML is escaped and marked as HTML (<p>) for the escapes to be read; spaces
    kept as they are."""
    text = visible(text)
    if not QtGui.Qt.mightBeRichText(text):
        return text
    return f"<p style='white-space:pre-wrap'>{escape(text)}</p>"


def menu_text(text: str) -> str:
    """`text` as a menu item shows it: one line, and a '&' a '&' (not the next letter's
    underline and shortcut); a tab would start the shortcut's column."""
    return visible(text).replace("&", "&&")


def window_title(text: str) -> str:
    """`text` as a window's title shows it: one line, and a "[*]" in it kept (Qt's mark
    for unsaved changes, which it removes, unless doubled)."""
    return visible(text).replace("[*]", "[*][*]")
