"""The Processor: owns the Desmoker on its own thread; processes only the newest frame the
Reader hands it, and rebuilds the Desmoker on a settings change (falling back, where the
settings asked for cannot run, down FALLBACKS).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from desmoke_app.gui.mailbox import Latest
from desmoke_app.gui.messages import one_line
from desmoke_app.gui.reader import FramePacket

if TYPE_CHECKING:  # the engine's pipeline loads torch: imported where a Desmoker is made
    from engine.pipeline import Desmoker

log = logging.getLogger(__name__)

#: What runs when the first settings cannot (a remembered backend this machine lacks, a
#: weights file since deleted), tried in turn: the same model on any backend, the shipped
#: model, the classical prior (which needs nothing).
FALLBACKS = (
    {"backend": "auto"},
    {"model": "fast", "backend": "auto", "working_short_side": None, "patch_size": None},
    {"model": "dcp", "backend": "auto", "working_short_side": None, "patch_size": None},
)


@dataclass
class ProcessedFrame:
    source_id: int
    index: int
    time: float
    original: np.ndarray
    dark_channel: np.ndarray
    desmoked: np.ndarray
    smoke_level: float
    timings: dict[str, float] = field(default_factory=dict)
    read_at: float | None = None  # as its FramePacket's


#: Settings a running Desmoker takes through its setters (no new Desmoker): the app's
#: setting -> the Desmoker's attribute.
RETUNABLE = {
    "working_short_side": "working_short_side",
    "patch_size": "reference_patch",
    "strength": "strength",
}


@dataclass
class ProcessorState:
    """What the processor runs now (after a configure), and what that configure asked for:
    they differ where the asked settings could not run (a fallback, or the old ones kept)."""

    settings: dict[str, Any]
    model_name: str
    backend_name: str
    device: str
    description: str
    notice: str
    config: dict[str, Any]
    asked: dict[str, Any]

    @property
    def runs_what_was_asked(self) -> bool:
        return self.settings == self.asked


def state_of(
    desmoker: Desmoker, settings: dict[str, Any], asked: dict[str, Any] | None = None
) -> ProcessorState:
    """What a Desmoker built from `settings` runs now, for the GUI; `asked`: the settings
    requested, where `settings` is a fallback from them."""
    backend = desmoker.backend
    return ProcessorState(
        settings=dict(settings),
        model_name=desmoker.model_name,
        backend_name=desmoker.backend_name,
        device=getattr(backend, "device", "cpu") if backend else "cpu",
        description=desmoker.describe(),
        notice=desmoker.notice,
        config=dict(desmoker.config),
        asked=dict(settings if asked is None else asked),
    )


# -- processor -----------------------------------------------------------------------------
class Processor(QObject):
    """Owns the Desmoker: processes only the newest frame; rebuilds on a settings change."""

    result_available = Signal()
    configured = Signal(object)  # ProcessorState
    failed = Signal(str)

    _wake = Signal()
    _configure_wanted = Signal(object)

    def __init__(self, record=None) -> None:
        """record(ProcessedFrame): called on the processor thread for every processed
        frame (Recorder.submit), besides the outbox the window paints from."""
        super().__init__()
        self.inbox = Latest()
        self.outbox = Latest()
        self._record = record
        self._desmoker = None
        self._state: ProcessorState | None = None
        self._last: FramePacket | None = None
        self._wake.connect(self._drain)
        self._configure_wanted.connect(self._configure)

    @property
    def dropped(self) -> int:
        """Frames replaced before being processed or painted since the last reset."""
        return self.inbox.dropped + self.outbox.dropped

    def reset_counters(self) -> None:
        self.inbox.dropped = 0
        self.outbox.dropped = 0

    def submit(self, packet: FramePacket) -> None:
        """Called from the reader thread: the newest frame wins."""
        if self.inbox.put(packet):
            self._wake.emit()

    def request_configure(self, settings: dict[str, Any]) -> None:
        self._configure_wanted.emit(dict(settings))

    @Slot()
    def _drain(self) -> None:
        packet = self.inbox.take()
        if packet is not None:
            self._process(packet)

    def _process(self, packet: FramePacket) -> None:
        if self._desmoker is None:
            self._last = packet  # processed as soon as a configuration arrives
            return
        try:
            result = self._desmoker.process(packet.rgb)
        except Exception as error:  # noqa: BLE001 - one bad frame must not stop playback
            self.failed.emit(one_line(error, f"processing frame {packet.index} failed"))
            return
        self._last = packet
        self._report_a_new_notice()
        processed = ProcessedFrame(
            packet.source_id,
            packet.index,
            packet.time,
            result.original,
            result.dark_channel,
            result.desmoked,
            float(result.smoke_level),
            dict(result.timings),
            packet.read_at,
        )
        if self._record is not None:
            self._record(processed)
        if self.outbox.put(processed):
            self.result_available.emit()

    def _report_a_new_notice(self) -> None:
        """A fallback decided mid-run (the GPU frame path out of memory at 4K, a backend
        that stops working) is shown like one decided at configure time."""
        if self._state is not None and self._desmoker.notice != self._state.notice:
            self._state = state_of(self._desmoker, self._state.settings, self._state.asked)
            self.configured.emit(self._state)

    @Slot(object)
    def _configure(self, settings: dict[str, Any]) -> None:
        if self._retuned(settings):
            self.configured.emit(self._state)
            self._show_the_last_frame_again()
            return
        # The state goes out before the error, so that whoever sees the error also sees
        # the controls set back to what runs.
        problem = ""
        runs = settings
        try:
            desmoker = make_desmoker(settings)
        except Exception as error:  # noqa: BLE001 - keep the old one running
            problem = one_line(error, "cannot use these settings")
            if self._desmoker is not None:
                self.configured.emit(replace(self._state, asked=dict(settings)))
                self.failed.emit(f"{problem}; still {_running(self._state)}")
                return
            desmoker, runs = _first_that_runs(settings)  # nothing runs yet
        self._desmoker = desmoker
        self._state = state_of(desmoker, runs, asked=settings)
        if problem:
            problem += f"; {_running(self._state)}"
        self.configured.emit(self._state)
        if problem:
            self.failed.emit(problem)
        self._show_the_last_frame_again()

    def _show_the_last_frame_again(self) -> None:
        if self._last is not None:  # the current frame with the new settings, at once
            self._process(replace(self._last, read_at=None))

    def _retuned(self, settings: dict[str, Any]) -> bool:
        """Settings that differ from what runs only in RETUNABLE values, set on the running
        Desmoker: a new one reloads the weights and the backend (0.1-0.5 s measured on 2
        cores, the video stalled meanwhile). False where a new one must be made: another
        model or backend, a fallback running, or a value left to the default."""
        state = self._state
        if self._desmoker is None or state is None or not state.runs_what_was_asked:
            return False
        keys = settings.keys() | state.settings.keys()
        changed = {k for k in keys if settings.get(k) != state.settings.get(k)}
        if not changed or not changed <= RETUNABLE.keys():
            return False
        if any(settings.get(key) in (None, 0) for key in changed - {"strength"}):
            return False  # "the weights' own" / "the default": a new Desmoker works it out
        try:
            for key in sorted(changed):
                setattr(self._desmoker, RETUNABLE[key], settings[key])
        except (TypeError, ValueError):
            return False  # a new Desmoker says what is wrong with it
        self._state = state_of(self._desmoker, settings, asked=settings)
        return True


def _running(state: ProcessorState) -> str:
    """What runs, as a refusal ends (the controls show it too): "using fast on torch"."""
    return f"using {state.model_name} on {state.backend_name}"


def _first_that_runs(settings: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The Desmoker of the first of FALLBACKS applied to `settings` that can run, and those
    settings (the last, dcp, raises if even it cannot)."""
    for changes in FALLBACKS[:-1]:
        candidate = {**settings, **changes}
        if candidate == settings:  # what just failed (a backend already auto): not again
            continue
        try:
            return make_desmoker(candidate), candidate
        except Exception:  # noqa: BLE001 - the next one down
            log.info("fallback %s cannot run either", changes)
    candidate = {**settings, **FALLBACKS[-1]}
    return make_desmoker(candidate), candidate


def make_desmoker(settings: dict[str, Any]) -> Desmoker:
    """A Desmoker from the app's settings dict (model, backend, working_short_side,
    patch_size, strength)."""
    from engine.models import NoShippedWeights
    from engine.pipeline import Desmoker

    try:
        return Desmoker(
            settings.get("model", "dcp"),
            settings.get("backend", "auto"),
            working_short_side=settings.get("working_short_side") or None,
            patch_size=settings.get("patch_size") or None,
            strength=float(settings.get("strength", 1.0)),
        )
    except NoShippedWeights as missing:  # its advice names an API argument: the menu's
        from desmoke_app.gui.controls import no_weights_advice

        raise ValueError(no_weights_advice(missing.model)) from missing
