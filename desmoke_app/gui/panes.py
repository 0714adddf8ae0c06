"""Pane widgets: the three synchronised panes, the before/after split view, full-screen pane.

Panes paint a QImage that wraps the numpy array it was made from; the pane keeps that array
alive (QImage does not own the buffer). Arrays come fresh from the processor and are never
written again, so no copy is needed.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QHBoxLayout, QSplitter, QStackedWidget, QWidget

PANES = ("original", "dark_channel", "desmoked")
TITLES = {"original": "Original", "dark_channel": "Dark channel", "desmoked": "Desmoked"}
TIPS = {
    "original": "The source frame as decoded",
    "dark_channel": "Dark channel of the frame (per-pixel min of R, G, B, then a patch min "
    "filter): bright where smoke or haze lifts the darkest colour",
    "desmoked": "The frame with the estimated smoke removed, at full resolution",
}


def to_qimage(array: np.ndarray) -> QImage:
    """QImage view of a C-contiguous uint8 HxW (grey) or HxWx3 (RGB) array (not copied)."""
    if array.dtype != np.uint8 or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array, dtype=np.uint8)
    height, width = array.shape[:2]
    if array.ndim == 2:
        return QImage(array.data, width, height, array.strides[0], QImage.Format.Format_Grayscale8)
    return QImage(array.data, width, height, array.strides[0], QImage.Format.Format_RGB888)


def fit_rect(image_w: int, image_h: int, area: QRect) -> QRectF:
    """The largest rectangle of the image's aspect centred in `area`."""
    if image_w <= 0 or image_h <= 0:
        return QRectF(area)
    scale = min(area.width() / image_w, area.height() / image_h)
    w, h = image_w * scale, image_h * scale
    return QRectF(area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h)


class PaneView(QWidget):
    """One image, aspect kept, black borders, a title; double-click asks for full screen."""

    full_screen_requested = Signal(str)

    def __init__(self, kind: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.title = TITLES.get(kind, kind)
        self.setToolTip(f"{TIPS.get(kind, '')} (double-click: full screen)")
        self.setMinimumSize(120, 80)
        self._array: np.ndarray | None = None
        self._image: QImage | None = None

    def set_array(self, array: np.ndarray | None) -> None:
        self._array = None if array is None else np.ascontiguousarray(array)
        self._image = None if array is None else to_qimage(self._array)
        self.update()

    def array(self) -> np.ndarray | None:
        """The image this pane paints (what a test reads back)."""
        return self._array

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(16, 16, 16))
        if self._image is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            target = fit_rect(self._image.width(), self._image.height(), self.rect())
            painter.drawImage(target, self._image)
        _draw_caption(painter, self.title, QPointF(8, 6))
        painter.end()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.full_screen_requested.emit(self.kind)


def _draw_caption(painter: QPainter, text: str, at: QPointF) -> None:
    metrics = painter.fontMetrics()
    box = QRectF(at, metrics.size(0, text)).adjusted(-4, -2, 4, 2)
    painter.fillRect(box, QColor(0, 0, 0, 150))
    painter.setPen(QColor(235, 235, 235))
    painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)


class SplitView(QWidget):
    """Original and desmoked in one pane, split by a divider the user drags."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip("Drag to move the before/after divider")
        self.setMinimumSize(160, 100)
        self.setMouseTracking(False)
        self.divider = 0.5  # fraction of the image width
        self._before: np.ndarray | None = None
        self._after: np.ndarray | None = None
        self._images: tuple[QImage, QImage] | None = None

    def set_arrays(self, before: np.ndarray, after: np.ndarray) -> None:
        self._before, self._after = before, after
        self._images = (to_qimage(before), to_qimage(after))
        self.update()

    def set_divider(self, fraction: float) -> None:
        self.divider = min(1.0, max(0.0, fraction))
        self.update()

    def _target(self) -> QRectF:
        if self._images is None:
            return QRectF(self.rect())
        image = self._images[0]
        return fit_rect(image.width(), image.height(), self.rect())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(16, 16, 16))
        target = self._target()
        if self._images is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            before, after = self._images
            split_x = target.x() + target.width() * self.divider
            painter.drawImage(target, after)
            painter.save()
            painter.setClipRect(
                QRectF(target.x(), target.y(), split_x - target.x(), target.height())
            )
            painter.drawImage(target, before)
            painter.restore()
            painter.setPen(QPen(QColor(255, 255, 255), 2))
            painter.drawLine(QPointF(split_x, target.top()), QPointF(split_x, target.bottom()))
            _draw_caption(painter, "Original", QPointF(target.x() + 8, target.y() + 6))
            caption_w = painter.fontMetrics().horizontalAdvance("Desmoked") + 16
            _draw_caption(painter, "Desmoked", QPointF(target.right() - caption_w, target.y() + 6))
        painter.end()

    def _drag(self, event: QMouseEvent) -> None:
        target = self._target()
        if target.width() > 0:
            self.set_divider((event.position().x() - target.x()) / target.width())

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._drag(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._drag(event)


class PaneArea(QStackedWidget):
    """Page 0: three panes in a resizable splitter; page 1: the split view."""

    full_screen_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.panes = {kind: PaneView(kind) for kind in PANES}
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        for pane in self.panes.values():
            splitter.addWidget(pane)
            pane.full_screen_requested.connect(self.full_screen_requested)
        self.splitter = splitter
        self.split_view = SplitView()
        self.addWidget(splitter)
        self.addWidget(self.split_view)

    def show_frame(self, original: np.ndarray, dark: np.ndarray, desmoked: np.ndarray) -> None:
        # Only the visible page is painted; both keep the current frame for switching.
        self.panes["original"].set_array(original)
        self.panes["dark_channel"].set_array(dark)
        self.panes["desmoked"].set_array(desmoked)
        self.split_view.set_arrays(original, desmoked)

    def set_split(self, split: bool) -> None:
        self.setCurrentIndex(1 if split else 0)

    def is_split(self) -> bool:
        return self.currentIndex() == 1


class FullScreenPane(QWidget):
    """One pane alone, full screen; Esc, F or a double-click closes it."""

    closed = Signal()

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.setWindowTitle(f"desmoke - {TITLES.get(kind, kind)}")
        self.view = PaneView(kind, self)
        self.view.full_screen_requested.connect(lambda _kind: self.close())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Escape, Qt.Key.Key_F):
            self.close()
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.closed.emit()
        super().closeEvent(event)
