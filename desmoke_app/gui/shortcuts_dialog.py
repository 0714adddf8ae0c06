"""Help > Keyboard and mouse: every shortcut, then the mouse gestures.

The shortcuts are read from the window's menus when the dialog is made, so the list cannot
go stale; the gestures are no actions, so they are a fixed list here.
"""

from __future__ import annotations

import re
from html import escape

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QMenu,
    QMenuBar,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

Rows = list[tuple[str, str]]  # (keys or gesture, what it does)

MOUSE_GESTURES: Rows = [
    ("Wheel", "Zoom all panes about the cursor (up to 32x)"),
    ("Drag", "Pan the zoomed panes"),
    ("Split view: drag", "Move the divider (right-drag pans)"),
    ("Double-click a pane", "That pane full screen (Esc, a double-click or its own key leaves)"),
    ("Click the timeline", "Seek to that time"),
    ("Drop a video file", "Open it"),
]


def plain_text(text: str) -> str:
    """A menu text as read: without its mnemonic '&' ('&&' is a literal '&') and '…'."""
    return re.sub(r"&(&?)", r"\1", text).replace("…", "").strip()


def key_text(action: QAction) -> str:
    """The action's shortcuts as the platform writes them (macOS: symbols), comma-separated."""
    native = QKeySequence.SequenceFormat.NativeText
    return ", ".join(key.toString(native) for key in action.shortcuts())


def key_hint(action: QAction) -> str:
    """The action's first shortcut as the platform writes it, for a hint in a message or a
    tip: "Ctrl+R" on Linux and Windows, "⌘R" on macOS (Qt's Ctrl is the Command key there)."""
    return action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)


def _with_shortcuts(menu: QMenu) -> list[QAction]:
    """The menu's actions that have a shortcut, those of its submenus included, in order."""
    found: list[QAction] = []
    for action in menu.actions():
        if action.menu() is not None:
            found += _with_shortcuts(action.menu())
        elif action.shortcuts():
            found.append(action)
    return found


def shortcut_groups(menu_bar: QMenuBar) -> list[tuple[str, Rows]]:
    """(menu title, its shortcuts' rows) for each menu of `menu_bar` that has a shortcut."""
    groups = []
    for entry in menu_bar.actions():
        rows = [(key_text(a), plain_text(a.text())) for a in _with_shortcuts(entry.menu())]
        if rows:
            groups.append((plain_text(entry.text()), rows))
    return groups


# The key column as narrow as its widest key (never wrapped), the rest for the description.
KEY_CELL = "<td width='1%' style='white-space: nowrap; padding-right: 16px'>"
COLUMN_CELL = "<td width='50%' valign='top' style='padding-right: 24px'>"


def _group_rows(heading: str, rows: Rows) -> str:
    head = f"<tr><td colspan='2' style='padding-top: 8px'><h3>{escape(heading)}</h3></td></tr>"
    cells = "".join(
        f"<tr>{KEY_CELL}<b>{escape(key)}</b></td><td>{escape(what)}</td></tr>" for key, what in rows
    )
    return head + cells


def groups_html(groups: list[tuple[str, Rows]]) -> str:
    """The groups in two columns of about as many lines, all in view at 800x500; one table
    a column, so that its descriptions line up."""
    lines = [len(rows) + 2 for _, rows in groups]  # a heading takes about two lines
    split = min(range(1, len(groups) + 1), key=lambda i: abs(2 * sum(lines[:i]) - sum(lines)))
    cells = "".join(
        f"{COLUMN_CELL}<table width='100%' cellspacing='2'>"
        + "".join(_group_rows(heading, rows) for heading, rows in column)
        + "</table></td>"
        for column in (groups[:split], groups[split:])
    )
    return f"<table width='100%'><tr>{cells}</tr></table>"


class ShortcutsDialog(QDialog):
    """The shortcuts of the menus of `menu_bar`, then the mouse gestures. Not modal: it
    can stay open beside the player while the keys are tried (the window gives it its
    actions, so that they work with the keyboard in it too)."""

    def __init__(self, menu_bar: QMenuBar, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard and mouse")
        groups = [*shortcut_groups(menu_bar), ("Mouse", MOUSE_GESTURES)]
        self.browser = QTextBrowser()  # scrolls where the dialog is made smaller
        self.browser.setHtml(groups_html(groups))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.resize(760, 480)
