"""Pieces of the app: the mailbox and frame dropping, the demo source, settings, split view,
full-screen pane, the timeline's click-to-seek, shortcuts, About, and `main()`."""

# The shared fixtures (clip, window) are imported from tests/gui_support.py, so their
# use as test arguments reads to ruff as a redefinition.
# ruff: noqa: F811

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QRectF, QSettings, Qt, QThread, QUrl
from PySide6.QtGui import QDropEvent, QKeySequence, QWheelEvent
from PySide6.QtWidgets import QApplication, QStyle, QStyleOptionSpinBox

from desmoke_app.gui.demo import DEMO_FRAMES, DemoSource
from desmoke_app.gui.mailbox import Latest
from desmoke_app.gui.main_window import MainWindow
from desmoke_app.gui.panes import SplitView, fit_rect
from desmoke_app.gui.processor import Processor
from desmoke_app.gui.reader import FramePacket, Move
from desmoke_app.gui.settings import AppSettings
from tests.clips import read_index
from tests.gui_support import (
    DCP,
    WAIT_MS,
    clip,  # noqa: F401 (fixture)
    make_settings,
    open_clip,
    wait_for_index,
    window,  # noqa: F401 (fixture)
)


def test_latest_keeps_only_the_newest_and_wakes_once() -> None:
    box = Latest()
    assert box.put(1) is True  # first item: the receiver must be woken
    assert box.put(2) is False  # a wake-up is already pending
    assert box.put(3) is False
    assert box.dropped == 2
    assert box.take() == 3 and box.take() is None
    assert box.put(4) is True  # taken: the next item wakes again


def test_moves_merge_while_one_runs_and_the_latest_seek_wins() -> None:
    box = Latest()
    for _ in range(3):
        box.put(Move(delta=-1, play=False), Move.then)
    assert box.take() == Move(delta=-3, play=False)  # held Left: one seek, 3 frames back
    box.put(Move(delta=-1, play=False), Move.then)
    box.put(Move(target=0), Move.then)  # Home after it
    assert box.take() == Move(target=0, play=False)
    box.put(Move(target=20), Move.then)
    box.put(Move(delta=25), Move.then)  # a jump from the seek still to run
    box.put(Move(delta=25), Move.then)
    assert box.take() == Move(target=20, delta=50) and box.dropped == 0


def test_play_and_pause_keep_their_place_among_merged_moves() -> None:
    """Play or pause asked between moves that merge: the latest asked is how it ends."""
    box = Latest()
    box.put(Move(target=40), Move.then)  # a seek still to run
    box.put(Move(play=True), Move.then)  # Space
    box.put(Move(delta=1, play=False), Move.then)  # Right: a step, which pauses
    assert box.take() == Move(target=40, delta=1, play=False)
    box.put(Move(delta=1, play=False), Move.then)
    box.put(Move(play=True), Move.then)
    box.put(Move(delta=-1, play=False), Move.then)
    box.put(Move(play=True), Move.then)
    assert box.take() == Move(delta=0, play=True)


def test_processor_drops_frames_while_busy(qtbot) -> None:
    """Frames submitted while processing is busy: only the newest is processed next."""
    processor = Processor()
    thread = QThread()
    processor.moveToThread(thread)
    thread.start()
    try:
        processor.request_configure(DCP)
        qtbot.waitUntil(lambda: processor._desmoker is not None, timeout=WAIT_MS)
        busy, release = threading.Event(), threading.Event()
        process = processor._desmoker.process
        processed = []

        def held(frame):
            busy.set()
            release.wait(5)
            processed.append(frame)
            return process(frame)

        processor._desmoker.process = held
        frames = [np.full((48, 64, 3), i * 20, np.uint8) for i in range(10)]
        processor.submit(FramePacket(1, 0, 0.0, frames[0]))
        assert busy.wait(5)
        for i in range(1, 10):  # arrive while frame 0 is being processed
            processor.submit(FramePacket(1, i, i / 25, frames[i]))
        release.set()
        qtbot.waitUntil(lambda: len(processed) == 2, timeout=WAIT_MS)
        qtbot.wait(100)
        assert len(processed) == 2  # frame 0, then only the newest
        result = processor.outbox.take()
        assert result.index == 9 and np.array_equal(result.original, frames[9])
        assert processor.inbox.dropped == 8
    finally:
        thread.quit()
        thread.wait(5000)


def test_strength_patch_and_working_size_retune_the_running_desmoker(qtbot) -> None:
    """They are set on the Desmoker that runs (a new one reloaded the weights and the
    backend, stalling the video); another model makes a new one."""
    processor = Processor()
    with qtbot.waitSignal(processor.configured, timeout=WAIT_MS):
        processor.request_configure(DCP)
    running = processor._desmoker
    for change in ({"strength": 0.4}, {"patch_size": 9}, {"working_short_side": 128}):
        with qtbot.waitSignal(processor.configured, timeout=WAIT_MS) as blocker:
            processor.request_configure({**processor._state.settings, **change})
        assert processor._desmoker is running
        assert blocker.args[0].settings == {**blocker.args[0].asked, **change}
    assert (running.strength, running.reference_patch, running.working_short_side) == (
        0.4,
        9,
        128,
    )
    with qtbot.waitSignal(processor.configured, timeout=WAIT_MS):  # the default: rebuilt
        processor.request_configure({**processor._state.settings, "working_short_side": None})
    assert processor._desmoker is not running
    with qtbot.waitSignal(processor.failed, timeout=WAIT_MS) as blocker:  # said, as before
        processor.request_configure({**processor._state.settings, "strength": 2.0})
    assert "strength" in blocker.args[0]


def test_processor_reports_a_bad_configuration(qtbot) -> None:
    processor = Processor()
    with qtbot.waitSignal(processor.failed, timeout=WAIT_MS) as blocker:
        processor.request_configure({**DCP, "model": "no-such-model"})
    assert "no-such-model" in blocker.args[0]


def test_demo_source_is_seekable_and_repeatable() -> None:
    with DemoSource(size=(96, 64)) as demo:
        first = [demo.read() for _ in range(4)]
        assert [f.index for f in first] == [0, 1, 2, 3]
        again = demo.seek_frame(2)
        assert again.index == 2 and np.array_equal(again.rgb, first[2].rgb)
        assert demo.seek_frame(DEMO_FRAMES) is None
        assert demo.seek(1.0).index == 25
        assert first[0].rgb.shape == (64, 96, 3) and first[0].rgb.dtype == np.uint8
        assert not np.array_equal(first[0].rgb, first[3].rgb)  # it moves


def test_demo_falls_back_without_training(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "training.smoke", None)  # import fails
    with DemoSource(size=(96, 64)) as demo:
        frame = demo.read()
    assert frame.rgb.shape == (64, 96, 3) and frame.rgb.std() > 5


def test_settings_are_remembered(qtbot, tmp_path) -> None:
    first = MainWindow(make_settings(tmp_path))
    qtbot.addWidget(first)
    first.set_processing(patch_size=9, strength=0.25, working_short_side=128)
    first.set_split(True)
    first.shutdown()
    store = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    second = MainWindow(AppSettings(store))
    qtbot.addWidget(second)
    settings = second.controls.settings()
    assert (settings["patch_size"], settings["strength"], settings["working_short_side"]) == (
        9,
        0.25,
        128,
    )
    assert second.pane_area.is_split()
    second.shutdown()


def drop(window: MainWindow, *paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    window.dropEvent(
        QDropEvent(
            QPointF(10, 10),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
    )


def test_recent_files_and_drop(qtbot, window, clip) -> None:
    drop(window, clip)
    wait_for_index(qtbot, window, 0)
    assert window.settings.recent_files()[0] == str(clip.resolve())
    assert [a.text() for a in window.recent_menu.actions()][0] == str(clip.resolve())


def test_dropping_several_files_opens_the_first_and_says_so(qtbot, window, clip, tmp_path) -> None:
    others = [tmp_path / "b.mp4", tmp_path / "c.mp4"]
    drop(window, clip, *others)
    wait_for_index(qtbot, window, 0)
    assert window.source_info.spec.path == str(clip)
    assert window.message_bar.text() == (
        "opening index.mp4: the app shows one video at a time (2 other dropped files not opened)"
    )


def test_a_recent_file_since_deleted_leaves_the_list(qtbot, window, clip, tmp_path) -> None:
    gone = tmp_path / "gone.mp4"
    shutil.copy(clip, gone)
    open_clip(qtbot, window, gone)
    open_clip(qtbot, window, clip)
    gone.unlink()
    listed = {action.text(): action for action in window.recent_menu.actions()}
    listed[str(gone.resolve())].trigger()
    said = window.message_bar.text()
    assert said == f"{gone.resolve()}: no such file; removed from the recent files"
    assert window.source_info.spec.path == str(clip)  # the open video stays
    assert window.settings.recent_files() == [str(clip.resolve())]
    assert [a.text() for a in window.recent_menu.actions()][0] == str(clip.resolve())
    assert str(gone.resolve()) not in [a.text() for a in window.recent_menu.actions()]
    window.settings.sync()  # and the next session's list has lost it too
    saved = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert saved.recent_files() == [str(clip.resolve())]


def test_without_a_source_what_cannot_work_is_disabled(qtbot, window, clip) -> None:
    transport = window.transport
    assert not transport.slider.isEnabled() and transport.slider.maximum() == 0
    assert not any(b.isEnabled() for b in (transport.play, transport.back, transport.forward))
    assert transport.speed.isEnabled() and transport.loop.isEnabled()  # set for the first file
    assert not window.export_action.isEnabled()
    assert not any(action.isEnabled() for action in window.mark_actions)
    open_clip(qtbot, window, clip)
    assert transport.slider.isEnabled() and transport.slider.maximum() == 47
    assert all(b.isEnabled() for b in (transport.play, transport.back, transport.forward))
    assert window.export_action.isEnabled()
    assert all(action.isEnabled() for action in window.mark_actions)


def test_split_view_divider_follows_the_mouse(qtbot) -> None:
    view = SplitView()
    qtbot.addWidget(view)
    view.resize(400, 200)
    view.show()
    before = np.zeros((100, 200, 3), np.uint8)
    after = np.full((100, 200, 3), 255, np.uint8)
    view.set_arrays(before, after)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    target = fit_rect(200, 100, view.rect())
    assert view.divider == pytest.approx((100 - target.x()) / target.width(), abs=0.01)
    image = view.grab().toImage()
    assert image.pixelColor(90, 100).red() < 30  # left of the divider: before (black)
    assert image.pixelColor(300, 100).red() > 220  # right of it: after (white)


def test_split_view_and_full_screen_in_the_window(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    window.split_action.trigger()
    assert window.pane_area.is_split()
    window.split_action.trigger()
    assert not window.pane_area.is_split()
    window.show_full_screen("desmoked")
    pane = window._full_screen
    assert pane is not None and np.array_equal(pane.view.array(), window.current.desmoked)
    window.seek_frame(6)  # the full-screen pane follows playback
    qtbot.waitUntil(lambda: read_index(pane.view.array()) == 6, timeout=WAIT_MS)
    qtbot.keyClick(pane, Qt.Key.Key_Escape)
    assert window._full_screen is None


def test_latency_is_the_median_of_the_last_second(qtbot) -> None:
    from desmoke_app.gui.plots import PerformancePlot

    plot = PerformancePlot()
    qtbot.addWidget(plot)
    assert plot.current_latency(now=100.0) is None
    for t, ms in [(98.0, 900.0), (99.2, 40.0), (99.5, 60.0), (99.9, 45.0)]:
        plot.add({"total": 10.0, "latency": ms}, now=t)
    assert plot.current_latency(now=100.0) == 45.0  # the 900 ms of two seconds ago is out
    plot.refresh()


def test_performance_plot_draws_the_stages_the_source_reports(qtbot) -> None:
    """CPU path: pre/net/restore/mask; GPU frame path: gpu/copies. Only stages with data get
    a curve and a legend entry; a new source starts a new set."""
    from desmoke_app.gui.plots import PerformancePlot

    plot = PerformancePlot()
    qtbot.addWidget(plot)
    cpu = dict(preprocess=3.0, network=8.0, restore=7.0, mask=2.5, total=21.0, latency=40.0)
    for t in range(5):
        plot.add(cpu, now=time.monotonic() - 1 + t / 10)
    plot.refresh()
    assert set(plot.stage_curves) == {
        "preprocess",
        "network",
        "restore",
        "mask",
        "total",
        "latency",
    }
    legend = {label.text for _, label in plot.latency_plot.legend.items}
    assert "gpu" not in legend and "net" in legend
    plot.clear()
    assert not plot.stage_curves and not plot.latency_plot.legend.items
    plot.add(dict(gpu=0.4, copies=1.3, total=1.9, latency=20.0))
    plot.refresh()
    assert set(plot.stage_curves) == {"gpu", "copies", "total", "latency"}
    x, y = plot.stage_curves["copies"].getData()
    assert list(y) == [1.3]


def test_performance_plot_is_readable(qtbot) -> None:
    """No stage's colour reads as the fps curve's, the scales start from 0 with sensible
    ranges before any data, and the stacked axes leave room for the tick labels at their
    ends (the legend's place: test_the_stage_legend_fits_the_plot_at_any_size)."""
    from PySide6.QtGui import QFontMetricsF
    from PySide6.QtWidgets import QApplication

    from desmoke_app.gui.plots import EMPTY_FPS_RANGE, STAGE_COLOURS, PerformancePlot

    plot = PerformancePlot()
    qtbot.addWidget(plot)
    plot.resize(420, 230)
    plot.show()
    fps_colour = plot.fps_curve.opts["pen"].color().getRgb()[:3]
    # RGB distance: the fps yellow and the mask's olive were 57 apart, and looked the same.
    assert min(math.dist(fps_colour, colour) for colour in STAGE_COLOURS.values()) >= 80
    assert plot.fps_plot.viewRange()[1] == pytest.approx(EMPTY_FPS_RANGE)
    fps_box = plot.fps_plot.vb.sceneBoundingRect()
    ms_box = plot.latency_plot.vb.sceneBoundingRect()
    assert ms_box.top() - fps_box.bottom() >= QFontMetricsF(QApplication.font()).height()
    plot.add(dict(total=5.0, latency=20.0))  # one paused frame: 1 fps, read from 0
    plot.refresh()
    qtbot.waitUntil(lambda: plot.fps_plot.viewRange()[1][1] < EMPTY_FPS_RANGE[1], timeout=WAIT_MS)
    assert plot.fps_plot.viewRange()[1][0] <= 0.0


CPU_STAGES = dict(preprocess=3.0, network=8.0, restore=7.0, mask=2.5, total=21.0, latency=40.0)


def legend_entries(plot) -> list:
    """The scene rectangles of the stage legend's lines and names."""
    legend = plot.latency_plot.legend
    return [part.sceneBoundingRect() for entry in legend.items for part in entry]


@pytest.mark.parametrize("size", [(800, 500), (1280, 760)])
def test_the_stage_legend_fits_the_plot_at_any_size(qtbot, window, size) -> None:
    """QA: at 800x500 the legend ran past the plot's right edge (three columns of 20 px
    samples, wider than the plot), and at any size it covered most of the ms plot's height.
    Now every name lies inside the widget, within the plot's width and off its curves."""
    plot = window.performance
    window.resize(*size)
    for t in range(10):
        plot.add(CPU_STAGES, now=time.monotonic() - 1 + t / 10)
    plot.refresh()
    view_box = plot.latency_plot.vb

    def laid_out() -> bool:
        QApplication.processEvents()
        return all(
            rect.right() <= view_box.sceneBoundingRect().right() + 1
            for rect in legend_entries(plot)
        )

    qtbot.waitUntil(laid_out, timeout=WAIT_MS)
    legend = plot.latency_plot.legend
    assert len(legend.items) == len(CPU_STAGES)
    assert all(part.isVisible() for entry in legend.items for part in entry)
    widget = QRectF(plot.graphics.viewport().rect())  # the scene as shown: 1:1
    box = view_box.sceneBoundingRect()
    for rect in legend_entries(plot):
        assert widget.contains(rect), (rect, widget)
        assert box.left() - 1 <= rect.left() and rect.right() <= box.right() + 1
        assert not rect.intersects(box), (rect, box)  # above the curves, not over them
    rows = {round(label.sceneBoundingRect().top()) for _, label in legend.items}
    assert len(rows) <= 2 if size[0] < 1000 else len(rows) == 1  # compact: one row when wide


def test_the_stage_legend_hides_where_it_cannot_fit(qtbot) -> None:
    """Too narrow for two rows of names: no names shown (rather than names running off
    the widget); the tooltip still names the curves in their colours. Wider again: back."""
    from desmoke_app.gui.plots import PerformancePlot

    plot = PerformancePlot()
    qtbot.addWidget(plot)
    plot.add(CPU_STAGES)
    plot.refresh()
    legend = plot.latency_plot.legend

    def shown_inside(width: int) -> list[bool]:
        """Resized to `width`: for each name shown, whether it lies inside the widget."""
        plot.resize(width, 230)
        qtbot.wait(50)  # the layout settles
        widget = QRectF(plot.graphics.viewport().rect())
        parts = [part for entry in legend.items for part in entry if part.isVisible()]
        return [widget.contains(part.sceneBoundingRect()) for part in parts]

    plot.show()
    assert shown_inside(130) == []
    assert "latency" in plot.toolTip() and "rgb" in plot.toolTip()
    assert shown_inside(500) == [True] * 2 * len(CPU_STAGES)


def test_timeline_without_a_source_is_an_empty_axis_from_zero(qtbot) -> None:
    from desmoke_app.gui.plots import SmokeTimeline

    timeline = SmokeTimeline()
    qtbot.addWidget(timeline)
    (x_min, x_max), _ = timeline.plot.vb.viewRange()
    assert not timeline.isEnabled() and x_min == pytest.approx(0.0, abs=0.05)
    assert x_max >= 1.0  # a second of axis, not a frame's 40 ms
    assert "time (s)" in timeline.plot.getAxis("bottom").labelString()


def test_a_live_timeline_scrolls_over_the_last_minute(qtbot) -> None:
    from desmoke_app.gui.plots import LIVE_WINDOW_S, SmokeTimeline

    timeline = SmokeTimeline()
    qtbot.addWidget(timeline)
    timeline.reset(None, 30.0, live=True)
    assert not timeline.isEnabled() and not timeline.cursor.isVisible()
    for index in range(90 * 30):  # a minute and a half at 30 fps
        timeline.set_level(index, (index % 30) / 30, index / 30)
    timeline.refresh()
    x, y = timeline.curve.getData()
    assert x[-1] == 0.0 and x[0] >= -LIVE_WINDOW_S and len(x) == pytest.approx(60 * 30, abs=2)
    assert y[-1] == pytest.approx((90 * 30 - 1) % 30 / 30)
    assert timeline.plot.getAxis("bottom").labelText == "seconds ago"
    timeline.reset(250, 25.0)  # a file again: the whole of it, from 0 s
    assert timeline.cursor.isVisible() and timeline.plot.getAxis("bottom").labelText == "time"


def test_timeline_fills_in_and_a_click_seeks(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    for index in (5, 6, 7):
        window.seek_frame(index)
        wait_for_index(qtbot, window, index)
    timeline = window.timeline
    assert np.isfinite(timeline.levels[[0, 5, 6, 7]]).all() and np.isnan(timeline.levels[30])
    timeline.refresh()
    view_box = timeline.plot.vb
    scene_pos = view_box.mapViewToScene(QPointF(1.2, 0.5))  # 1.2 s = frame 30
    widget_pos = timeline.plot_widget.mapFromScene(scene_pos)
    with qtbot.waitSignal(timeline.seek_requested, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(timeline.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=widget_pos)
    assert blocker.args[0] == pytest.approx(1.2, abs=0.05)
    wait_for_index(qtbot, window, 30)


def test_keyboard_shortcuts(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    window.pane_area.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    wait_for_index(qtbot, window, 1)
    qtbot.keyClick(window, Qt.Key.Key_End)
    wait_for_index(qtbot, window, 47)
    qtbot.keyClick(window, Qt.Key.Key_Left)
    wait_for_index(qtbot, window, 46)
    qtbot.keyClick(window, Qt.Key.Key_Home)
    wait_for_index(qtbot, window, 0)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: window.is_playing, timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not window.is_playing, timeout=WAIT_MS)


def shortcuts_run(window: MainWindow) -> list[str]:
    """The names of the window's actions, as their shortcuts trigger them."""
    run: list[str] = []

    def record(name: str):
        return lambda _checked=False: run.append(name)

    for action in window.actions():
        action.triggered.connect(record(action.text()))
    return run


def press(qtbot, window: MainWindow, key: Qt.Key) -> None:
    """A key as the platform delivers it: to the widget with the keyboard focus, or to
    the window where none has it."""
    qtbot.keyClick(QApplication.focusWidget() or window, key)


PLAYER_KEYS = {
    Qt.Key.Key_Space: "Play / pause",
    Qt.Key.Key_Left: "Previous frame",
    Qt.Key.Key_Right: "Next frame",
    Qt.Key.Key_Home: "First frame",
    Qt.Key.Key_End: "Last frame",
    Qt.Key.Key_I: "Mark range start",
    Qt.Key.Key_L: "Loop",
}


def test_the_player_keys_work_whatever_control_has_the_focus(qtbot, window, clip) -> None:
    """One rule for the keyboard: the window's shortcuts win over the focused control (the
    combo boxes, sliders, check box and buttons always let them through). A spin box being
    typed into keeps the keys that edit text (the arrows, Home/End: the cursor), as text
    fields do, but never Space or a letter: no number has those. (A file is open: without
    one, the slider, the buttons and the marks are disabled.)"""
    open_clip(qtbot, window, clip)
    run = shortcuts_run(window)
    controls, transport = window.controls, window.transport
    others = [controls.model, controls.backend, controls.strength]
    others += [transport.slider, transport.speed, transport.loop, transport.play]
    for widget in others:
        for key, name in PLAYER_KEYS.items():
            widget.setFocus()
            qtbot.waitUntil(widget.hasFocus, timeout=WAIT_MS)
            run.clear()
            press(qtbot, window, key)
            assert run == [name], (type(widget).__name__, key)
    for box in (controls.working, controls.patch):
        for key, name in PLAYER_KEYS.items():
            box.setFocus()
            qtbot.waitUntil(box.hasFocus, timeout=WAIT_MS)
            run.clear()
            press(qtbot, window, key)
            typing = key in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Home, Qt.Key.Key_End)
            assert run == ([] if typing else [name]), (box, key)
            assert box.hasFocus() == typing  # Space or I ended the edit


def test_a_typed_number_counts_once_complete(qtbot) -> None:
    """Typing 1080 into Working size must not run 1, 10 and 108 on the way (each a
    reprocess, and a GPU recapture): the value counts on Return or when the edit ends."""
    from desmoke_app.gui.controls import ControlPanel

    controls = ControlPanel()
    qtbot.addWidget(controls)
    controls.show()
    edits = []
    controls.settings_changed.connect(lambda settings, keys: edits.append(settings))
    box = controls.working
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=WAIT_MS)
    box.selectAll()
    for digit in "1080":
        qtbot.keyClicks(box, digit)
        qtbot.wait(300)  # longer than the panel waits before it applies an edit
    assert edits == [] and box.value() != 1080
    qtbot.keyClick(box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(edits) == 1, timeout=WAIT_MS)
    assert edits[0]["working_short_side"] == 1080


def test_a_spin_box_gives_the_keyboard_back_once_edited(qtbot, window, clip) -> None:
    """QA: change the patch, press Space to resume: nothing played (the spin box kept the
    keyboard, and Space with it). Typing still goes into the box; Space then plays at once
    (and ends the edit), Return ends it, a click on its arrows or the wheel never keeps the
    keyboard; after that the arrows step the video again."""
    open_clip(qtbot, window, clip)
    controls = window.controls
    for box, typed in ((controls.patch, "21"), (controls.working, "320")):
        box.setFocus()
        qtbot.waitUntil(box.hasFocus, timeout=WAIT_MS)
        box.selectAll()
        qtbot.keyClicks(box, typed)
        assert typed in box.text()  # digits are typed as ever
        press(qtbot, window, Qt.Key.Key_Space)  # resume: plays, the edit done
        qtbot.waitUntil(lambda: window.is_playing, timeout=WAIT_MS)
        assert not box.hasFocus() and box.value() == int(typed)
        press(qtbot, window, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: not window.is_playing, timeout=WAIT_MS)
        index = window.current.index
        box.setFocus()
        qtbot.waitUntil(box.hasFocus, timeout=WAIT_MS)
        press(qtbot, window, Qt.Key.Key_Up)  # a step from the keyboard: still editing
        assert box.value() == int(typed) + box.singleStep() and box.hasFocus()
        press(qtbot, window, Qt.Key.Key_Return)
        assert not box.hasFocus()
        press(qtbot, window, Qt.Key.Key_Right)  # the player's again
        wait_for_index(qtbot, window, index + 1)
        # The mouse: a click on the up arrow steps the value and leaves the keyboard be.
        option = QStyleOptionSpinBox()
        box.initStyleOption(option)
        up = box.style().subControlRect(
            QStyle.ComplexControl.CC_SpinBox, option, QStyle.SubControl.SC_SpinBoxUp, box
        )
        value = box.value()
        qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=up.center())
        assert box.value() == value + box.singleStep() and not box.hasFocus()
        # The wheel steps it without taking the keyboard (a QSpinBox's WheelFocus did),
        # and leaves no selected text that would look like the focus.
        assert box.focusPolicy() == Qt.FocusPolicy.StrongFocus
        centre = QPointF(box.rect().center())
        wheel = QWheelEvent(
            centre,
            QPointF(box.mapToGlobal(centre)),
            QPoint(),
            QPoint(0, 120),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(box, wheel)
        assert box.value() == value + 2 * box.singleStep() and not box.hasFocus()
        assert not box.lineEdit().hasSelectedText()
    expected = {"patch_size": 27, "working_short_side": 320 + 3 * 16}
    qtbot.waitUntil(
        lambda: {k: window.controls.settings()[k] for k in expected} == expected,
        timeout=WAIT_MS,
    )
    qtbot.waitUntil(
        lambda: window.processor_state.settings.get("patch_size") == 27, timeout=WAIT_MS
    )


def test_about_names_the_model(window) -> None:
    from desmoke_app.gui.about import about_html

    state = window.processor_state
    html = about_html(state.model_name, state.description, state.config, state.notice)
    assert "dark-channel prior" in html and "Salazar-Colores" in html


def open_shortcuts(qtbot, window: MainWindow):
    """Help > Keyboard and mouse, opened with F1 as the user would; the dialog."""
    from desmoke_app.gui.shortcuts_dialog import ShortcutsDialog

    qtbot.keyClick(window, Qt.Key.Key_F1)
    dialogs = window.findChildren(ShortcutsDialog)
    qtbot.waitUntil(lambda: any(d.isVisible() for d in dialogs), timeout=WAIT_MS)
    return dialogs


def test_f1_lists_every_shortcut_of_the_window(qtbot, window) -> None:
    """Each action with a shortcut, as its menu reads and its keys as the platform writes
    them, on a line of its own: the list is made from the actions, so none is missed."""
    (dialog,) = open_shortcuts(qtbot, window)
    assert not dialog.isModal()  # the player stays usable beside it
    text = dialog.browser.toPlainText()
    native = QKeySequence.SequenceFormat.NativeText
    listed = [a for a in window.actions() if a.shortcuts()]
    assert len(listed) > 20  # the window's actions, F1's own among them
    for action in listed:
        keys = ", ".join(key.toString(native) for key in action.shortcuts())
        what = action.text().replace("&", "").replace("…", "")
        assert f"\n{keys}\n{what}\n" in text, what
    assert "Ctrl++, Ctrl+=" in text and "\nF1\nKeyboard and mouse\n" in text
    assert text.index("\nWheel\n") > text.index("Keyboard and mouse")  # then the mouse


def test_the_window_keys_work_in_the_f1_dialog(qtbot, window, clip) -> None:
    """F1's dialog is not modal, to try the keys beside it: with the keyboard in it, they
    still play, step and go full screen (they did nothing)."""
    open_clip(qtbot, window, clip)
    (dialog,) = open_shortcuts(qtbot, window)
    run = shortcuts_run(window)
    dialog.activateWindow()
    dialog.browser.setFocus()
    qtbot.waitUntil(dialog.browser.hasFocus, timeout=WAIT_MS)
    for key in (Qt.Key.Key_Right, Qt.Key.Key_Space, Qt.Key.Key_Space, Qt.Key.Key_F9):
        press(qtbot, window, key)
    assert run == ["Next frame", "Play / pause", "Play / pause", "Full screen: Original"]
    window._full_screen.close()


def test_loop_from_the_menu_and_the_keyboard(qtbot, window, clip) -> None:
    """The Loop check box's Space is the window's play/pause: Playback > Loop (L) is its
    keyboard twin, in step with it both ways, listed by F1, off with it for a live source."""
    loop, action = window.transport.loop, window.loop_action
    assert action.isCheckable() and action.isChecked() == loop.isChecked()
    open_clip(qtbot, window, clip)
    for expected in (not loop.isChecked(), loop.isChecked()):
        window.pane_area.setFocus()
        qtbot.keyClick(window, Qt.Key.Key_L)
        assert loop.isChecked() == action.isChecked() == expected
    loop.click()
    assert action.isChecked() == loop.isChecked()
    (dialog,) = open_shortcuts(qtbot, window)
    assert "\nL\nLoop\n" in dialog.browser.toPlainText()
    window.open_capture("testsrc=size=160x96:rate=30", format="lavfi")
    qtbot.waitUntil(lambda: window.source_info.is_live, timeout=WAIT_MS)
    assert not loop.isEnabled() and not action.isEnabled()


def test_a_full_screen_key_again_leaves(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    press(qtbot, window, Qt.Key.Key_F9)
    qtbot.waitUntil(lambda: window._full_screen is not None, timeout=WAIT_MS)
    pane = window._full_screen
    press(qtbot, pane, Qt.Key.Key_F10)  # another pane's key: that pane instead
    assert window._full_screen.kind == "dark_channel" and not pane.isVisible()
    press(qtbot, window._full_screen, Qt.Key.Key_F10)  # the same key again: leaves
    assert window._full_screen is None


def test_a_full_screen_pane_left_is_deleted(qtbot, window, clip) -> None:
    """Each pane left used to stay, hidden, with its last frame, until the app ended (60
    toggles: 60 windows and 200 MB more)."""
    from PySide6.QtCore import QEvent

    from desmoke_app.gui.panes import FullScreenPane

    open_clip(qtbot, window, clip)
    for _ in range(3):
        window.toggle_full_screen("desmoked")
        assert window._full_screen is not None
        window.toggle_full_screen("desmoked")
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    left = [w for w in QApplication.topLevelWidgets() if isinstance(w, FullScreenPane)]
    assert left == [] and window._full_screen is None


def test_frame_rates_read_as_plain_numbers(qtbot, window, clip) -> None:
    from desmoke_app.gui.controls import format_fps

    assert [format_fps(f) for f in (1000, 25, 29.97003, 23.976, 0.5)] == [
        "1000",
        "25",
        "29.97",
        "23.98",
        "0.5",
    ]  # --fps 1000 read "1e+03 fps"
    open_clip(qtbot, window, clip)
    assert window.status_labels["resolution"].text() == "160x96 @ 25 fps"


def test_a_working_size_above_the_source_is_said_once(qtbot, window, clip) -> None:
    """A working size above the source's short side enlarges its frames before the network:
    slower (seconds a frame at 2160 for a 288p source, the panes black meanwhile), no detail
    gained. Said once for that size and source; the engine's rule stays."""
    open_clip(qtbot, window, clip)  # 160x96, working size 96: nothing to say
    assert window.message_bar.text() == ""
    window.set_processing(working_short_side=128)
    expected = (
        "working size 128 px is above the source's short side (96 px): its frames are "
        "enlarged before the network, which is slower and gains no detail"
    )
    assert window.message_bar.text() == expected
    window.message_bar.hide()
    window.set_processing(strength=0.4)  # the same working size: not again
    assert window.message_bar.text() == ""
    qtbot.waitUntil(
        lambda: window.processor_state.settings["working_short_side"] == 128, timeout=WAIT_MS
    )


def test_f1_twice_shows_one_dialog(qtbot, window) -> None:
    first = open_shortcuts(qtbot, window)
    assert open_shortcuts(qtbot, window) == first and len(first) == 1
    first[0].close()
    assert open_shortcuts(qtbot, window) == first  # closed, then opened again: the same one


def test_status_bar_shows_backend_and_dropped(qtbot, window, clip) -> None:
    open_clip(qtbot, window, clip)
    qtbot.waitUntil(lambda: "dropped" in window.status_labels["dropped"].text(), timeout=WAIT_MS)
    assert "dcp" in window.status_labels["backend"].text()
    assert window.status_labels["resolution"].text().startswith("160x96")


def test_main_takes_a_file_and_saves_a_screenshot(clip, tmp_path) -> None:
    """The entry point in a fresh process (it quits its QApplication, which must not be
    the one the other tests share)."""
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),  # the user's settings stay untouched
        "DESMOKE_CACHE": str(tmp_path / "cache"),
    }
    shot = tmp_path / "shot.png"
    args = [str(clip), "--model", "dcp", "--play", "--screenshot", str(shot), "--after", "1.5"]
    done = subprocess.run(
        [sys.executable, "-m", "desmoke_app.gui.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert shot.stat().st_size > 1000
    saved = (tmp_path / "config" / "desmoke" / "desmoke-app.conf").read_text()
    assert "index.mp4" in saved  # the file went into the recent list
    assert "model=dcp" not in saved  # --model is for this session: the next starts as before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 and Wayland: Linux's")
def test_main_without_a_display_says_so_in_one_line(tmp_path) -> None:
    """QA: with no display (an ssh session: no DISPLAY, WAYLAND_DISPLAY nor QT_QPA_PLATFORM)
    desmoke-app aborted (exit 134) with Qt's lines blaming a missing xcb-cursor0."""
    from desmoke_app.gui.main import NO_DISPLAY

    unset = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    env = {name: value for name, value in os.environ.items() if name not in unset}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    done = subprocess.run(
        [sys.executable, "-m", "desmoke_app.gui.main"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stderr.strip()) == (1, NO_DISPLAY)
    assert "QT_QPA_PLATFORM=offscreen" in NO_DISPLAY and "\n" not in NO_DISPLAY


def test_one_line_keeps_an_error_that_names_its_file_alone() -> None:
    """The engine's errors, ValueErrors and OSErrors name what failed: shown as they are;
    others get the context before them, and an empty message the class name."""
    from desmoke_app.gui.messages import one_line
    from engine.models.weights import WeightsError
    from engine.video import VideoOpenError

    for error in (VideoOpenError("a.mp4: no video"), WeightsError("w: bad"), OSError("disk")):
        assert one_line(error, "opening") == " ".join(str(error).split())
    assert one_line(RuntimeError("CUDA\n  out of memory"), "processing") == (
        "processing: CUDA out of memory"
    )
    assert one_line(KeyError(), "processing") == "processing: KeyError"


def test_installed_pyside_keeps_reference_counts_on_emit() -> None:
    """PySide6 6.12.0 on Python < 3.12 drops a reference to True on every Signal.emit()
    and aborts the interpreter after about a thousand (bool_dealloc): pyproject.toml
    excludes it. This guards the pin."""
    from PySide6.QtCore import QObject, Signal

    class Probe(QObject):
        signal = Signal()

    probe = Probe()
    before = sys.getrefcount(True)
    for _ in range(100):
        probe.signal.emit()
    assert sys.version_info >= (3, 12) or sys.getrefcount(True) >= before - 5


def test_capture_dialog_offers_the_test_pattern(qtbot) -> None:
    from desmoke_app.gui.capture_dialog import CaptureDialog

    dialog = CaptureDialog()
    qtbot.addWidget(dialog)
    dialog.device.setCurrentIndex(dialog.device.count() - 1)  # the test pattern is last
    dialog.size.setCurrentIndex(dialog.size.findText("640x480"))
    dialog.fps.setCurrentIndex(dialog.fps.findData(25.0))
    spec = dialog.spec()
    assert (spec.kind, spec.format, spec.size, spec.fps) == ("capture", "lavfi", (640, 480), 25.0)
    assert spec.path.startswith("testsrc")
    assert spec.pixel_format is None and not dialog.stream.isEnabled()  # nothing to choose


def test_capture_dialog_asks_a_card_for_mjpeg_and_remembers(qtbot, monkeypatch, tmp_path) -> None:
    import engine.video
    from desmoke_app.gui.capture_dialog import CaptureDialog
    from engine.video import CaptureDevice

    card = CaptureDevice("USB3 capture", "/dev/video4", "v4l2", "USB3 capture (v4l2)")
    camera = CaptureDevice("Webcam", "/dev/video0", "v4l2", "Webcam (v4l2)")
    monkeypatch.setattr(engine.video, "list_capture_devices", lambda: [camera, card])
    settings = make_settings(tmp_path)
    dialog = CaptureDialog(settings=settings)
    qtbot.addWidget(dialog)
    dialog.device.setCurrentIndex(1)
    assert dialog.device.currentText() == card.description and dialog.stream.isEnabled()
    dialog.size.setCurrentIndex(dialog.size.findText("1920x1080"))
    dialog.fps.setCurrentIndex(dialog.fps.findData(60.0))
    dialog.stream.setCurrentIndex(dialog.stream.findData("mjpeg"))
    spec = dialog.spec()
    assert (spec.path, spec.format, spec.size, spec.fps, spec.pixel_format) == (
        "/dev/video4",
        "v4l2",
        (1920, 1080),
        60.0,
        "mjpeg",
    )
    dialog.remember()
    again = CaptureDialog(settings=settings)  # the next time: the same choices
    qtbot.addWidget(again)
    assert again.spec() == spec
    again.device.setCurrentIndex(again.device.count() - 1)  # the test pattern
    assert not again.stream.isEnabled() and again.spec().pixel_format is None


def test_app_arguments_for_a_capture_mode(capsys) -> None:
    from desmoke_app.gui.main import parse_args

    args = parse_args(
        [
            "--capture",
            "/dev/video4",
            "--size",
            "1920x1080",
            "--fps",
            "60",
            "--pixel-format",
            "mjpeg",
        ]
    )
    assert (args.size, args.fps, args.pixel_format) == ((1920, 1080), 60.0, "mjpeg")
    for bad, message in [
        (["--capture", "/dev/video4", "--size", "big"], "expected WIDTHxHEIGHT"),
        (["--capture", "/dev/video4", "--size", "0x1080"], "expected WIDTHxHEIGHT"),
        (["--capture", "/dev/video4", "--size", "100000x100000"], "larger than desmoke handles"),
        (["--capture", "/dev/video4", "--fps", "0"], "--fps must be above 0"),
        (["clip.mp4", "--size", "1920x1080"], "apply to --capture"),
    ]:
        with pytest.raises(SystemExit):
            parse_args(bad)
        assert message in capsys.readouterr().err


def test_controls_take_a_weights_file(qtbot, monkeypatch, tmp_path) -> None:
    from desmoke_app.gui import controls
    from desmoke_app.gui.controls import WEIGHTS_ITEM, ControlPanel

    panel = ControlPanel()
    qtbot.addWidget(panel)
    panel.set_settings(DCP)
    weights = str(tmp_path / "mine.safetensors")
    monkeypatch.setattr(
        controls.QFileDialog, "getOpenFileName", lambda *a, **k: (weights, "Weights")
    )
    with qtbot.waitSignal(panel.settings_changed, timeout=WAIT_MS) as blocker:
        panel.model.activated.emit(panel.model.findText(WEIGHTS_ITEM))
    assert blocker.args[0]["model"] == weights
    assert panel.model.currentText() == "mine.safetensors"
    # A cancelled dialog keeps the previous choice.
    monkeypatch.setattr(controls.QFileDialog, "getOpenFileName", lambda *a, **k: ("", ""))
    panel.model.setCurrentIndex(panel.model.findText(WEIGHTS_ITEM))
    panel.model.activated.emit(panel.model.findText(WEIGHTS_ITEM))
    assert panel.settings()["model"] == weights


def test_unavailable_backends_are_disabled_with_a_reason(qtbot) -> None:
    from desmoke_app.gui.controls import ControlPanel
    from engine.backends import backend_status

    panel = ControlPanel()
    qtbot.addWidget(panel)
    for index in range(1, panel.backend.count()):
        name = panel.backend.itemData(index)
        available, reason = backend_status(name)
        assert panel.backend.model().item(index).isEnabled() == available
        if not available:
            assert panel.backend.itemData(index, Qt.ItemDataRole.ToolTipRole) == reason


def test_command_line_overrides_are_not_saved(qtbot, window) -> None:
    """--backend for this session: touching another control saves that control, not the
    override; changing the overridden control itself saves it."""
    controls = window.controls
    window.set_processing(remember=False, backend="onnxruntime")
    with qtbot.waitSignal(controls.settings_changed, timeout=WAIT_MS):
        controls.strength.setValue(30)
    # Saved once the processor runs it.
    qtbot.waitUntil(lambda: window.settings.processing()["strength"] == 0.3, timeout=WAIT_MS)
    assert window.settings.processing()["backend"] == DCP["backend"]
    assert controls.settings()["backend"] == "onnxruntime"  # still what runs in the session
    torch = controls.backend.findData("torch")
    controls.backend.setCurrentIndex(torch)
    controls.backend.activated.emit(torch)
    qtbot.waitUntil(lambda: window.settings.processing()["backend"] == "torch", timeout=WAIT_MS)


def test_about_sums_up_the_weights_in_a_line() -> None:
    from desmoke_app.gui.about import about_html
    from engine.models import shipped_weights
    from engine.models.weights import provenance_summary, read_config

    config = read_config(shipped_weights("fast"))
    html = about_html("fast", "model fast", config, "")
    assert provenance_summary(config) in html and "validation PSNR" in html
    for source in config["training"]["data"]["sources"]:  # the build machine's paths
        assert source["path"] not in html
    assert "{" not in html


def test_a_network_without_shipped_weights_cannot_be_chosen(qtbot, monkeypatch) -> None:
    """No `paper` weights ship: chosen, it could only fail (the engine refuses to run dcp
    in its place). Its entry is disabled and says how to get weights; fast's ships."""
    from desmoke_app.gui import controls
    from engine.models import shipped_weights

    assert shipped_weights("paper") is None and shipped_weights("fast") is not None
    panel = controls.ControlPanel()
    qtbot.addWidget(panel)
    items = panel.model.model()
    enabled = {panel.model.itemText(i): items.item(i).isEnabled() for i in range(items.rowCount())}
    assert enabled == {"fast": True, "paper": False, "dcp": True, controls.WEIGHTS_ITEM: True}
    tip = panel.model.itemData(panel.model.findText("paper"), Qt.ItemDataRole.ToolTipRole)
    assert "No paper weights are shipped" in tip and "training/configs/paper.toml" in tip


def test_remembered_paper_without_weights_gets_the_apps_advice() -> None:
    """QA: a remembered model=paper (no paper weights ship) showed the engine's advice,
    "pass weights=W.safetensors", an API argument the app has no place for."""
    from desmoke_app.gui import controls, processor
    from desmoke_app.gui.messages import one_line

    with pytest.raises(ValueError) as error:
        processor.make_desmoker({"model": "paper", "backend": "auto"})
    message = one_line(error.value, "processing")
    assert message == controls.no_weights_advice("paper") and "weights=" not in message
    assert controls.WEIGHTS_ITEM in message


def test_a_fallback_never_retries_the_settings_that_failed(monkeypatch) -> None:
    """Remembered settings that cannot run fall back down FALLBACKS; a step that changes
    nothing (the backend already auto) is skipped rather than built and failed again."""
    from desmoke_app.gui import processor

    tried = []

    def make(settings):
        tried.append(settings)
        if settings["model"] != "dcp":
            raise ValueError("cannot run")
        return "a desmoker"

    monkeypatch.setattr(processor, "make_desmoker", make)
    failed = {"model": "paper", "backend": "auto", "working_short_side": 256, "patch_size": 15}
    desmoker, chosen = processor._first_that_runs(failed)
    assert desmoker == "a desmoker" and chosen["model"] == "dcp"
    assert failed not in tried and [s["model"] for s in tried] == ["fast", "dcp"]


def test_the_first_window_fits_a_small_screen(qtbot, tmp_path, monkeypatch) -> None:
    """QA: the first start opened 1280x760 whatever the screen: taller than a 1366x768
    laptop's room, and at a 150% or 200% scale factor larger than the screen itself. The
    offscreen screen is 800x800: the window takes 90% of its width at most, and the plots
    keep the panes most of the height."""
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))
    win = MainWindow(make_settings(tmp_path))
    qtbot.addWidget(win)
    win.show()
    try:
        room = win.screen().availableGeometry()
        assert win.width() <= 0.9 * room.width() and win.height() <= 0.9 * room.height()
        qtbot.waitUntil(lambda: win.plots_dock.height() > 0, timeout=WAIT_MS)
        assert win.plots_dock.height() <= 0.35 * win.height()
    finally:
        win.shutdown()
