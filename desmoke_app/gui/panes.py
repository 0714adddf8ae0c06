"""Pane widgets: the three synchronised panes, the before/after split view, full-screen pane.

Every view shares one ZoomState: the mouse wheel zooms about the cursor, a drag pans (in
the split view, a right- or middle-button drag: the left button moves the divider), and
all panes show the same part of the frame, so detail can be compared pane by pane.

Panes paint a QImage that wraps the numpy array it was made from; the pane keeps that array
alive (QImage does not own the buffer). Arrays come fresh from the processor and are never
written again, so no copy is needed.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QWheelEvent,
)
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


class ZoomState(QObject):
    """How far the views are zoomed in and where: shared by every pane, so they stay in step.

    scale: 1 shows the whole frame fitted to the pane, up to MAX_SCALE; centre: the frame
    point (x, y as fractions of its width and height) shown at the middle of the fitted
    area. A pane (`area`) is kept covered by the zoomed frame wherever the frame is larger
    than it, and the frame is centred along a side where it is smaller, so zooming in
    fills the pane's black borders too.
    """

    changed = Signal()
    MAX_SCALE = 32.0
    STEP = 1.25  # one wheel notch or one key press

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.scale = 1.0
        self.centre = QPointF(0.5, 0.5)

    def rect_in(self, fit: QRectF, area: QRectF | None = None) -> QRectF:
        """Where the whole (zoomed) frame lies, for a pane `area` (default: `fit`) that fits
        the unzoomed frame into `fit`."""
        width, height = fit.width() * self.scale, fit.height() * self.scale
        middle = fit.center()
        x = middle.x() - self.centre.x() * width
        y = middle.y() - self.centre.y() * height
        return _placed(x, y, width, height, fit if area is None else area)

    def pixel_at(
        self, fit: QRectF, area: QRectF, point: QPointF, size: tuple[int, int]
    ) -> tuple[int, int]:
        """The frame pixel (x, y) of a `size` (width, height) frame shown at pane point
        `point`, or (-1, -1) where the pane shows none."""
        zoomed = self.rect_in(fit, area)
        if zoomed.isEmpty() or not zoomed.intersected(area).contains(point):
            return (-1, -1)
        width, height = size
        x = int((point.x() - zoomed.x()) / zoomed.width() * width)
        y = int((point.y() - zoomed.y()) / zoomed.height() * height)
        return (min(max(x, 0), width - 1), min(max(y, 0), height - 1))

    def zoom_about(
        self, factor: float, fit: QRectF, point: QPointF, area: QRectF | None = None
    ) -> None:
        """Zoom by `factor`, keeping the frame point under `point` (pane coordinates) there
        as far as the pane stays covered."""
        scale = min(self.MAX_SCALE, max(1.0, self.scale * factor))
        area = fit if area is None else area
        before = self.rect_in(fit, area)
        if scale == self.scale or before.isEmpty():
            return
        u = (point.x() - before.x()) / before.width()
        v = (point.y() - before.y()) / before.height()
        self.scale = scale
        width, height = fit.width() * scale, fit.height() * scale
        self._show(_placed(point.x() - u * width, point.y() - v * height, width, height, area), fit)

    def zoom_by(self, factor: float) -> None:
        """Zoom about the middle of the view (keyboard)."""
        self.zoom_about(factor, QRectF(0, 0, 1, 1), QPointF(0.5, 0.5))

    def pan(self, fit: QRectF, delta: QPointF, area: QRectF | None = None) -> None:
        """Move the frame by `delta` pane pixels (a drag)."""
        area = fit if area is None else area
        zoomed = self.rect_in(fit, area)
        if not zoomed.isEmpty():
            self._show(
                _placed(
                    zoomed.x() + delta.x(),
                    zoomed.y() + delta.y(),
                    zoomed.width(),
                    zoomed.height(),
                    area,
                ),
                fit,
            )

    def reset(self) -> None:
        if self.scale != 1.0 or self.centre != QPointF(0.5, 0.5):
            self.scale, self.centre = 1.0, QPointF(0.5, 0.5)
            self.changed.emit()

    def _show(self, zoomed: QRectF, fit: QRectF) -> None:
        """Keep the centre that puts the frame at `zoomed`."""
        middle = fit.center()
        self.centre = QPointF(
            (middle.x() - zoomed.x()) / zoomed.width(), (middle.y() - zoomed.y()) / zoomed.height()
        )
        self.changed.emit()


def _placed(x: float, y: float, width: float, height: float, area: QRectF) -> QRectF:
    """The frame rectangle at (x, y), moved the least so that it covers `area` along a
    side where it is larger than the area, and is centred in it where it is smaller."""
    return QRectF(
        _span_start(x, width, area.left(), area.width()),
        _span_start(y, height, area.top(), area.height()),
        width,
        height,
    )


def _span_start(start: float, length: float, area_start: float, area_length: float) -> float:
    if length <= area_length:
        return area_start + (area_length - length) / 2
    return min(area_start, max(area_start + area_length - length, start))


def draw_zoomed(
    painter: QPainter, image: QImage, fit: QRectF, area: QRectF, zoom: ZoomState
) -> QRectF:
    """The part of `image` that `zoom` shows in a pane `area` whose unzoomed frame fills
    `fit`; frame pixels become sharp squares from 3 screen pixels each (for inspecting
    detail). Returns where the image was drawn."""
    zoomed = zoom.rect_in(fit, area)
    visible = zoomed.intersected(area)
    if visible.isEmpty():
        return visible
    sx, sy = image.width() / zoomed.width(), image.height() / zoomed.height()
    source = QRectF(
        (visible.x() - zoomed.x()) * sx,
        (visible.y() - zoomed.y()) * sy,
        visible.width() * sx,
        visible.height() * sy,
    )
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, sx > 1 / 3)
    painter.drawImage(visible, image, source)
    return visible


#: The notice over a view that is not what it seems (a paused live capture): a red band.
NOTICE_COLOUR = QColor(200, 30, 30, 210)


def draw_notice(painter: QPainter, area: QRect, text: str) -> None:
    """`text` large, white on a red band across the middle of `area`, and a red frame
    around it: seen at a glance, at any pane size. Nothing where `text` is ""."""
    if not text:
        return
    painter.save()
    painter.setPen(QPen(NOTICE_COLOUR, 4))
    painter.drawRect(QRectF(area).adjusted(2, 2, -2, -2))
    font = painter.font()
    font.setBold(True)
    font.setPixelSize(max(10, min(area.height() // 8, round(1.6 * area.width() / len(text)))))
    painter.setFont(font)
    band_height = painter.fontMetrics().height() * 1.6
    band = QRectF(area.x(), area.center().y() - band_height / 2, area.width(), band_height)
    painter.fillRect(band, NOTICE_COLOUR)
    painter.setPen(QColor(255, 255, 255))
    painter.drawText(band, Qt.AlignmentFlag.AlignCenter, text)
    painter.restore()


def zoom_caption(title: str, zoom: ZoomState) -> str:
    return title if zoom.scale == 1.0 else f"{title} · {zoom.scale * 100:.0f}%"


class _ZoomMouse:
    """Wheel zoom, drag pan and the hovered frame pixel for a view with a `zoom`, a fitted
    area `_fit()`, the shown frame's `_frame_size()` and a `hovered` signal."""

    zoom: ZoomState
    pan_buttons: Qt.MouseButton
    _last_drag: QPointF | None = None

    def _fit(self) -> QRectF:
        raise NotImplementedError

    def _frame_size(self) -> tuple[int, int] | None:
        raise NotImplementedError

    def _report_hover(self, point: QPointF | None) -> None:
        size = self._frame_size()
        if point is None or size is None:
            self.hovered.emit(-1, -1)
        else:
            area = QRectF(self.rect())
            self.hovered.emit(*self.zoom.pixel_at(self._fit(), area, point, size))

    def leaveEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self._report_hover(None)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt name)
        notches = event.angleDelta().y() / 120
        if notches:
            self.zoom.zoom_about(
                ZoomState.STEP**notches, self._fit(), event.position(), QRectF(self.rect())
            )
        event.accept()

    def _start_pan(self, event: QMouseEvent) -> bool:
        if event.button() & self.pan_buttons:
            self._last_drag = event.position()
            return True
        return False

    def _continue_pan(self, event: QMouseEvent) -> bool:
        self._report_hover(event.position())
        if self._last_drag is None or not event.buttons() & self.pan_buttons:
            self._last_drag = None
            return False
        self.zoom.pan(self._fit(), event.position() - self._last_drag, QRectF(self.rect()))
        self._last_drag = event.position()
        return True


class PaneView(_ZoomMouse, QWidget):
    """One image, aspect kept, black borders, a title; the wheel zooms and a drag pans
    (shared `zoom`); double-click asks for full screen."""

    full_screen_requested = Signal(str)
    hovered = Signal(int, int)  # the frame pixel under the mouse; (-1, -1): none
    pan_buttons = Qt.MouseButton.LeftButton | Qt.MouseButton.MiddleButton

    def __init__(
        self, kind: str, parent: QWidget | None = None, zoom: ZoomState | None = None
    ) -> None:
        super().__init__(parent)
        self.kind = kind
        self.title = TITLES.get(kind, kind)
        self.setToolTip(f"{TIPS.get(kind, '')} (wheel: zoom, drag: pan, double-click: full screen)")
        self.setMinimumSize(120, 80)
        self.setMouseTracking(True)  # hovering reports the pixel under the mouse
        self._array: np.ndarray | None = None
        self._image: QImage | None = None
        self.notice = ""  # see set_notice
        self.zoom = zoom or ZoomState(self)
        self.zoom.changed.connect(self.update)

    def set_notice(self, text: str) -> None:
        """Draw `text` over the image (draw_notice), e.g. "PAUSED — not live"; "" none."""
        self.notice = text
        self.update()

    def set_array(self, array: np.ndarray | None) -> None:
        self._array = None if array is None else np.ascontiguousarray(array)
        self._image = None if array is None else to_qimage(self._array)
        self.update()

    def array(self) -> np.ndarray | None:
        """The image this pane paints (what a test reads back)."""
        return self._array

    def _fit(self) -> QRectF:
        if self._image is None:
            return QRectF(self.rect())
        return fit_rect(self._image.width(), self._image.height(), self.rect())

    def _frame_size(self) -> tuple[int, int] | None:
        return None if self._image is None else (self._image.width(), self._image.height())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(16, 16, 16))
        if self._image is not None:
            draw_zoomed(painter, self._image, self._fit(), QRectF(self.rect()), self.zoom)
        _draw_caption(painter, zoom_caption(self.title, self.zoom), QPointF(8, 6))
        draw_notice(painter, self.rect(), self.notice)
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if not self._start_pan(event):
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if not self._continue_pan(event):
            super().mouseMoveEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.full_screen_requested.emit(self.kind)


def _draw_caption(painter: QPainter, text: str, at: QPointF) -> None:
    metrics = painter.fontMetrics()
    box = QRectF(at, metrics.size(0, text)).adjusted(-4, -2, 4, 2)
    painter.fillRect(box, QColor(0, 0, 0, 150))
    painter.setPen(QColor(235, 235, 235))
    painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)


class SplitView(_ZoomMouse, QWidget):
    """Original and desmoked in one pane, split by a divider the user drags; the wheel
    zooms and a right- or middle-button drag pans (shared `zoom`)."""

    hovered = Signal(int, int)  # the frame pixel under the mouse; (-1, -1): none
    pan_buttons = Qt.MouseButton.RightButton | Qt.MouseButton.MiddleButton

    def __init__(self, parent: QWidget | None = None, zoom: ZoomState | None = None) -> None:
        super().__init__(parent)
        self.setToolTip("Drag to move the before/after divider (wheel: zoom, right-drag: pan)")
        self.setMinimumSize(160, 100)
        self.setMouseTracking(True)  # hovering reports the pixel under the mouse
        self.zoom = zoom or ZoomState(self)
        self.zoom.changed.connect(self.update)
        self.divider = 0.5  # fraction of the image width
        self.notice = ""  # as PaneView's
        self._before: np.ndarray | None = None
        self._after: np.ndarray | None = None
        self._images: tuple[QImage, QImage] | None = None

    def set_arrays(self, before: np.ndarray, after: np.ndarray) -> None:
        self._before, self._after = before, after
        self._images = (to_qimage(before), to_qimage(after))
        self.update()

    def set_notice(self, text: str) -> None:
        """As PaneView.set_notice."""
        self.notice = text
        self.update()

    def set_divider(self, fraction: float) -> None:
        self.divider = min(1.0, max(0.0, fraction))
        self.update()

    def _fit(self) -> QRectF:
        if self._images is None:
            return QRectF(self.rect())
        image = self._images[0]
        return fit_rect(image.width(), image.height(), self.rect())

    def _frame_size(self) -> tuple[int, int] | None:
        return None if self._images is None else (self._images[0].width(), self._images[0].height())

    def _shown(self) -> QRectF:
        """Where the image is on screen (zoomed, within the pane): the divider's span."""
        area = QRectF(self.rect())
        return self.zoom.rect_in(self._fit(), area).intersected(area)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(16, 16, 16))
        if self._images is not None:
            before, after = self._images
            fit, area, shown = self._fit(), QRectF(self.rect()), self._shown()
            split_x = shown.x() + shown.width() * self.divider
            draw_zoomed(painter, after, fit, area, self.zoom)
            painter.save()
            painter.setClipRect(QRectF(shown.x(), shown.y(), split_x - shown.x(), shown.height()))
            draw_zoomed(painter, before, fit, area, self.zoom)
            painter.restore()
            painter.setPen(QPen(QColor(255, 255, 255), 2))
            painter.drawLine(QPointF(split_x, shown.top()), QPointF(split_x, shown.bottom()))
            _draw_caption(painter, "Original", QPointF(shown.x() + 8, shown.y() + 6))
            after_caption = zoom_caption("Desmoked", self.zoom)
            caption_w = painter.fontMetrics().horizontalAdvance(after_caption) + 16
            _draw_caption(painter, after_caption, QPointF(shown.right() - caption_w, shown.y() + 6))
        draw_notice(painter, self.rect(), self.notice)
        painter.end()

    def _drag(self, event: QMouseEvent) -> None:
        shown = self._shown()
        if shown.width() > 0:
            self.set_divider((event.position().x() - shown.x()) / shown.width())

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if not self._start_pan(event) and event.button() == Qt.MouseButton.LeftButton:
            self._drag(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if not self._continue_pan(event) and event.buttons() & Qt.MouseButton.LeftButton:
            self._drag(event)


class PaneArea(QStackedWidget):
    """Page 0: three panes in a resizable splitter; page 1: the split view."""

    full_screen_requested = Signal(str)
    hovered = Signal(int, int)  # the frame pixel under the mouse in any view; (-1, -1): none

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.zoom = ZoomState(self)
        self.panes = {kind: PaneView(kind, zoom=self.zoom) for kind in PANES}
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        for pane in self.panes.values():
            splitter.addWidget(pane)
            pane.full_screen_requested.connect(self.full_screen_requested)
            pane.hovered.connect(self.hovered)
        self.splitter = splitter
        self.split_view = SplitView(zoom=self.zoom)
        self.split_view.hovered.connect(self.hovered)
        self.addWidget(splitter)
        self.addWidget(self.split_view)
        self.notice = ""  # over every view: see set_notice

    def set_notice(self, text: str) -> None:
        """`text` over every view (PaneView.set_notice); "" clears it."""
        self.notice = text
        for view in (*self.panes.values(), self.split_view):
            view.set_notice(text)

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
    """One pane alone, full screen; Esc, F or a double-click closes it, and closing deletes
    it (a window with no parent is otherwise kept, with its last frame, until the app ends:
    each F9 left one behind)."""

    closed = Signal()

    def __init__(self, kind: str, zoom: ZoomState | None = None) -> None:
        super().__init__()
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.kind = kind
        self.setWindowTitle(f"desmoke - {TITLES.get(kind, kind)}")
        self.view = PaneView(kind, self, zoom=zoom)
        self.view.full_screen_requested.connect(self._leave)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)

    def _leave(self, _kind: str) -> None:
        self.close()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Escape, Qt.Key.Key_F):
            self.close()
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.closed.emit()
        super().closeEvent(event)
