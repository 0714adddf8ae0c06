"""Choose a capture device (from those found) and its size and frame rate."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QWidget,
)

from desmoke_app.commands.common import visible
from desmoke_app.gui.reader import SourceSpec
from desmoke_app.gui.settings import AppSettings
from engine.video.capture_source import COMPRESSED_FORMATS, NO_COMPRESSED_STREAM

TEST_PATTERN = ("Test pattern (FFmpeg testsrc)", "testsrc=size=1280x720:rate=30", "lavfi")
SIZES = (None, (640, 480), (1280, 720), (1920, 1080), (3840, 2160))
#: Frame rates offered, None the device's own. NTSC-rate cards send 30000/1001 and
#: 60000/1001 fps ("29.97", "59.94"): those quotients are what CaptureSource is given and
#: the settings keep; CaptureSource words them for the device (dshow's card lists take 29.97).
RATES = (None, 25.0, 30000 / 1001, 30.0, 50.0, 60000 / 1001, 60.0)
STREAMS = (
    ("device default", None),
    ("MJPEG (compressed: 1080p at full rate from USB capture cards)", "mjpeg"),
    ("raw YUYV 4:2:2 (uncompressed)", "yuyv422"),
)
STREAM_TIP = (
    "What the device sends: a USB capture card gives 1080p at 30 or 60 fps only as MJPEG; "
    "raw frames save it the compression"
)


def rate_label(rate: float | None) -> str:
    """A frame rate as the dialog shows it: "29.97 fps" for 30000/1001."""
    return "device default" if rate is None else f"{round(rate, 2):g} fps"


class CaptureDialog(QDialog):
    """Device, size, frame rate and stream; with `settings`, opens on the last choices."""

    def __init__(self, parent: QWidget | None = None, settings: AppSettings | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Open capture device")
        from engine.video import list_capture_devices

        form = QFormLayout(self)
        self.device = QComboBox()
        devices = list_capture_devices()
        for device in devices:
            # A device's name is the device's to choose: shown on one line, as it is.
            self.device.addItem(visible(device.description), (device.path, device.format))
        self.device.addItem(TEST_PATTERN[0], TEST_PATTERN[1:])
        self.device.setToolTip("Capture cards and cameras found on this machine")
        form.addRow("Device", self.device)
        if not devices:
            form.addRow("", QLabel("No capture device found; the test pattern stands in."))
        self.size = QComboBox()
        for size in SIZES:  # item data as text: a tuple comes back from Qt as a list
            text = None if size is None else f"{size[0]}x{size[1]}"
            self.size.addItem(text or "device default", text)
        self.fps = QComboBox()
        for rate in RATES:
            self.fps.addItem(rate_label(rate), rate)
        self.stream = QComboBox()
        self._device_changed()  # the streams the first device can be asked for
        form.addRow("Size", self.size)
        form.addRow("Frame rate", self.fps)
        form.addRow("Stream", self.stream)
        self.device.currentIndexChanged.connect(self._device_changed)
        self._select_remembered()
        self._device_changed()
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _select_remembered(self) -> None:
        if self.settings is None:
            return
        device = self.settings.value("capture/device", "")
        for index in range(self.device.count()):
            if self.device.itemData(index)[0] == device:
                self.device.setCurrentIndex(index)
        for key, combo in self._choices().items():
            remembered = self.settings.value(f"capture/{key}", "")
            for index in range(combo.count()):
                if str(combo.itemData(index) or "") == remembered:
                    combo.setCurrentIndex(index)

    def remember(self) -> None:
        """Keep the choices for next time (after the dialog was accepted)."""
        if self.settings is None:
            return
        self.settings.set_value("capture/device", self.device.currentData()[0])
        for key, combo in self._choices().items():
            self.settings.set_value(f"capture/{key}", str(combo.currentData() or ""))

    def _choices(self) -> dict[str, QComboBox]:
        """The remembered combo boxes besides the device, by settings key."""
        return {"size": self.size, "fps": self.fps, "stream": self.stream}

    def _device_changed(self) -> None:
        _path, fmt = self.device.currentData()
        self._fill_streams(fmt)
        generated = fmt == "lavfi"  # the test pattern has no stream to choose
        self.stream.setEnabled(not generated)
        if generated:
            self.stream.setCurrentIndex(0)

    def _fill_streams(self, fmt: str) -> None:
        """The streams device format `fmt` can be asked for (no MJPEG from dshow or
        avfoundation: the tip says why); the choice made is kept where it is one of them."""
        chosen = self.stream.currentData()
        refused = NO_COMPRESSED_STREAM.get(fmt)
        self.stream.clear()
        for text, pixel_format in STREAMS:
            if not (refused and pixel_format in COMPRESSED_FORMATS):
                self.stream.addItem(text, pixel_format)
        self.stream.setCurrentIndex(max(0, self.stream.findData(chosen)))
        no_mjpeg = f". No MJPEG choice with {fmt}: {refused}" if refused else ""
        self.stream.setToolTip(STREAM_TIP + no_mjpeg)

    def spec(self) -> SourceSpec:
        path, fmt = self.device.currentData()
        size_text = self.size.currentData()
        size = tuple(int(v) for v in size_text.split("x")) if size_text else None
        return SourceSpec(
            "capture",
            path,
            format=fmt,
            size=size,
            fps=self.fps.currentData(),
            pixel_format=self.stream.currentData(),
        )
