"""Processing controls (model, backend, working resolution, patch, strength) and the
playback bar (play/pause, step, seek slider with time and frame, speed, loop).

The keyboard: the window's shortcuts (Space, the arrows, Home/End, I/O, L; main_window.py)
work whatever control has the focus; a control keeps only keys that are no shortcut (a
combo box's Up/Down). A spin box is the one control typed into (NumberBox): it keeps the
keys that edit a number while it is being typed into, and gives the keyboard back once the
edit is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QStyle,
    QToolButton,
    QWidget,
)

from desmoke_app.commands.common import PATCH_RANGE, WORKING_SIZE_RANGE, visible
from desmoke_app.gui.messages import literal
from engine.backends import BACKENDS, backend_status
from engine.models import MODEL_NAMES, runnable_models

MODEL_TIPS = {
    "fast": "Smoke-layer network at a low working resolution, restored at full resolution",
    "paper": "pix2pix U-Net-256 with the dark channel as 4th input (Salazar-Colores 2020)",
    "dcp": "Classical dark-channel prior (He et al.); needs no weights",
}
WEIGHTS_ITEM = "Weights file…"
SPEEDS = (0.25, 0.5, 1.0, 1.5, 2.0, 4.0)
#: Settings changes are applied after this pause, so dragging a spin box rebuilds once.
APPLY_DELAY_MS = 250


def format_fps(fps: float) -> str:
    """A frame rate as people write it: 25, 29.97, 1000 (not 1e+03), at most 2 decimals."""
    return f"{fps:.2f}".rstrip("0").rstrip(".")


def format_time(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = max(0.0, seconds)
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:05.2f}"


class NumberBox(QSpinBox):
    """A spin box that holds the keyboard only while a number is typed into it, so that the
    window's shortcuts reach the player again once the edit is done.

    While it is typed into, the keys that edit a number stay in it, as in any text field:
    digits, Backspace/Delete, Left/Right/Home/End (the cursor), Up/Down (a step). A key that
    can be no part of a number (Space, a letter: I, O) is the window's shortcut even then:
    it ends the edit and plays, pauses or marks. Return/Enter ends the edit too, as does a
    step with the mouse (its arrows, or the wheel); the wheel steps it without taking the
    keyboard at all. The edit "ends" by the box letting go of the focus: no widget holds it
    then, and the keys go to the window's shortcuts.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # Click and Tab focus, not the wheel (a QSpinBox's default): scrolling over it
        # steps the value without taking the keyboard from the player.
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        # A typed number counts once it is complete (Return, or the edit ends): typing 1080
        # must not run the working size at 1 and 108 on the way.
        self.setKeyboardTracking(False)
        self.editingFinished.connect(self._edit_done)  # Return / Enter (and focus lost)

    def event(self, event: QEvent) -> bool:
        # The shortcut check comes before the key reaches the box: its line edit claims any
        # printable key there (Space included), which kept Space from the player.
        if event.type() == QEvent.Type.ShortcutOverride and not _edits_a_number(event):
            self._edit_done()
            event.ignore()  # not ours: the window's shortcut runs
            return True
        return super().event(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt name)
        # Only the arrows reach the box itself (the text field takes clicks on the text).
        super().mouseReleaseEvent(event)
        self._edit_done()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt name)
        super().wheelEvent(event)
        self._edit_done()

    def _edit_done(self) -> None:
        if self.hasFocus():
            self.clearFocus()  # emits editingFinished again: the value is taken as typed
        else:  # a step selects the text: shown without the focus, it would look focused
            self.lineEdit().deselect()


def _edits_a_number(event: QKeyEvent) -> bool:
    """Whether a key pressed in a NumberBox is its own: anything but a key that types a
    character no number has (Space, letters), unmodified or with Shift."""
    text = event.text()
    typed = bool(text) and text.isprintable()
    plain = Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.KeypadModifier
    modified = event.modifiers() & ~plain
    return not typed or bool(modified) or text.isdigit() or text in "+-"


def no_weights_advice(name: str) -> str:
    """What to do where no weights ship for model `name`, in the app's own terms."""
    return (
        f"No {name} weights are shipped: train them (desmoke train --config "
        f"training/configs/{name}.toml), then choose them with '{WEIGHTS_ITEM}'"
    )


class ControlPanel(QWidget):
    """Processing settings; emits settings_changed(settings, edited keys) shortly after the
    user edits."""

    settings_changed = Signal(dict, list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        self.model = QComboBox()
        for name in MODEL_NAMES:
            self.model.addItem(name, name)
            self.model.setItemData(
                self.model.count() - 1, self._model_tip(name), Qt.ItemDataRole.ToolTipRole
            )
            if not self._model_runs(name):
                self.model.model().item(self.model.count() - 1).setEnabled(False)
        self.model.addItem(WEIGHTS_ITEM, None)
        self.model.setToolTip("Desmoking method: fast, paper, dcp, or a .safetensors weights file")
        self.backend = QComboBox()
        self.backend.setToolTip("Inference backend; auto picks the fastest that runs here")
        self._fill_backends()
        self.working = NumberBox()
        self.working.setRange(*WORKING_SIZE_RANGE)
        self.working.setSingleStep(16)
        self.working.setSuffix(" px")
        self.working.setToolTip("Working resolution (short side) the smoke is estimated at")
        self.patch = NumberBox()
        self.patch.setRange(*PATCH_RANGE)
        self.patch.setSingleStep(2)
        self.patch.setToolTip(
            "Dark-channel patch size at a 256 px short side (odd; 15 in He et al.)"
        )
        self.strength = QSlider(Qt.Orientation.Horizontal)
        self.strength.setRange(0, 100)
        self.strength.setToolTip("0%: frame untouched; 100%: the estimated smoke fully removed")
        self.strength_label = QLabel()
        strength_row = QHBoxLayout()
        strength_row.addWidget(self.strength)
        strength_row.addWidget(self.strength_label)
        form.addRow("Model", self.model)
        form.addRow("Backend", self.backend)
        form.addRow("Working size", self.working)
        form.addRow("Patch", self.patch)
        form.addRow("Strength", strength_row)

        self._previous_model = 0
        self._shown: dict[str, Any] = {}  # as last set or sent: an edit is what differs
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(APPLY_DELAY_MS)
        self._timer.timeout.connect(self._emit)
        self.model.activated.connect(self._model_activated)
        self.backend.activated.connect(lambda _i: self._emit())
        self.working.valueChanged.connect(lambda _v: self._timer.start())
        self.patch.valueChanged.connect(self._patch_changed)
        self.strength.valueChanged.connect(self._strength_changed)

    @staticmethod
    def _model_runs(name: str) -> bool:
        """Whether the model name runs as it is: dcp needs no weights; a network, shipped
        ones (without, choosing it could only fail: 'Weights file…' takes trained ones)."""
        return name in runnable_models()

    @classmethod
    def _model_tip(cls, name: str) -> str:
        if cls._model_runs(name):
            return MODEL_TIPS[name]
        return f"{MODEL_TIPS[name]}. {no_weights_advice(name)}"

    def _fill_backends(self) -> None:
        self.backend.addItem("auto", "auto")
        for name in BACKENDS:
            available, reason = backend_status(name)
            self.backend.addItem(name, name)
            index = self.backend.count() - 1
            if not available:
                self.backend.model().item(index).setEnabled(False)
                self.backend.setItemData(index, literal(reason), Qt.ItemDataRole.ToolTipRole)

    # -- reading and writing ------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return {
            "model": self.model.currentData() or "dcp",
            "backend": self.backend.currentData() or "auto",
            "working_short_side": self.working.value(),
            "patch_size": self.patch.value() | 1,
            "strength": self.strength.value() / 100,
        }

    def set_settings(self, settings: dict[str, Any]) -> None:
        """Show `settings` without emitting settings_changed."""
        widgets = (self.model, self.backend, self.working, self.patch, self.strength)
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self._select_model(str(settings.get("model", "fast")))
            index = self.backend.findData(settings.get("backend", "auto"))
            self.backend.setCurrentIndex(max(0, index))
            self.working.setValue(int(settings.get("working_short_side") or 256))
            self.patch.setValue(int(settings.get("patch_size") or 15) | 1)
            self.strength.setValue(round(float(settings.get("strength", 1.0)) * 100))
            self._strength_label()
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self._previous_model = self.model.currentIndex()
        self._shown = self.settings()

    def edit_pending(self) -> bool:
        """True while an edit waits for the pause after which it is sent."""
        return self._timer.isActive()

    def _select_model(self, model: str) -> None:
        index = self.model.findData(model)
        if index < 0:  # a weights file: listed above the "Weights file…" item
            index = self.model.count() - 1
            self.model.insertItem(index, visible(Path(model).name), model)
            self.model.setItemData(index, literal(model), Qt.ItemDataRole.ToolTipRole)
        self.model.setCurrentIndex(index)

    # -- edits --------------------------------------------------------------------------
    def _model_activated(self, index: int) -> None:
        if self.model.itemData(index) is None:  # "Weights file…"
            path, _ = QFileDialog.getOpenFileName(
                self, "Open weights", "", "Weights (*.safetensors);;All files (*)"
            )
            if not path:
                self.model.setCurrentIndex(self._previous_model)
                return
            self.model.blockSignals(True)
            self._select_model(path)
            self.model.blockSignals(False)
        self._previous_model = self.model.currentIndex()
        self._emit()

    def _patch_changed(self, value: int) -> None:
        if value % 2 == 0:  # typed even: the dark channel's patch is centred, so odd
            self.patch.setValue(value + 1)
            return
        self._timer.start()

    def _strength_changed(self, _value: int) -> None:
        self._strength_label()
        self._timer.start()

    def _strength_label(self) -> None:
        self.strength_label.setText(f"{self.strength.value()}%")

    def _emit(self) -> None:
        self._timer.stop()
        settings = self.settings()
        edited = [key for key, value in settings.items() if value != self._shown.get(key)]
        self._shown = settings
        self.settings_changed.emit(settings, edited)


class TransportBar(QWidget):
    """Play/pause, step, seek slider with time and frame number, speed, loop."""

    play_toggled = Signal()
    step_requested = Signal(int)
    seek_requested = Signal(int)
    speed_changed = Signal(float)
    loop_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        style = self.style()
        self._play_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay)
        self._pause_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPause)
        self.back = self._button(
            QStyle.StandardPixmap.SP_MediaSeekBackward, "Previous frame (Left)"
        )
        self.play = self._button(QStyle.StandardPixmap.SP_MediaPlay, "Play / pause (Space)")
        self.forward = self._button(QStyle.StandardPixmap.SP_MediaSeekForward, "Next frame (Right)")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)  # no source yet: no frame to seek to
        self.slider.setToolTip("Seek (Home / End: first / last frame)")
        self.time_label = QLabel("--:-- / --:--")
        self.time_label.setToolTip("Time / duration, frame number / frame count")
        self.speed = QComboBox()
        for speed in SPEEDS:
            self.speed.addItem(f"{speed:g}x", speed)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.setToolTip("Playback speed (files)")
        self.loop = QCheckBox("Loop")
        self.loop.setToolTip("Start again at the end of the file (L)")
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 2, 4, 2)
        for widget in (self.back, self.play, self.forward):
            row.addWidget(widget)
        row.addWidget(self.slider, 1)
        for widget in (self.time_label, self.speed, self.loop):
            row.addWidget(widget)
        self._frame_count = 0
        self._fps = 25.0
        self._duration: float | None = None
        self._position = (0, 0.0)  # the frame shown: index, time
        self._still = ""  # see set_still
        self.play.clicked.connect(self.play_toggled)
        self.back.clicked.connect(lambda: self.step_requested.emit(-1))
        self.forward.clicked.connect(lambda: self.step_requested.emit(1))
        self.slider.valueChanged.connect(self._slider_moved)
        self.speed.currentIndexChanged.connect(
            lambda _i: self.speed_changed.emit(float(self.speed.currentData()))
        )
        self.loop.toggled.connect(self.loop_changed)
        self._enable(opened=False, seekable=False)  # nothing to play, step or seek yet

    def _button(self, icon: QStyle.StandardPixmap, tip: str) -> QToolButton:
        button = QToolButton()
        button.setIcon(self.style().standardIcon(icon))
        button.setToolTip(tip)
        button.setAutoRaise(True)
        return button

    def set_source(
        self, frame_count: int | None, fps: float, duration: float | None, seekable: bool
    ) -> None:
        self._frame_count = frame_count or 0
        self._fps = fps or 25.0
        self._duration = duration
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, self._frame_count - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self._enable(opened=True, seekable=seekable)
        self._still = ""
        self.set_position(0, 0.0)

    def _enable(self, opened: bool, seekable: bool) -> None:
        self.play.setEnabled(opened)
        # A live source has no frame to step to: the view must not freeze on a click.
        for widget in (self.slider, self.back, self.forward):
            widget.setEnabled(seekable)
        # A live source has no speed or end; before any source they are preferences, set
        # for the first file.
        for widget in (self.speed, self.loop):
            widget.setEnabled(seekable or not opened)

    def set_position(self, index: int, time: float) -> None:
        self._position = (index, time)
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        frames = f"{self._frame_count}" if self._frame_count else self._still or "live"
        self.time_label.setText(
            f"{format_time(time)} / {format_time(self._duration)}  ·  frame {index} / {frames}"
        )

    def set_still(self, state: str) -> None:
        """A live source that does not play: the time label says `state` ("PAUSED") where
        it says "live" otherwise; "" while it plays."""
        self._still = state
        self.set_position(*self._position)

    def set_playing(self, playing: bool) -> None:
        self.play.setIcon(self._pause_icon if playing else self._play_icon)

    def _slider_moved(self, value: int) -> None:
        self.seek_requested.emit(value)
