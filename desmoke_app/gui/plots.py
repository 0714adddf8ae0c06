"""Live plots (pyqtgraph): processing fps and per-stage latency over the last seconds, and
the smoke-level timeline of the whole file (filled in as frames are seen; click to seek),
or of the last minute for a live capture.

Curves are redrawn on a timer (a few times a second), not per frame: replotting at video
rate would cost the GUI thread more than painting the panes.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QTimer, Signal
from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

WINDOW_S = 10.0
#: A live capture's smoke timeline: the last minute, scrolling (a file's shows all of it).
LIVE_WINDOW_S = 60.0
REFRESH_MS = 250
# "latency": from the frame decoded to it handed to the screen, waits included: the delay
# the app adds to the surgeon's view (processing stages alone leave out the waits).
# "gpu" and "copies" come from the fused GPU frame path (its whole device work; the host and
# bus copies in and out), the four before them from the CPU path. A stage is drawn (and
# named in the legend) once it has data.
STAGES = ("preprocess", "network", "restore", "mask", "gpu", "copies", "total", "latency")
STAGE_LABELS = {"preprocess": "pre", "network": "net"}
STAGE_COLOURS = {
    "preprocess": (80, 160, 255),
    "network": (255, 120, 60),
    "restore": (90, 200, 120),
    "mask": (180, 130, 255),
    "gpu": (120, 220, 230),
    "copies": (150, 150, 150),
    "total": (240, 240, 240),
    "latency": (230, 80, 200),
}
#: The fps curve's colour: no stage's, so that no legend entry reads as the fps.
FPS_COLOUR = (255, 210, 80)
#: Scales shown before there is data (a video's frame rate; a frame's stage times).
EMPTY_FPS_RANGE = (0.0, 30.0)
EMPTY_MS_RANGE = (0.0, 50.0)
#: The stage legend is a strip of its own above the ms plot, aligned with its plot area:
#: it never covers the curves and never runs past the widget, at any size. It takes as
#: many entries a row as the width holds, in up to LEGEND_MAX_ROWS rows; its names hide
#: where they would need more rows (the widget's tooltip names the curves in their
#: colours)...
LEGEND_TEXT_SIZE = "7pt"
LEGEND_MAX_ROWS = 2
#: ... or where it would take more than this share of the widget's height from the plots
#: (two rows need about 150 px: the default bottom strip is 240 px).
LEGEND_MAX_SHARE = 0.15
#: A stage's line in the legend (pyqtgraph's 20x20 px samples made each row 20 px high).
LEGEND_SAMPLE_SIZE = (14, 10)
#: Between a legend entry's name and the next entry's line (a line and its name: 4 px).
LEGEND_ENTRY_GAP = 10
#: Between the stacked fps and ms plots: room for the tick labels at the ends of their
#: axes (the fps 0 over the ms top), which run past the axes by half a line.
PLOT_SPACING = 16
#: Above and below the legend's names, between the plots (the tick labels at the ends
#: of the axes, left of the names, have a line and more between them then).
LEGEND_MARGIN = 4
#: Added video latency from which laparoscopic task performance degrades significantly
#: (105 ms, Kumcu et al. 2016); the status bar warns from here.
LATENCY_WARNING_MS = 100.0

QWIDGETSIZE_MAX = (1 << 24) - 1  # Qt's "no maximum"

pg.setConfigOptions(antialias=False, background=(24, 24, 24), foreground=(200, 200, 200))


class PerformancePlot(QWidget):
    """Processing fps (frames shown per second) and stage latencies (ms), last WINDOW_S s."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip(
            "Processing rate, per-stage times and the decoded-to-shown latency over the last "
            "10 seconds<br>" + _stage_key()
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.graphics = pg.GraphicsLayoutWidget()
        layout.addWidget(self.graphics)
        self.fps_plot = self.graphics.addPlot(row=0, col=0)
        self.fps_plot.setLabel("left", "fps")
        self.fps_plot.hideAxis("bottom")
        # Filled down to 0, the curve keeps 0 in the auto range: a steady 25 fps is not
        # blown up into a band from 24.6 to 25.4.
        self.fps_curve = self.fps_plot.plot(
            pen=pg.mkPen(FPS_COLOUR, width=2), fillLevel=0, brush=pg.mkBrush(*FPS_COLOUR, 40)
        )
        self.latency_plot = self.graphics.addPlot(row=2, col=0)
        self.latency_plot.setLabel("left", "ms")
        self.latency_plot.setLabel("bottom", "seconds ago")
        # The legend in the row between the plots, not over the ms plot's curves: the
        # plot names its curves in it (plot(name=...)) and drops them (removeItem). The
        # legend's row is the space between the plots (PLOT_SPACING without names).
        self.legend = StageLegend(self.latency_plot.vb)
        self.graphics.addItem(self.legend, row=1, col=0)
        self.latency_plot.legend = self.legend
        self.graphics.ci.setSpacing(0)
        _show_the_last_seconds(self.fps_plot, EMPTY_FPS_RANGE)
        _show_the_last_seconds(self.latency_plot, EMPTY_MS_RANGE)
        self.stage_curves: dict[str, pg.PlotDataItem] = {}
        self._samples: deque[tuple[float, dict[str, float]]] = deque()
        self.fps = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()

    def add(self, timings: dict[str, float], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._samples.append((now, timings))
        while self._samples and self._samples[0][0] < now - WINDOW_S:
            self._samples.popleft()

    def clear(self) -> None:
        self._samples.clear()
        for curve in self.stage_curves.values():
            self.latency_plot.removeItem(curve)  # and its legend entry
        self.stage_curves.clear()
        self.refresh()

    def current_fps(self, now: float | None = None) -> float:
        """Frames shown during the last second."""
        now = time.monotonic() if now is None else now
        return float(sum(1 for t, _ in self._samples if t >= now - 1.0))

    def current_latency(self, now: float | None = None) -> float | None:
        """Median decoded-to-shown latency (ms) over the last second; None without frames."""
        now = time.monotonic() if now is None else now
        recent = [s["latency"] for t, s in self._samples if t >= now - 1.0 and "latency" in s]
        return float(np.median(recent)) if recent else None

    def refresh(self) -> None:
        now = time.monotonic()
        self.fps = self.current_fps(now)
        if not self._samples:
            self.fps_curve.setData([], [])
            for curve in self.stage_curves.values():
                curve.setData([], [])
            return
        times = np.array([t for t, _ in self._samples], np.float64)
        x = times - now
        # fps at each sample: samples in the second before it (a sliding count).
        counts = np.searchsorted(times, times, side="right") - np.searchsorted(times, times - 1.0)
        self.fps_curve.setData(x, counts.astype(np.float64))
        for stage in STAGES:
            y = np.array([s.get(stage, np.nan) for _, s in self._samples], np.float64)
            if stage not in self.stage_curves and np.isfinite(y).any():
                self._add_curve(stage)
            if stage in self.stage_curves:
                self.stage_curves[stage].setData(x, y, connect="finite")

    def _add_curve(self, stage: str) -> None:
        """A stage's curve, when it first has data: the legend then names only the stages
        that this source's processing reports (the CPU path's or the GPU frame path's)."""
        pen = pg.mkPen(STAGE_COLOURS[stage])
        self.stage_curves[stage] = self.latency_plot.plot(
            pen=pen, name=STAGE_LABELS.get(stage, stage)
        )


class _StageSample(pg.ItemSample):
    """A stage's line in the legend: short, and about a line of text high. Clicking it hides or
    shows the curve (pyqtgraph's sample does the same); a hidden one is drawn faint."""

    def __init__(self, item: pg.PlotDataItem) -> None:
        super().__init__(item)
        width, height = LEGEND_SAMPLE_SIZE
        self.setFixedWidth(width)
        self.setFixedHeight(height)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt name)
        return QRectF(0, 0, *LEGEND_SAMPLE_SIZE)

    def paint(self, painter, *args) -> None:
        pen = pg.mkPen(self.item.opts["pen"])
        pen.setWidthF(2.0)
        if not self.item.isVisible():
            colour = pen.color()
            colour.setAlpha(60)
            pen.setColor(colour)
        painter.setPen(pen)
        width, height = LEGEND_SAMPLE_SIZE
        painter.drawLine(QPointF(0, height / 2), QPointF(width, height / 2))


class StageLegend(pg.LegendItem):
    """The stage names, laid out by the plot's layout (not floating over a view box, as
    PlotItem.addLegend's): left-aligned with `view_box`, as many entries a row as its width
    holds (the width the layout gives it, never more: its minimum width is 0); its names
    hidden where LEGEND_MAX_ROWS rows would not hold them, or would take more than
    LEGEND_MAX_SHARE of the height. It is the space between the plots, names or not."""

    def __init__(self, view_box: pg.ViewBox) -> None:
        super().__init__(
            labelTextSize=LEGEND_TEXT_SIZE,
            colCount=len(STAGES),
            sampleType=_StageSample,
            frame=False,
            horSpacing=4,
            verSpacing=2,
        )
        self.layout.setContentsMargins(0, 0, 0, 0)
        # The row's width, whatever the entries would like (fit wraps them to it), names
        # hidden or not (a layout of hidden items would be as wide as its margins).
        self.setMinimumWidth(0)
        self.setMaximumWidth(QWIDGETSIZE_MAX)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._view_box = view_box
        self._fitting = False
        self.shown = False  # whether the names are shown (fit decides)
        view_box.sigResized.connect(lambda _vb: self.fit())

    def addItem(self, item: pg.PlotDataItem, name: str) -> None:  # noqa: N802 (pyqtgraph name)
        super().addItem(item, name)
        label = self.items[-1][1]
        label.item.document().setDocumentMargin(0)  # 4 px round each name by default
        label.setText(label.text)  # its size again, without them

    # Not dragged about (pyqtgraph's legend can be): the layout places it.
    def hoverEvent(self, event) -> None:  # noqa: N802 (pyqtgraph name)
        pass

    def mouseDragEvent(self, event) -> None:  # noqa: N802 (Qt name)
        event.ignore()

    # pyqtgraph's updateSize sets the geometry itself, which fights the layout placing it.
    def updateSize(self) -> None:  # noqa: N802 (pyqtgraph name)
        self.fit()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self.fit()

    def fit(self) -> None:
        """Align with the view box, wrap the entries to the width left, or hide."""
        if self._fitting:  # setColumnCount calls updateSize
            return
        self._fitting = True
        try:
            left = max(0.0, self.mapFromItem(self._view_box, QPointF(0, 0)).x())
            width = max(0.0, self.geometry().width() - left)
            columns = self.columns_that_fit(width)
            if columns and columns != self.columnCount:
                self.setColumnCount(columns)
            for column in range(columns - 1):  # after each entry's name
                self.layout.setColumnSpacing(2 * column + 1, LEGEND_ENTRY_GAP)
            rows = math.ceil(len(self.items) / columns) if columns else 0
            entries_height = sum(label.minimumHeight() for _, label in self.items[:: columns or 1])
            entries_height += self.layout.verticalSpacing() * max(0, rows - 1)
            plots = self.parentWidget()  # the layout of both plots: its height is the widget's
            self.shown = (
                bool(self.items)
                and 0 < rows <= LEGEND_MAX_ROWS
                and (plots is None or entries_height <= LEGEND_MAX_SHARE * plots.size().height())
            )
            for sample, label in self.items:
                sample.setVisible(self.shown)
                label.setVisible(self.shown)
            # Shown: LEGEND_MARGIN above and below the names; else the plots' spacing.
            margin = LEGEND_MARGIN if self.shown else PLOT_SPACING / 2
            self.layout.setContentsMargins(left, margin, 0, margin)
            height = 2 * margin + (entries_height if self.shown else 0)
            self.setMinimumHeight(height)
            self.setMaximumHeight(height)
            self.updateGeometry()
        finally:
            self._fitting = False

    def columns_that_fit(self, width: float) -> int:
        """The most entries a row that fit `width` (laid out as the grid does: a column as
        wide as its widest entry); 0 where not even one does."""
        spacing = self.layout.horizontalSpacing()
        widths = [
            sample.minimumWidth() + spacing + label.minimumWidth() for sample, label in self.items
        ]
        for columns in range(len(widths), 0, -1):
            column_widths = [max(widths[c::columns]) for c in range(columns)]
            if sum(column_widths) + LEGEND_ENTRY_GAP * (columns - 1) <= width:
                return columns
        return 0


def _stage_key() -> str:
    """The stages' names in their colours (the tooltip's key, for when the legend hides)."""
    names = [
        f'<span style="color: rgb{STAGE_COLOURS[stage]}">{STAGE_LABELS.get(stage, stage)}</span>'
        for stage in STAGES
    ]
    return f'<span style="color: rgb{FPS_COLOUR}">fps</span> · ' + " ".join(names)


def _show_the_last_seconds(plot: pg.PlotItem, empty_range: tuple[float, float]) -> None:
    """The last WINDOW_S seconds; values auto-ranged, over empty_range until there are some."""
    plot.setXRange(-WINDOW_S, 0, padding=0)
    plot.setYRange(*empty_range, padding=0)
    plot.enableAutoRange(y=True)  # setYRange turned it off


class SmokeTimeline(QWidget):
    """Smoke level per frame over the whole file; a click seeks to that moment. For a live
    source (no frame count), the level over the last LIVE_WINDOW_S seconds, scrolling."""

    seek_requested = Signal(float)  # seconds

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTip("Smoke level per frame (filled in as frames are seen); click to seek")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot_widget = pg.PlotWidget()
        layout.addWidget(self.plot_widget)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setLabel("left", "smoke")
        self.plot.setLabel("bottom", "time", units="s")
        # Seconds at any length: with SI prefixes an empty timeline read "ms", an hour "ks".
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.setYRange(0, 1, padding=0.02)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.curve = self.plot.plot(
            pen=pg.mkPen((160, 200, 255), width=1.5),
            fillLevel=0,
            brush=pg.mkBrush(120, 160, 230, 70),
        )
        self.curve.setClipToView(True)
        self.curve.setDownsampling(auto=True)
        self.cursor = pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen((255, 80, 80), width=1.5))
        self.plot.addItem(self.cursor)
        self.selection = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(255, 200, 80, 40))
        self.selection.hide()
        self.plot.addItem(self.selection)
        self.levels = np.zeros(0, np.float64)
        self.fps = 25.0
        self.live = False
        self._live_levels: deque[tuple[float, float]] = deque()  # (time s, level)
        self._dirty = False
        self.plot_widget.scene().sigMouseClicked.connect(self._clicked)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.reset(None, self.fps)  # no source yet: an empty axis from 0 s, disabled

    def reset(self, frame_count: int | None, fps: float, live: bool = False) -> None:
        """A new source: an empty timeline of frame_count frames (None: no seeking); a live
        one scrolls over the last minute instead."""
        self.fps = fps or 25.0
        self.live = live
        self.levels = np.full(max(0, frame_count or 0), np.nan)
        self._live_levels.clear()
        self.setEnabled(bool(frame_count))
        self.cursor.setVisible(not live)
        if live:
            self.plot.setLabel("bottom", "seconds ago", units=None)
            self.plot.setXRange(-LIVE_WINDOW_S, 0, padding=0.01)
        else:
            self.plot.setLabel("bottom", "time", units="s")
            # At least a second: an empty timeline (no source yet) is an axis, not a point.
            self.plot.setXRange(0, max(1.0, len(self.levels) / self.fps), padding=0.01)
        self.cursor.setValue(0)
        self._dirty = True
        self.refresh()

    def set_level(self, index: int, level: float, time_s: float | None = None) -> None:
        """The smoke level of frame `index`, shown at `time_s` (seconds) for a live source."""
        if self.live and time_s is not None:
            self._live_levels.append((time_s, level))
            while self._live_levels[0][0] < time_s - LIVE_WINDOW_S:
                self._live_levels.popleft()
            self._dirty = True
        elif 0 <= index < len(self.levels):
            self.levels[index] = level
            self._dirty = True

    def set_selection(self, start: float | None, end: float | None) -> None:
        """Shade the export range (marked with I and O); hidden when neither is set."""
        if start is None and end is None:
            self.selection.hide()
            return
        last = max(0, len(self.levels) - 1) / self.fps
        self.selection.setRegion((start or 0.0, last if end is None else end))
        self.selection.show()

    def set_position(self, time_s: float) -> None:
        self.cursor.setValue(time_s)

    def refresh(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        if self.live:
            samples = np.array(self._live_levels, np.float64).reshape(-1, 2)
            x = samples[:, 0] - (samples[-1, 0] if len(samples) else 0.0)
            self.curve.setData(x, samples[:, 1])
            return
        x = np.arange(len(self.levels), dtype=np.float64) / self.fps
        self.curve.setData(x, self.levels, connect="finite")

    def time_at(self, scene_pos: QPointF) -> float | None:
        """Seconds under a scene position, or None outside the plot area."""
        box = self.plot.vb.sceneBoundingRect()
        if not box.contains(scene_pos) or not len(self.levels):
            return None
        x = self.plot.vb.mapSceneToView(scene_pos).x()
        return min(max(0.0, x), (len(self.levels) - 1) / self.fps)

    def _clicked(self, event) -> None:
        if not self.isEnabled():
            return
        seconds = self.time_at(event.scenePos())
        if seconds is not None:
            self.seek_requested.emit(seconds)
