"""The main window: panes, playback bar, processing controls, plots, status bar, menus.

The GUI thread only paints and routes requests: the Reader (reader.py: decode, pacing,
seek), the Processor (processor.py: the Desmoker) and the Recorder (recorder.py) run on their
own threads (WorkerThreads, workers.py); exports on another (export_worker.py).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMenu,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desmoke_app.commands.common import visible
from desmoke_app.gui.about import about_html, show_about
from desmoke_app.gui.controls import ControlPanel, TransportBar, format_fps
from desmoke_app.gui.export_dialog import ExportDialog, ExportProgress, with_mp4_suffix
from desmoke_app.gui.export_worker import ExportJob, ExportRequest
from desmoke_app.gui.lifetime import dispose_dialog
from desmoke_app.gui.message_bar import MessageBar
from desmoke_app.gui.messages import literal, menu_text, plain_label, window_title
from desmoke_app.gui.panes import TITLES, FullScreenPane, PaneArea
from desmoke_app.gui.plots import LATENCY_WARNING_MS, PerformancePlot, SmokeTimeline
from desmoke_app.gui.processor import ProcessedFrame, ProcessorState
from desmoke_app.gui.reader import SourceInfo, SourceSpec
from desmoke_app.gui.recorder import RecordingReport, RecordRequest
from desmoke_app.gui.settings import AppSettings
from desmoke_app.gui.shortcuts_dialog import ShortcutsDialog, key_hint
from desmoke_app.gui.workers import WorkerThreads
from engine.files import write_atomically
from engine.video.errors import describe
from engine.video.file_source import StreamChoice
from engine.video.writer import DEFAULT_CRF

log = logging.getLogger(__name__)

VIDEO_FILTER = (
    "Videos (*.mp4 *.mov *.mkv *.avi *.webm *.m4v *.mpg *.mpeg *.ts *.wmv);;All files (*)"
)
#: The window's size on first start, made smaller where the screen is (a 1366x768 laptop,
#: or a high-DPI scale factor): FIRST_SCREEN_SHARE of the room the screen has at most.
FIRST_SIZE = QSize(1280, 760)
FIRST_SCREEN_SHARE = 0.9
#: The plots' height on first start: PLOTS_HEIGHT, or PLOTS_SHARE of a smaller window's.
PLOTS_HEIGHT, PLOTS_SHARE = 240, 0.3
#: Restored plots higher than their share by more than this (px) get the first-start sizes.
PLOTS_SLACK = 8


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("desmoke")
        self.setAcceptDrops(True)
        self.settings = settings or AppSettings()
        self.source_info: SourceInfo | None = None
        self.current: ProcessedFrame | None = None
        # A frame of a source whose "opened" is still on its way (see _result_available).
        self._early: ProcessedFrame | None = None
        self._range_note = ""  # the export range note shown last (cleared with its marks)
        self.processor_state: ProcessorState | None = None
        self.is_playing = False
        self.export_job: ExportJob | None = None
        self.selection: list[float | None] = [None, None]
        self._asked: dict[str, Any] = {}  # the processing settings last sent to the processor
        self._session_only: set[str] = set()  # settings not remembered (set_processing)
        self._to_remember: dict[str, Any] | None = None  # saved once the processor runs them
        self._processing_error = False  # the message bar shows the processor's error
        self._full_screen: FullScreenPane | None = None
        self._shortcuts_dialog: ShortcutsDialog | None = None
        self._shut_down = False
        self._capture_lost = False  # the live capture stopped sending: its view is stopped
        self._told_enlarged: tuple[int, int] | None = None  # see _tell_if_enlarged
        self._recording_ended_by = ""  # the source's failure that stopped the recording
        self._recording_stopping = False  # stop asked, the file not yet finished
        self._build_widgets()
        self._build_docks()
        self._build_status_bar()
        self._build_menus()
        self._start_workers()
        self._restore_view()

    # -- construction ---------------------------------------------------------------------
    def _build_widgets(self) -> None:
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        self.message_bar = MessageBar()
        self.pane_area = PaneArea()
        self.pane_area.full_screen_requested.connect(self.show_full_screen)
        self.transport = TransportBar()
        column.addWidget(self.message_bar)
        column.addWidget(self.pane_area, 1)
        column.addWidget(self.transport)
        self.setCentralWidget(central)
        self.panes = self.pane_area.panes
        self.transport.play_toggled.connect(self.toggle_play)
        self.transport.step_requested.connect(self.step)
        self.transport.seek_requested.connect(self.seek_frame)
        self.transport.speed_changed.connect(self._speed_changed)
        self.transport.loop_changed.connect(self._loop_changed)

    def _build_docks(self) -> None:
        self.controls = ControlPanel()
        self.controls.set_settings(self.settings.processing())
        self.controls.settings_changed.connect(self._controls_edited)
        dock = QDockWidget("Processing", self)
        dock.setObjectName("processing")
        dock.setWidget(self.controls)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        self.controls_dock = dock
        self.timeline = SmokeTimeline()
        self.timeline.seek_requested.connect(self.seek_time)
        self.performance = PerformancePlot()
        plots = QSplitter(Qt.Orientation.Horizontal)
        plots.addWidget(self.timeline)
        plots.addWidget(self.performance)
        plots.setStretchFactor(0, 3)
        plots.setStretchFactor(1, 2)
        dock = QDockWidget("Plots", self)
        dock.setObjectName("plots")
        dock.setWidget(plots)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        # Controls and plots share the bottom strip: the panes get the full width.
        self.splitDockWidget(self.controls_dock, dock, Qt.Orientation.Horizontal)
        self.plots_dock = dock

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.pixel_label = plain_label()
        self.pixel_label.setToolTip(
            "The frame pixel under the mouse: its values in the original, the dark channel "
            "and the desmoked frame (0-255)"
        )
        bar.addWidget(self.pixel_label)
        self._hovered: tuple[int, int] | None = None
        self.pane_area.hovered.connect(self._hover)
        self.status_labels = {}
        tips = {
            "source": "Current source",
            "resolution": "Frame size and source frame rate",
            "backend": "Model, backend and device running now",
            "fps": "Frames processed and shown per second",
            "dropped": "Frames dropped because processing was behind (never queued)",
            "latency": "Delay from a frame decoded to it shown (median, last second); red "
            f"from {LATENCY_WARNING_MS:.0f} ms: laparoscopic task performance degrades "
            "significantly at 105 ms of added latency (Kumcu et al. 2016)",
        }
        for key, tip in tips.items():
            label = plain_label("–")  # the source's name among them: never read as HTML
            label.setToolTip(tip)
            bar.addPermanentWidget(label)
            self.status_labels[key] = label
        self.record_label = plain_label()
        self.record_label.setStyleSheet("color: #e04040; font-weight: bold")
        self.record_label.hide()
        bar.addPermanentWidget(self.record_label)
        self.export_progress = ExportProgress()
        self.export_progress.cancel_requested.connect(self.cancel_export)
        bar.addPermanentWidget(self.export_progress)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(500)
        self._status_timer.timeout.connect(self._refresh_status)
        self._status_timer.start()

    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setToolTip(tip)
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        menu.addAction(action)
        self.addAction(action)  # shortcuts work while menus are hidden (full screen)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        self._build_file_menu(bar.addMenu("&File"))
        self._build_playback_menu(bar.addMenu("&Playback"))
        self._enable_export(False)  # no source yet
        self._build_view_menu(bar.addMenu("&View"))
        self._build_help_menu(bar.addMenu("&Help"))

    def _build_file_menu(self, file: QMenu) -> None:
        self.open_action = self._action(
            file, "&Open video…", self.open_file_dialog, QKeySequence.StandardKey.Open
        )
        self._action(file, "Open &capture device…", self.open_capture_dialog, "Ctrl+D")
        self._action(file, "Open &demo", self.open_demo)
        self.recent_menu = file.addMenu("&Recent files")
        self._fill_recent_menu()
        file.addSeparator()
        self.export_action = self._action(
            file, "&Export side-by-side video…", self.export_dialog, "Ctrl+E"
        )
        self.record_action = self._action(
            file,
            "&Record the view…",
            self.toggle_recording,
            "Ctrl+R",
            "Record the panes as they are shown (for a live capture, the way to keep them)",
        )
        self.record_action.setCheckable(True)
        self._action(file, "&Snapshot of the three panes…", self.snapshot_dialog, "Ctrl+Shift+S")
        file.addSeparator()
        quit_app = self._action(file, "&Quit", self.close)
        # Ctrl+Q everywhere (Qt's standard Quit key is none on Windows), and the platform's
        # own where that is another (macOS: Cmd+Q).
        ctrl_q = QKeySequence("Ctrl+Q")
        own = QKeySequence.keyBindings(QKeySequence.StandardKey.Quit)
        quit_app.setShortcuts([ctrl_q, *(key for key in own if key != ctrl_q)])

    def _build_playback_menu(self, play: QMenu) -> None:
        self._action(play, "Play / pause", self.toggle_play, Qt.Key.Key_Space)
        self._action(play, "Previous frame", lambda: self.step(-1), Qt.Key.Key_Left)
        self._action(play, "Next frame", lambda: self.step(1), Qt.Key.Key_Right)
        self._action(play, "Back 1 second", lambda: self.jump(-1.0), "Shift+Left")
        self._action(play, "Forward 1 second", lambda: self.jump(1.0), "Shift+Right")
        self._action(play, "First frame", lambda: self.seek_frame(0), Qt.Key.Key_Home)
        self._action(play, "Last frame", self.seek_last, Qt.Key.Key_End)
        # The Loop check box's twin: the box cannot be toggled from the keyboard (Space on
        # it is the window's play/pause, as everywhere).
        loop = self.transport.loop
        self.loop_action = self._action(
            play, "Loop", lambda: loop.setChecked(self.loop_action.isChecked()), "L", loop.toolTip()
        )
        self.loop_action.setCheckable(True)
        self.loop_action.setChecked(loop.isChecked())
        loop.toggled.connect(self.loop_action.setChecked)
        play.addSeparator()
        self.mark_actions = [
            self._action(
                play, "Mark range start", lambda: self.mark(0), "I", "Export range start (files)"
            ),
            self._action(
                play, "Mark range end", lambda: self.mark(1), "O", "Export range end (files)"
            ),
        ]

    def _build_view_menu(self, view: QMenu) -> None:
        # A file's video streams (a stereo laparoscope's two eyes): filled as one opens.
        self.stream_menu = view.addMenu("Video &stream")
        self.stream_menu.setEnabled(False)
        self._stream_group = QActionGroup(self)  # one checked at a time
        view.addSeparator()
        self.split_action = self._action(
            view, "&Split view (before/after)", self.set_split, "Ctrl+\\"
        )
        self.split_action.setCheckable(True)
        for i, kind in enumerate(TITLES, start=1):
            full_screen = self._action(
                view,
                f"Full screen: {TITLES[kind]}",
                lambda _c=False, k=kind: self.toggle_full_screen(k),
                tip="The same key again, Esc or a double-click leaves",
            )
            # F9-F11, and Ctrl+1-3 (Cmd on macOS) where the F keys are the laptop's media
            # keys (F11: Show Desktop on macOS).
            full_screen.setShortcuts([QKeySequence(f"F{i + 8}"), QKeySequence(f"Ctrl+{i}")])
        zoom = self.pane_area.zoom
        view.addSeparator()
        zoom_in = self._action(view, "Zoom &in", lambda: zoom.zoom_by(zoom.STEP))
        # Ctrl++ needs Shift on many layouts: Ctrl+= is the same key without it.
        zoom_in.setShortcuts([QKeySequence("Ctrl++"), QKeySequence("Ctrl+=")])
        self._action(view, "Zoom &out", lambda: zoom.zoom_by(1 / zoom.STEP), "Ctrl+-")
        self._action(view, "&Fit the frame (zoom 100%)", zoom.reset, "Ctrl+0")
        view.addSeparator()
        view.addAction(self.controls_dock.toggleViewAction())
        view.addAction(self.plots_dock.toggleViewAction())

    def _build_help_menu(self, help_menu: QMenu) -> None:
        keys = self._action(help_menu, "&Keyboard and mouse", self.show_shortcuts)
        # F1 everywhere, and the platform's own help key where that is another (macOS).
        f1, platform_key = QKeySequence("F1"), QKeySequence(QKeySequence.StandardKey.HelpContents)
        keys.setShortcuts([f1] if platform_key == f1 else [f1, platform_key])
        self._action(help_menu, "&About desmoke", self.about)

    def _start_workers(self) -> None:
        self.workers = WorkerThreads()
        reader, processor = self.workers.reader, self.workers.processor
        reader.opened.connect(self._source_opened)
        reader.failed.connect(self.show_error)
        reader.playing_changed.connect(self._playing_changed)
        reader.ended.connect(self._ended)
        reader.warned.connect(self.show_warning)
        reader.broke.connect(self._source_broke)
        processor.result_available.connect(self._result_available)
        processor.configured.connect(self._configured)
        processor.failed.connect(self._processing_failed)
        recorder = self.workers.recorder
        recorder.started.connect(self._recording_started)
        recorder.finished.connect(self._recording_finished)
        recorder.failed.connect(self._recording_failed)
        self.apply_processing(self.controls.settings(), remember=False)
        reader.request_loop(self.transport.loop.isChecked())

    def _first_size(self) -> QSize:
        room = self.screen().availableGeometry().size()
        return FIRST_SIZE.boundedTo(room * FIRST_SCREEN_SHARE)

    def _restore_view(self) -> None:
        """The window, its docks and the view as last saved; the defaults for what was not
        saved, or was saved damaged (named in the message bar: the app starts anyway)."""
        # Qt refuses a geometry that does not fit this screen (saved on a bigger one).
        geometry = self.settings.byte_array("window/geometry")
        as_saved = geometry is not None and self.restoreGeometry(geometry)
        if not as_saved:
            self.resize(self._first_size())
        state = self.settings.byte_array("window/state")
        if state is not None and self.restoreState(state):
            if not as_saved:  # docks as many pixels high as in a bigger window: fit them
                QTimer.singleShot(0, self, self._fit_restored_docks)
        else:
            self._default_dock_sizes()
        self.transport.loop.setChecked(self.settings.flag("playback/loop", True))
        speed = self.transport.speed.findData(self.settings.value("playback/speed", 1.0))
        if speed >= 0:
            self.transport.speed.setCurrentIndex(speed)
        else:  # not one of the speeds offered
            self.settings.mark_unusable("playback/speed")
        self.set_split(self.settings.flag("view/split", False))
        note = self.settings.unusable_note()
        if note:  # a fading note: a warning would be cleared by the processor's first answer
            log.warning("%s", visible(note))
            self.show_message(note, "info")

    def _default_dock_sizes(self) -> None:
        """The docks' first-start sizes: the plots PLOTS_HEIGHT high, at most PLOTS_SHARE
        of the window; the controls as narrow as they read well, the plots the rest."""
        plots_height = min(PLOTS_HEIGHT, round(PLOTS_SHARE * self.height()))
        self.resizeDocks([self.plots_dock], [plots_height], Qt.Orientation.Vertical)
        self.resizeDocks(
            [self.controls_dock, self.plots_dock], [270, 1000], Qt.Orientation.Horizontal
        )

    def _fit_restored_docks(self) -> None:
        """The first-start dock sizes again where the restored plots take more than their
        share of a window that could not come back as saved: a view saved on a bigger screen
        comes back in a smaller window with docks as high as they were, leaving the panes a
        strip. (A window back at its size keeps the docks as the user left them.)"""
        plots = self.plots_dock
        if not plots.isVisible() or plots.isFloating():
            return
        if plots.height() > PLOTS_SHARE * self.height() + PLOTS_SLACK:
            self._default_dock_sizes()

    # -- sources ----------------------------------------------------------------------------
    def open_file(self, path: str | Path, autoplay: bool = False, video_stream: int = 0) -> None:
        """Open the video file `path`, showing its video stream `video_stream` (0 the first)."""
        spec = SourceSpec("file", str(path), autoplay=autoplay, video_stream=video_stream)
        self.workers.reader.request_open(spec)

    def choose_video_stream(self, number: int) -> None:
        """View > Video stream: the open file again, showing its video stream `number` (0
        the first) from the time shown, playing or paused as it was."""
        info = self.source_info
        if info is None or number == info.spec.video_stream or not info.stream_choices:
            return
        shown = self.current.time if self.current is not None else 0.0
        spec = replace(info.spec, video_stream=number, start_at=shown, autoplay=self.is_playing)
        self.workers.reader.request_open(spec)

    def _fill_stream_menu(self, info: SourceInfo) -> None:
        """The open file's video streams, the one shown checked; enabled where there are
        several to choose from."""
        menu = self.stream_menu
        menu.clear()  # deletes its actions, which leave the group as they go
        for number, choice in enumerate(info.stream_choices):
            action = menu.addAction(stream_label(number, choice))
            action.setCheckable(True)
            action.setChecked(number == info.spec.video_stream)
            action.setActionGroup(self._stream_group)
            action.triggered.connect(lambda _c=False, n=number: self.choose_video_stream(n))
        menu.setEnabled(len(info.stream_choices) > 1)

    def open_capture(
        self,
        device: str,
        format: str | None = None,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        pixel_format: str | None = None,
    ) -> None:
        spec = SourceSpec("capture", device, format, size, fps, pixel_format=pixel_format)
        self.workers.reader.request_open(spec)

    def open_demo(self, autoplay: bool = True) -> None:
        self.workers.reader.request_open(SourceSpec("demo", autoplay=autoplay))

    def open_file_dialog(self) -> None:
        start = self.settings.value("paths/last_dir", "")
        path, _ = QFileDialog.getOpenFileName(self, "Open video", start, VIDEO_FILTER)
        if path:
            self.settings.set_value("paths/last_dir", str(Path(path).parent))
            self.open_file(path)

    def open_capture_dialog(self) -> None:
        from desmoke_app.gui.capture_dialog import CaptureDialog

        dialog = CaptureDialog(self, self.settings)
        accepted = dialog.exec() == QDialog.DialogCode.Accepted
        if accepted:
            dialog.remember()
            self.workers.reader.request_open(dialog.spec())
        dispose_dialog(dialog)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.settings.recent_files()
        for path in files:
            action = self.recent_menu.addAction(menu_text(path))
            action.triggered.connect(lambda _c=False, p=path: self.open_recent(p))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self._clear_recent)
        self.recent_menu.setEnabled(bool(files))

    def _clear_recent(self) -> None:
        self.settings.clear_recent_files()
        self._fill_recent_menu()

    def open_recent(self, path: str) -> None:
        """File > Recent files: open `path`; one that no longer exists leaves the list (as
        in most desktop apps: the menu lists what was opened, unchecked, since checking a
        file on a network share that is gone can stall the menu for seconds)."""
        if os.path.exists(path):
            self.open_file(path)
            return
        self.settings.remove_recent_file(path)
        self._fill_recent_menu()
        self.show_error(f"{path}: no such file; removed from the recent files")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        files = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if not files:
            return
        self.open_file(files[0])
        event.acceptProposedAction()
        others = len(files) - 1
        if others:
            self.show_message(
                f"opening {Path(files[0]).name}: the app shows one video at a time "
                f"({others} other dropped file{'s' if others > 1 else ''} not opened)"
            )

    def _source_opened(self, info: SourceInfo) -> None:
        self.source_info = info
        self.current = None
        self._clear_marks()
        self.workers.processor.reset_counters()
        self.transport.set_source(info.frame_count, info.fps, info.duration, info.seekable)
        self.timeline.reset(
            info.frame_count if info.seekable else None, info.fps, live=info.is_live
        )
        self.performance.clear()
        self.pane_area.zoom.reset()  # another video: start from the whole frame
        self._capture_lost = False
        self._show_live_state()  # the title and source label too
        self.status_labels["resolution"].setText(
            f"{info.width}x{info.height} @ {format_fps(info.fps)} fps"
        )
        self._enable_export(True)
        self._fill_stream_menu(info)
        self.loop_action.setEnabled(self.transport.loop.isEnabled())
        self.stop_recording()  # one recording, one source
        if info.spec.kind == "file":
            self.settings.add_recent_file(info.spec.path)
            self._fill_recent_menu()
        if self.message_bar.level == "error":
            self.message_bar.hide()  # the new source works: the old error no longer applies
        self._tell_if_enlarged()
        self._show_first_frame(info)

    def _show_first_frame(self, info: SourceInfo) -> None:
        """The new source's frame that came before its "opened", else a blank of its size:
        the previous source's last frame must not stay up as if it were the new one's (a
        paused file shows no other frame until the user moves)."""
        early, self._early = self._early, None
        if early is not None and early.source_id > info.source_id:
            self._early = early  # of a source opened after this one: its turn comes
        elif early is not None and early.source_id == info.source_id:
            self._show_result(early)
            return
        blank = np.zeros((info.height, info.width, 3), np.uint8)
        self.pane_area.show_frame(blank, blank[..., 0], blank)
        if self._full_screen is not None:
            self._full_screen.view.set_array(None)

    def _exportable(self) -> bool:
        """Export, and the range marks that feed it, work on video files only."""
        return self.source_info is not None and self.source_info.spec.kind == "file"

    def _export_advice(self) -> str:
        """What to do where the source is no video file (export and marks refused)."""
        if self.source_info is not None and self.source_info.is_live:
            return f"a live capture is kept by recording the view ({key_hint(self.record_action)})"
        return f"open one ({key_hint(self.open_action)})"

    def _enable_export(self, enabled: bool) -> None:
        """Enabled once a source is open, whatever it is: Ctrl+E, I and O on a live capture
        or the demo say why they cannot work there (a disabled action's key says nothing)."""
        self.export_action.setEnabled(enabled)
        for action in self.mark_actions:
            action.setEnabled(enabled)

    def _clear_marks(self) -> None:
        """No export range (a new source); its note, if still shown, goes with it."""
        self.selection = [None, None]
        self.timeline.set_selection(None, None)
        if self._range_note and self.message_bar.text() == self._range_note:
            self.message_bar.hide()
        self._range_note = ""

    # -- playback -----------------------------------------------------------------------------
    def play(self) -> None:
        self.workers.reader.request_play(True)

    def pause(self) -> None:
        self.workers.reader.request_play(False)

    def toggle_play(self) -> None:
        self.workers.reader.request_play(not self.is_playing)

    def step(self, delta: int) -> None:
        if self._can_move():
            self.workers.reader.request_step(delta)

    def seek_frame(self, index: int) -> None:
        if self._can_move():
            self.workers.reader.request_seek(index)

    def seek_time(self, seconds: float) -> None:
        if self.source_info is not None:
            self.seek_frame(round(seconds * self.source_info.fps))

    def seek_last(self) -> None:
        if self._can_move() and self.source_info.frame_count:
            self.seek_frame(self.source_info.frame_count - 1)

    def jump(self, seconds: float) -> None:
        """The reader counts from the frame last asked for, not the one shown: jumps pressed
        while a seek is under way add up."""
        if self._can_move():
            self.workers.reader.request_jump(round(seconds * self.source_info.fps))

    def _can_move(self) -> bool:
        """Whether the source has frames to step, jump or seek to: a file or the demo. A
        live capture has none: the move does nothing (nor pauses it: a still frame that
        looks live is a risk in surgery), and the status bar says so."""
        info = self.source_info
        if info is not None and not info.seekable:
            space = "pauses" if self.is_playing else "resumes"
            self.statusBar().showMessage(
                f"a live capture has no frames to step or seek to (Space {space} it)", 4000
            )
        return info is not None and info.seekable

    def mark(self, which: int) -> None:
        if not self._exportable():
            self.show_error(f"export range marks work on video files: {self._export_advice()}")
            return
        if self.current is None:
            return
        self.selection[which] = self.current.time
        start, end = self.selection
        if start is not None and end is not None and end < start:  # marked the wrong way round
            start, end = end, start
            self.selection = [start, end]
        self.timeline.set_selection(start, end)
        text = f"export range: {start if start is not None else 0:.2f} s to " + (
            f"{end:.2f} s" if end is not None else "the end"
        )
        self._range_note = text
        self.show_message(text, "info")

    def _speed_changed(self, speed: float) -> None:
        self.workers.reader.request_speed(speed)
        self.settings.set_value("playback/speed", speed)

    def _loop_changed(self, loop: bool) -> None:
        self.workers.reader.request_loop(loop)
        self.settings.set_value("playback/loop", loop)

    def _playing_changed(self, playing: bool) -> None:
        self.is_playing = playing
        self.transport.set_playing(playing)
        self._show_live_state()

    def _show_live_state(self) -> None:
        """Name the source in the title and status bar. A live capture that does not play
        shows a still frame, which must never pass for the live picture: the title, the
        time label and every pane then say PAUSED (or STOPPED: the capture was lost)."""
        info = self.source_info
        if info is None:
            return
        state = ""
        if info.is_live and not self.is_playing:
            state = "STOPPED" if self._capture_lost else "PAUSED"
        if info.spec.kind == "capture":
            name = f"{state} (not live): {info.spec.path}" if state else f"live: {info.spec.path}"
        else:
            name = "demo" if info.spec.kind == "demo" else Path(info.spec.path).name
        self.setWindowTitle(window_title(f"desmoke - {name}"))
        self.status_labels["source"].setText(visible(name))
        self.transport.set_still(state)
        notice = f"{state} — not live" if state else ""
        self.pane_area.set_notice(notice)
        if self._full_screen is not None:
            self._full_screen.view.set_notice(notice)

    def _ended(self) -> None:
        self.statusBar().showMessage("end of the video", 3000)

    # -- results ------------------------------------------------------------------------------
    def _result_available(self) -> None:
        result = self.workers.processor.outbox.take()
        if result is None:
            return
        known = self.source_info.source_id if self.source_info is not None else 0
        if result.source_id > known:
            # The outbox wakes the window once per unread item: a wake-up queued for the
            # old source's frame, ahead of the new source's "opened", can find the new
            # source's first frame in it instead. Kept: "opened" is on its way (the reader
            # sends it before any frame), and a paused file sends no other frame.
            self._early = result
            return
        if result.source_id == known:  # else a frame of a source replaced meanwhile
            self._show_result(result)

    def _show_result(self, result: ProcessedFrame) -> None:
        self.current = result
        self.pane_area.show_frame(result.original, result.dark_channel, result.desmoked)
        if self._full_screen is not None:
            self._full_screen.view.set_array(self._pane_array(self._full_screen.kind))
        self.transport.set_position(result.index, result.time)
        self.timeline.set_level(result.index, result.smoke_level, result.time)
        self.timeline.set_position(result.time)
        timings = dict(result.timings)
        if result.read_at is not None:  # a frame processed again has no latency of its own
            timings["latency"] = (time.monotonic() - result.read_at) * 1000
        self.performance.add(timings)
        if self._hovered is not None:
            self._show_pixel()

    def _hover(self, x: int, y: int) -> None:
        self._hovered = None if x < 0 else (x, y)
        self._show_pixel()

    def _show_pixel(self) -> None:
        """The hovered pixel's values in the three panes, for checking detail and clipping."""
        result, point = self.current, self._hovered
        height, width = result.original.shape[:2] if result is not None else (0, 0)
        if point is None or point[0] >= width or point[1] >= height:
            self.pixel_label.clear()  # nothing hovered, or a frame of another size
            return
        x, y = point
        original = " ".join(str(v) for v in result.original[y, x])
        desmoked = " ".join(str(v) for v in result.desmoked[y, x])
        self.pixel_label.setText(
            f"x {x} y {y} · original {original} · dark {result.dark_channel[y, x]} "
            f"· desmoked {desmoked}"
        )

    def _pane_array(self, kind: str):
        return getattr(self.current, kind) if self.current is not None else None

    def _refresh_status(self) -> None:
        self.status_labels["fps"].setText(f"{self.performance.current_fps():.0f} fps")
        dropped = self.workers.processor.dropped
        self.status_labels["dropped"].setText(f"dropped {dropped}")
        latency = self.performance.current_latency()
        label = self.status_labels["latency"]
        label.setText("latency –" if latency is None else f"latency {latency:.0f} ms")
        slow = latency is not None and latency > LATENCY_WARNING_MS
        label.setStyleSheet("color: #e04040" if slow else "")
        if self.workers.recorder.recording and not self._recording_stopping:
            self.record_label.setText(f"● REC {self.workers.recorder.frames_written} frames")

    # -- processing settings ------------------------------------------------------------------
    def apply_processing(self, settings: dict[str, Any], remember: bool = True) -> None:
        """Run `settings`; remember=True also saves them, less those set for this session
        only, once the processor runs them (a file that is no model is not remembered)."""
        self._to_remember = (
            {k: v for k, v in settings.items() if k not in self._session_only} if remember else None
        )
        self._asked = dict(settings)
        self.workers.processor.request_configure(settings)
        self._tell_if_enlarged()

    def _tell_if_enlarged(self) -> None:
        """Say once (for a working size and source) where the working size is above the
        source's short side: its frames are enlarged before the network, slower (a 288p
        source at 2160 took seconds a frame, the panes black meanwhile) for no detail."""
        info, working = self.source_info, self._asked.get("working_short_side")
        if info is None or not working:
            return
        short = min(info.width, info.height)
        if working <= short or self._told_enlarged == (working, short):
            return
        self._told_enlarged = (working, short)
        self.show_message(
            f"working size {working} px is above the source's short side ({short} px): "
            "its frames are enlarged before the network, which is slower and gains no detail"
        )

    def set_processing(self, remember: bool = True, **changes: Any) -> None:
        """Change some processing settings as the controls would (shown in them too);
        remember=False for this session only (the command line's --model, --backend): the
        saved values of these stay until the user changes these very controls."""
        if remember:
            self._session_only.difference_update(changes)
        else:
            self._session_only.update(changes)
        settings = {**self.controls.settings(), **changes}
        self.controls.set_settings(settings)
        self.apply_processing(settings, remember)

    def _controls_edited(self, settings: dict[str, Any], edited: list[str]) -> None:
        self._session_only.difference_update(edited)  # the user's choice now: remembered
        self.apply_processing(settings)

    def _configured(self, state: ProcessorState) -> None:
        self.processor_state = state
        if self._controls_must_show(state):
            self.controls.set_settings(state.settings)
        if state.asked == self._asked:  # the answer to the latest request
            if state.runs_what_was_asked:
                self._latest_request_runs()
            else:
                self._to_remember = None  # it could not run: what was saved stays
        asked = state.settings.get("model")
        model = (
            state.model_name
            if asked == state.model_name
            else f"{state.model_name} (for {Path(str(asked)).name})"
        )
        shown = visible(f"{model} · {state.backend_name} · {state.device}")
        self.status_labels["backend"].setText(shown)
        self.status_labels["backend"].setToolTip(literal(state.description))
        if state.notice:
            self.show_message(state.notice, "warning")
        elif self.message_bar.level == "warning":
            self.message_bar.hide()  # an earlier fallback notice no longer applies

    def _controls_must_show(self, state: ProcessorState) -> bool:
        """The controls keep the user's last values; they show what the processor runs
        only where it could not run the latest request (a fallback, or the old settings
        kept), and never over an edit still waiting to be sent."""
        return (
            not state.runs_what_was_asked
            and state.asked == self._asked
            and not self.controls.edit_pending()
        )

    def _latest_request_runs(self) -> None:
        if self._to_remember is not None:
            self.settings.set_processing(self._to_remember)
            self._to_remember = None
        if self._processing_error and self.message_bar.level == "error":
            self.message_bar.hide()  # e.g. a file that was no model: another one runs now
        self._processing_error = False

    def _processing_failed(self, text: str) -> None:
        self.show_error(text)
        self._processing_error = True

    # -- messages -------------------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        log.warning("%s", visible(text))
        self.message_bar.show_message(text, "error")

    def show_message(self, text: str, level: str = "info") -> None:
        self.message_bar.show_message(text, level)

    def show_warning(self, text: str) -> None:
        log.warning("%s", visible(text))
        self.message_bar.show_message(text, "warning")

    # -- view ---------------------------------------------------------------------------------
    def set_split(self, split: bool) -> None:
        self.pane_area.set_split(bool(split))
        self.split_action.setChecked(bool(split))
        self.settings.set_value("view/split", bool(split))

    def show_full_screen(self, kind: str) -> None:
        if self._full_screen is not None:
            self._full_screen.close()
        pane = FullScreenPane(kind, zoom=self.pane_area.zoom)
        pane.view.set_array(self._pane_array(kind))
        pane.view.set_notice(self.pane_area.notice)
        pane.closed.connect(self._full_screen_closed)
        for action in self.actions():  # playback shortcuts keep working there
            pane.addAction(action)
        self._full_screen = pane
        pane.showFullScreen()

    def toggle_full_screen(self, kind: str) -> None:
        """F9-F11 or Ctrl+1-3: pane `kind` full screen; its key again leaves (another key
        switches)."""
        if self._full_screen is not None and self._full_screen.kind == kind:
            self._full_screen.close()
        else:
            self.show_full_screen(kind)

    def _full_screen_closed(self) -> None:
        self._full_screen = None

    def show_shortcuts(self) -> None:
        """Help > Keyboard and mouse: one dialog, made at first use and then raised. Not
        modal (the keys can be tried beside it): the window's shortcuts work in it too."""
        if self._shortcuts_dialog is None:
            self._shortcuts_dialog = ShortcutsDialog(self.menuBar(), self)
            self._shortcuts_dialog.addActions(self.actions())
        self._shortcuts_dialog.show()
        self._shortcuts_dialog.raise_()
        self._shortcuts_dialog.activateWindow()

    def about(self) -> None:
        state = self.processor_state
        if state is None:
            html = about_html("dcp", "starting", {}, "")
        else:
            html = about_html(state.model_name, state.description, state.config, state.notice)
        show_about(self, html)

    # -- snapshot -------------------------------------------------------------------------------
    def snapshot(self, path: str | Path, labels: bool = True) -> Path:
        """The current frame's three panes side by side as one PNG (written atomically)."""
        from engine.video import compose_panes

        if self.current is None:
            raise ValueError("no frame to save yet")
        path = Path(path)
        current = self.current
        image = compose_panes(  # an image: odd panes touch (even cells are for H.264)
            current.original, current.dark_channel, current.desmoked, "3up", labels, False
        )
        ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"{path}: PNG encoding failed")
        write_atomically(path, data.tobytes())
        return path

    def snapshot_dialog(self) -> None:
        if self.current is None:
            self.show_error("no frame to save yet")
            return
        default = str(
            Path(self.settings.value("paths/last_dir", ""))
            / f"{self.source_info.spec.stem}_frame{self.current.index}.png"
        )
        path, _ = QFileDialog.getSaveFileName(self, "Save snapshot", default, "PNG (*.png)")
        if not path:
            return
        try:
            self.snapshot(path)
        except OSError as error:  # its file name would be the temporary file's
            self.show_error(f"cannot save the snapshot to {path} ({describe(error)})")
        except ValueError as error:
            self.show_error(f"cannot save the snapshot: {error}")
        else:
            self.show_message(f"snapshot saved to {path}", "info")

    # -- export ---------------------------------------------------------------------------------
    def export_dialog(self) -> None:
        info = self.source_info
        if not self._exportable():
            self.show_error(f"export works on video files: {self._export_advice()}")
            return
        if self.export_job is not None:
            self.show_error("an export is running: wait for it or cancel it")
            return
        start, end = self.selection
        selection = None
        if start is not None or end is not None:
            selection = (start or 0.0, end if end is not None else info.duration or 0.0)
        dialog = ExportDialog(
            info.spec.path,
            info.duration or 0.0,
            selection,
            self.settings.value("export/layout", "3up"),
            self.settings.flag("export/labels", True),
            self,
            crf=self.settings.value("export/crf", DEFAULT_CRF),
            video_stream=info.spec.video_stream,
            stream_count=len(info.stream_choices),
        )
        accepted = dialog.exec() == QDialog.DialogCode.Accepted
        request = dialog.request(self.controls.settings()) if accepted else None
        dispose_dialog(dialog)
        if request is not None:
            self.settings.set_value("export/layout", request.layout)
            self.settings.set_value("export/labels", request.labels)
            self.settings.set_value("export/crf", request.crf)
            self.start_export(request)

    def start_export(self, request: ExportRequest) -> ExportJob | None:
        """Start `request`, or say why not (its output is being recorded) and return None."""
        if self.export_job is not None:
            raise RuntimeError("an export is already running")
        job = ExportJob(request, self)
        job.worker.progress.connect(self.export_progress.set_progress)
        job.done.connect(self._export_done)
        problem = job.start()
        if problem:
            job.deleteLater()  # its thread never started: no signal will come
            self.show_error(problem)
            return None
        self.export_job = job
        self.export_progress.begin(request.output)
        return job

    def cancel_export(self) -> None:
        if self.export_job is not None:
            self.export_job.cancel()
            self.export_progress.cancel.setEnabled(False)

    def _export_done(self, outcome: str, message: str) -> None:
        self.export_progress.end()
        job, self.export_job = self.export_job, None
        if job is not None:
            job.deleteLater()  # its thread has finished: the job, worker and thread can go
        if outcome == "failed":
            self.show_error(message)
        else:
            self.show_message(message, job.level if job is not None else "info")

    # -- recording ------------------------------------------------------------------------------
    def toggle_recording(self) -> None:
        if self.workers.recorder.recording:
            self.stop_recording()
            return
        self.record_action.setChecked(False)  # checked once the recording has started
        if self.source_info is None:
            self.show_error("nothing to record yet: open a capture device, a video or the demo")
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        default = Path(self.settings.value("paths/last_dir", "")) / f"desmoke_{stamp}.mp4"
        path, _ = QFileDialog.getSaveFileName(self, "Record to", str(default), "MP4 (*.mp4)")
        if path:
            self.start_recording(with_mp4_suffix(path))

    def start_recording(self, path: str | Path) -> None:
        """Record the panes as shown, laid out as the last export, until stop_recording()."""
        info = self.source_info
        self.workers.recorder.request_start(
            RecordRequest(
                str(path),
                info.source_id,
                (info.width, info.height),
                info.fps,
                self.settings.value("export/layout", "3up"),
                self.settings.flag("export/labels", True),
                info.spec.path or None,
                shown=self.current,
            )
        )

    def stop_recording(self) -> None:
        """Finish the running recording, if any (queued after a start still on its way).
        Finishing the file takes a moment (seconds for a long one): the label says so
        meanwhile rather than still reading REC."""
        if self.workers.recorder.recording:
            self._recording_stopping = True
            self.record_label.setText("● saving the recording…")
            self.record_label.setToolTip("Recording stopped; its file is being finished")
        self.workers.recorder.request_stop()

    def _source_broke(self) -> None:
        """Keep what was recorded before the loss; its report keeps the loss in view. The
        panes keep the last frame: marked STOPPED, not live."""
        self._capture_lost = True
        self._show_live_state()
        if self.workers.recorder.recording:
            self._recording_ended_by = self.message_bar.text()
        self.stop_recording()

    def _recording_started(self, path: str) -> None:
        self._recording_ended_by = ""
        self._recording_stopping = False
        self.record_action.setChecked(True)
        stop = key_hint(self.record_action)
        self.record_label.setText("● REC")
        self.record_label.setToolTip(f"Recording the view ({stop} stops)")
        self.record_label.show()
        self.show_message(f"recording to {path}: {stop} stops", "info")

    def _recording_finished(self, report: RecordingReport) -> None:
        self._recording_ended()
        dropped = f"; {report.dropped} frames dropped (encoder busy)" if report.dropped else ""
        frames = f"{report.frames} frame{'s' if report.frames != 1 else ''}"
        text = f"recorded {frames} ({report.seconds:.0f} s) to {report.output.name}{dropped}"
        ended_by, self._recording_ended_by = self._recording_ended_by, ""
        if ended_by:
            # The error that ended it (a device unplugged) stays in view; any other error
            # shown meanwhile (an export refused, say) has nothing to do with it.
            self.show_error(f"{ended_by}; {text}")
        else:
            self.show_message(text, "info")

    def _recording_failed(self, message: str) -> None:
        self._recording_ended()
        self.show_error(message)

    def _recording_ended(self) -> None:
        self._recording_stopping = False
        self.record_action.setChecked(False)
        self.record_label.hide()

    # -- shutdown -------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Cancel the export (it leaves no file), finish a recording (it is kept), stop the
        worker threads and save the view; safe to call twice."""
        if self._shut_down:
            return
        self._shut_down = True
        export = self.export_job
        if export is not None:
            export.cancel()  # it winds down while the workers stop
        if self._full_screen is not None:
            self._full_screen.close()
        if self._to_remember is not None:  # asked just before quitting, not yet configured:
            # the numbers always run; a model or backend is kept only once it has run.
            unconfirmed = ("model", "backend")
            pending = {k: v for k, v in self._to_remember.items() if k not in unconfirmed}
            self.settings.set_processing(pending)
        self.settings.set_value("window/geometry", self.saveGeometry())
        self.settings.set_value("window/state", self.saveState())
        self.settings.sync()
        self.workers.stop()
        if export is not None and not export.wait():
            log.warning("the export did not stop in time")


def stream_label(number: int, choice: StreamChoice) -> str:
    """A video stream as View > Video stream lists it: "Stream 1 (1920x1080, 25 fps)",
    numbered from 1 as the notice about them numbers them."""
    return f"Stream {number + 1} ({choice.width}x{choice.height}, {format_fps(choice.fps)} fps)"
