"""Export dialog (output, range, layout, labels, quality) and the progress bar with cancel."""

from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QToolButton,
    QWidget,
)

from desmoke_app.commands.common import visible
from desmoke_app.gui.export_worker import ExportRequest
from desmoke_app.gui.messages import literal, plain_label
from desmoke_app.gui.outputs import CLAIMS
from engine.files import desmoked_name, name_too_long
from engine.video import LAYOUTS
from engine.video.writer import DEFAULT_CRF, MP4_SUFFIXES

#: Export qualities offered (H.264 crf): viewing, then material to be measured or shown.
QUALITIES = (
    ("standard (crf 20)", DEFAULT_CRF),
    ("high (crf 16)", 16),
    ("near-lossless (crf 10, large files)", 10),
)

LAYOUT_NAMES = {
    "3up": "Original | dark channel | desmoked",
    "2up": "Original | desmoked",
    "vertical": "Three panes stacked",
}


def source_label(source: str, video_stream: int, stream_count: int) -> str:
    """The source's name, with the video stream exported where it has several: "stereo.mkv,
    video stream 2 of 2" (numbered as the notice about them numbers them)."""
    name = visible(Path(source).name)
    if stream_count < 2:
        return name
    return f"{name}, video stream {video_stream + 1} of {stream_count}"


def default_output(source: str) -> str:
    """IN_desmoked.mp4 beside IN (the name `desmoke export` gives too)."""
    return str(Path(source).with_name(desmoked_name(source)))


class ExportDialog(QDialog):
    """Asks what to export; `request()` builds the ExportRequest once accepted."""

    def __init__(
        self,
        source: str,
        duration: float,
        selection: tuple[float, float] | None = None,
        layout: str = "3up",
        labels: bool = True,
        parent: QWidget | None = None,
        crf: int = DEFAULT_CRF,
        video_stream: int = 0,
        stream_count: int = 1,
    ) -> None:
        """`video_stream`: which of the source's `stream_count` video streams is exported
        (0 the first): the one the window shows."""
        super().__init__(parent)
        self.setWindowTitle("Export side-by-side video")
        self.source = source
        self.video_stream = video_stream
        self._replace_confirmed = ""  # an existing output the save dialog asked about
        form = QFormLayout(self)
        self.source_name = plain_label(source_label(source, video_stream, stream_count))
        form.addRow("Source", self.source_name)
        form.addRow("Output", self._output_row(source))
        form.addRow("Frames", self._range_row(duration, selection))
        self._format_rows(form, layout, labels, crf)
        self.error = plain_label()  # its messages name files
        self.error.setStyleSheet("color: #e05050")
        form.addRow(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._update_range()

    def _output_row(self, source: str) -> QHBoxLayout:
        """The output file's name (the source's, _desmoked), and a button to choose it."""
        self.output = QLineEdit(default_output(source))
        self.output.setToolTip("H.264 MP4; written to a temporary file, renamed when complete")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.output, 1)
        row.addWidget(browse)
        return row

    def _range_row(self, duration: float, selection: tuple[float, float] | None) -> QHBoxLayout:
        """Whole file, or a range (the marked one, if any) from start to end (s)."""
        self.whole = QRadioButton("Whole file")
        self.range = QRadioButton("Range")
        self.start = QDoubleSpinBox()
        self.end = QDoubleSpinBox()
        for box in (self.start, self.end):
            box.setRange(0.0, max(duration, 0.0))
            box.setDecimals(2)
            box.setSuffix(" s")
            box.setSingleStep(0.5)
        self.start.setValue(selection[0] if selection else 0.0)
        self.end.setValue(selection[1] if selection else duration)
        (self.range if selection else self.whole).setChecked(True)
        self.whole.toggled.connect(self._update_range)
        row = QHBoxLayout()
        for widget in (self.whole, self.range, self.start, QLabel("to"), self.end):
            row.addWidget(widget)
        return row

    def _format_rows(self, form: QFormLayout, layout: str, labels: bool, crf: int) -> None:
        """How the export looks: the panes' layout, their labels, the encoder's quality."""
        self.layout_box = QComboBox()
        for name in LAYOUTS:
            self.layout_box.addItem(LAYOUT_NAMES.get(name, name), name)
        self.layout_box.setCurrentIndex(max(0, self.layout_box.findData(layout)))
        form.addRow("Layout", self.layout_box)
        self.labels = QCheckBox("Label the panes")
        self.labels.setChecked(labels)
        form.addRow("", self.labels)
        self.quality = QComboBox()
        for text, value in QUALITIES:
            self.quality.addItem(text, value)
        known = self.quality.findData(crf)
        if known < 0:  # a value set elsewhere (the CLI's --crf is free): offer it as is
            self.quality.addItem(f"crf {crf}", crf)
            known = self.quality.count() - 1
        self.quality.setCurrentIndex(known)
        self.quality.setToolTip(
            "H.264 constant rate factor: lower keeps more detail in a larger file"
        )
        form.addRow("Quality", self.quality)

    def _update_range(self) -> None:
        for box in (self.start, self.end):
            box.setEnabled(self.range.isChecked())

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.output.text(), "MP4 (*.mp4)")
        if path:
            self._replace_confirmed = path
            self.output.setText(with_mp4_suffix(path))

    def validate(self) -> str:
        """An error message, or "" when the request can run."""
        output = self.output.text().strip()
        if not output:
            return "choose an output file"
        if Path(output).resolve() == Path(self.source).resolve():
            return "the output would overwrite the source"
        if Path(output).suffix.lower() not in MP4_SUFFIXES:
            return "the export is an MP4 file: name it .mp4"
        if name_too_long(output):  # Path.exists and is_dir raise on it (Python 3.11)
            return f"{Path(output).name[:40]}…: the file name is too long for the file system"
        if not os.path.isdir(Path(output).parent):
            return f"folder {Path(output).parent} does not exist"
        busy = CLAIMS.problem(output)  # asked here too, where the name can still be changed
        if busy:
            return busy
        if self.range.isChecked() and self.end.value() <= self.start.value():
            return "the range's end must come after its start"
        return ""

    def _accept(self) -> None:
        message = self.validate()
        self.error.setText(visible(message))
        if not message and self._may_write_output():
            self.accept()

    def _may_write_output(self) -> bool:
        """True unless the output exists and the user does not want it replaced (asked as
        the save dialog asks, unless it has)."""
        output = self.output.text().strip()
        if not os.path.exists(output) or output == self._replace_confirmed:
            return True
        answer = QMessageBox.question(
            self,
            "Replace the file?",
            literal(f"{output} already exists. Replace it?"),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def request(self, settings: dict) -> ExportRequest:
        ranged = self.range.isChecked()
        return ExportRequest(
            source=self.source,
            output=self.output.text().strip(),
            start=self.start.value() if ranged else 0.0,
            end=self.end.value() if ranged else None,
            layout=self.layout_box.currentData(),
            labels=self.labels.isChecked(),
            settings=dict(settings),
            crf=self.quality.currentData(),
            video_stream=self.video_stream,
        )


class ExportProgress(QWidget):
    """Status-bar widget: what is exported, a progress bar, a cancel button."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.label = plain_label()  # names the output
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(180)
        self.bar.setTextVisible(True)
        self.cancel = QToolButton()
        self.cancel.setText("Cancel")
        self.cancel.setToolTip("Stop the export; the partial file is removed")
        self.cancel.clicked.connect(self.cancel_requested)
        self._name, self._started = "", 0.0
        row.addWidget(self.label)
        row.addWidget(self.bar)
        row.addWidget(self.cancel)
        self.hide()

    def begin(self, output: str, now: float | None = None) -> None:
        self._name = visible(Path(output).name)
        self._started = time.monotonic() if now is None else now
        self.label.setText(f"Exporting {self._name}")
        self.bar.setRange(0, 0)  # busy until the first progress report
        self.cancel.setEnabled(True)
        self.show()

    def set_progress(self, done: int, expected: int, now: float | None = None) -> None:
        """Frames done of expected; the label adds the rate and the time left at that rate."""
        self.bar.setRange(0, max(1, expected))
        self.bar.setValue(min(done, expected))
        elapsed = (time.monotonic() if now is None else now) - self._started
        if done > 0 and elapsed > 0:
            fps = done / elapsed
            left = max(0, expected - done) / fps
            self.label.setText(f"Exporting {self._name} · {fps:.1f} fps · {_minutes(left)} left")

    def end(self) -> None:
        self.hide()


def _minutes(seconds: float) -> str:
    """1:05 (m:ss), or 1:02:05 from an hour."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def with_mp4_suffix(path: str) -> str:
    """A name from a save dialog, given the .mp4 that some platforms' dialogs leave off."""
    return path if Path(path).suffix.lower() in MP4_SUFFIXES else path + ".mp4"
