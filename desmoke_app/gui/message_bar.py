"""The message line inside the main window, above the panes: errors and warnings stay until
closed, notes fade."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QToolButton, QWidget

from desmoke_app.commands.common import visible
from desmoke_app.gui.messages import plain_label

#: How long a note ("info") stays (ms).
INFO_TIMEOUT_MS = 8000


class MessageBar(QWidget):
    """A message line inside the window (errors stay until closed; notes fade)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 4, 4)
        self.label = plain_label()  # messages name files: never read as HTML
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        row.addWidget(self.label, 1)
        row.addWidget(close)
        self.level = ""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_message(self, text: str, level: str = "error") -> None:
        """Show `text` (on one line: a newline in a file's name is shown as \\n)."""
        self.level = level
        colour = {"error": "#7a1f1f", "warning": "#6b5312"}.get(level, "#1f4a6b")
        self.setStyleSheet(f"background: {colour}; color: white;")
        self.label.setText(visible(text))
        self.show()
        if level == "info":
            self._timer.start(INFO_TIMEOUT_MS)
        else:
            self._timer.stop()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""
