"""Zoom and pan, shared by every pane: the maths of ZoomState and what the panes show."""

# The shared fixtures (clip, window) are imported from tests/gui_support.py, so their
# use as test arguments reads to ruff as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from desmoke_app.gui.panes import PaneArea, ZoomState, fit_rect
from tests.gui_support import clip, open_clip, window  # noqa: F401 (fixtures)

FIT = QRectF(10, 20, 400, 200)


def frame_point(zoom: ZoomState, point: QPointF) -> tuple[float, float]:
    """The frame point (fractions of width and height) shown at pane point `point`."""
    rect = zoom.rect_in(FIT)
    return (point.x() - rect.x()) / rect.width(), (point.y() - rect.y()) / rect.height()


def test_unzoomed_the_frame_fills_the_fitted_area() -> None:
    assert ZoomState().rect_in(FIT) == FIT


def test_zooming_keeps_the_point_under_the_cursor() -> None:
    zoom = ZoomState()
    cursor = QPointF(300, 90)
    before = frame_point(zoom, cursor)
    zoom.zoom_about(4.0, FIT, cursor)
    assert zoom.scale == 4.0
    assert frame_point(zoom, cursor) == pytest.approx(before)
    assert zoom.rect_in(FIT).width() == pytest.approx(1600)


def test_the_frame_always_covers_the_fitted_area() -> None:
    zoom = ZoomState()
    zoom.zoom_about(2.0, FIT, QPointF(FIT.left() + 1, FIT.top() + 1))  # at a corner
    assert zoom.rect_in(FIT).contains(FIT)
    zoom.pan(FIT, QPointF(10_000, -10_000))  # far past the edges
    rect = zoom.rect_in(FIT)
    assert rect.left() == pytest.approx(FIT.left()) and rect.bottom() == pytest.approx(FIT.bottom())


def test_scale_stays_between_fit_and_the_maximum() -> None:
    zoom = ZoomState()
    zoom.zoom_by(0.5)
    assert zoom.scale == 1.0
    for _ in range(40):
        zoom.zoom_by(ZoomState.STEP)
    assert zoom.scale == ZoomState.MAX_SCALE
    centre = frame_point(zoom, FIT.center())
    zoom.reset()
    assert zoom.scale == 1.0 and zoom.rect_in(FIT) == FIT
    assert centre == pytest.approx((0.5, 0.5))  # keyboard zoom is about the middle


def gradient(width: int = 256, height: int = 128) -> np.ndarray:
    """Red = column: what a pane shows at a point says which frame column is there."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 0] = np.arange(width, dtype=np.uint8)[None, :]
    return image


def column_at(widget, point: QPoint) -> int:
    return widget.grab().toImage().pixelColor(point).red()


def wheel(widget, point: QPoint, notches: int) -> None:
    event = QWheelEvent(
        QPointF(point),
        QPointF(widget.mapToGlobal(point)),
        QPoint(0, 0),
        QPoint(0, 120 * notches),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


@pytest.fixture
def area(qtbot) -> PaneArea:
    area = PaneArea()
    qtbot.addWidget(area)
    area.resize(1200, 300)
    area.show()
    qtbot.waitExposed(area)
    image = gradient()
    area.show_frame(image, image[:, :, 0].copy(), image)
    return area


def test_the_wheel_zooms_every_pane_about_the_cursor(area) -> None:
    desmoked, original = area.panes["desmoked"], area.panes["original"]
    fit = fit_rect(256, 128, desmoked.rect())
    cursor = QPoint(round(fit.x() + fit.width() * 0.75), round(fit.center().y()))
    column = column_at(desmoked, cursor)
    wheel(desmoked, cursor, notches=6)  # 1.25^6 = 3.8x
    assert area.zoom.scale == pytest.approx(1.25**6)
    assert abs(column_at(desmoked, cursor) - column) <= 2
    left = QPoint(round(fit.left()) + 1, cursor.y())
    assert column_at(desmoked, left) > 140  # the left edge now shows the right part
    original_fit = fit_rect(256, 128, original.rect())
    original_left = QPoint(round(original_fit.left()) + 1, cursor.y())
    assert column_at(original, original_left) == pytest.approx(column_at(desmoked, left), abs=3)


def test_a_drag_pans_and_a_reset_shows_the_whole_frame(area, qtbot) -> None:
    pane = area.panes["original"]
    fit = fit_rect(256, 128, pane.rect())
    middle = fit.center().toPoint()
    wheel(pane, middle, notches=8)
    shown = column_at(pane, middle)
    qtbot.mousePress(pane, Qt.MouseButton.LeftButton, pos=middle)
    qtbot.mouseMove(pane, middle - QPoint(200, 0))
    qtbot.mouseRelease(pane, Qt.MouseButton.LeftButton, pos=middle - QPoint(200, 0))
    assert column_at(pane, middle) > shown + 10  # dragged left: columns to the right come in
    area.zoom.reset()
    assert column_at(pane, QPoint(round(fit.left()) + 1, middle.y())) <= 2


def test_the_split_view_pans_with_the_right_button_and_keeps_its_divider(area, qtbot) -> None:
    area.set_split(True)
    view = area.split_view
    qtbot.waitExposed(view)
    fit = fit_rect(256, 128, view.rect())
    middle = fit.center().toPoint()
    wheel(view, middle, notches=8)
    divider, shown = view.divider, column_at(view, middle + QPoint(5, 0))
    qtbot.mousePress(view, Qt.MouseButton.RightButton, pos=middle)
    qtbot.mouseMove(view, middle - QPoint(200, 0))
    qtbot.mouseRelease(view, Qt.MouseButton.RightButton, pos=middle - QPoint(200, 0))
    assert view.divider == divider
    assert column_at(view, middle + QPoint(5, 0)) > shown + 10


def test_the_window_zooms_from_the_keyboard_and_a_new_video_starts_unzoomed(
    qtbot, window, clip
) -> None:
    open_clip(qtbot, window, clip)
    zoom = window.pane_area.zoom
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window, Qt.Key.Key_Plus, Qt.KeyboardModifier.ControlModifier)
    assert zoom.scale == pytest.approx(1.25**2)
    qtbot.keyClick(window, Qt.Key.Key_Minus, Qt.KeyboardModifier.ControlModifier)
    assert zoom.scale == pytest.approx(1.25)
    qtbot.keyClick(window, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert zoom.scale == 1.0
    zoom.zoom_by(2.0)
    window.show_full_screen("desmoked")
    assert window._full_screen.view.zoom is zoom  # full screen shows the same region
    window._full_screen.close()
    open_clip(qtbot, window, clip)
    qtbot.waitUntil(lambda: zoom.scale == 1.0)


def test_pixel_at_maps_pane_points_to_frame_pixels() -> None:
    zoom = ZoomState()
    assert zoom.pixel_at(FIT, FIT, QPointF(FIT.left(), FIT.top()), (200, 100)) == (0, 0)
    assert zoom.pixel_at(
        FIT, FIT, QPointF(FIT.right() - 0.01, FIT.bottom() - 0.01), (200, 100)
    ) == (
        199,
        99,
    )
    assert zoom.pixel_at(FIT, FIT, QPointF(5, 5), (200, 100)) == (-1, -1)  # the black border
    zoom.zoom_about(8.0, FIT, FIT.center())
    assert zoom.pixel_at(FIT, FIT, FIT.center(), (200, 100)) == (100, 50)
    assert zoom.pixel_at(FIT, FIT, QPointF(FIT.left(), FIT.center().y()), (200, 100))[0] > 85


def test_hovering_shows_the_pixel_in_every_pane(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    pane = window.panes["desmoked"]
    result = window.current
    height, width = result.original.shape[:2]
    fit = fit_rect(width, height, pane.rect())
    point = QPoint(round(fit.x() + fit.width() * 0.25), round(fit.y() + fit.height() * 0.5))
    qtbot.mouseMove(pane, point)
    qtbot.waitUntil(lambda: window.pixel_label.text() != "")
    x, y = width // 4, height // 2
    text = window.pixel_label.text()
    assert text.startswith(f"x {x} y {y} ") or text.startswith(f"x {x - 1} y {y - 1} ")
    px, py = (int(v) for v in text.split(" · ")[0].split()[1::2])
    original = " ".join(str(v) for v in window.current.original[py, px])
    assert f"original {original} ·" in text
    assert f"dark {window.current.dark_channel[py, px]} ·" in text
    window.pane_area.hovered.emit(-1, -1)  # what leaving the pane sends
    assert window.pixel_label.text() == ""


def test_zoomed_in_the_frame_fills_the_pane_beyond_its_fitted_area() -> None:
    area = QRectF(10, 0, 400, 400)  # a square pane: the 2:1 frame fits in a band (FIT)
    zoom = ZoomState()
    zoom.zoom_about(1.5, FIT, FIT.center(), area)  # 300 px high: still inside the pane
    rect = zoom.rect_in(FIT, area)
    assert rect.center().y() == pytest.approx(area.center().y())  # centred where smaller
    zoom.zoom_about(4.0, FIT, QPointF(300, 60), area)  # 1200 px high: larger than the pane
    rect = zoom.rect_in(FIT, area)
    assert rect.top() <= area.top() and rect.bottom() >= area.bottom()
    zoom.pan(FIT, QPointF(0, 10_000), area)
    assert zoom.rect_in(FIT, area).top() == pytest.approx(area.top())


def test_zooming_in_fills_the_panes_black_borders(area) -> None:
    pane = area.panes["original"]
    fit = fit_rect(256, 128, pane.rect())
    top_middle = QPoint(round(fit.center().x()), 2)
    assert fit.top() > 10  # the frame is a band with black borders above and below
    assert column_at(pane, top_middle) < 20
    wheel(pane, fit.center().toPoint(), notches=10)
    assert column_at(pane, top_middle) > 100  # the frame's middle columns reach the top
