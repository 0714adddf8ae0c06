"""The pipeline, composed in one place: frame -> preprocess -> network -> restore -> result.

`Desmoker` is the public entry point (its signature is stable: the app, the CLI, the
benchmarks and the evaluation rely on it). Every method works at a working resolution
(short side ~256) and restores at the frame's own resolution:
- `fast`: the network predicts the smoke layer (alpha, colour); engine.restore inverts it.
- `dcp`: the classical dark-channel prior estimates the same smoke layer; same restore.
- `paper`: the pix2pix U-Net predicts the clear image at working resolution; its change to
  the image is upsampled and added to the full-resolution frame (detail stays native).

Whole videos are engine.export's (export_video, ExportReport, ExportCancelled); they are
importable from here too, as they always were.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.arguments import number, require, whole_number
from engine.backends import BACKEND_NAMES, Backend, BackendUnavailable, select_backend
from engine.backends.base import FrameUnsupported
from engine.dark_channel import PATCH_RANGE, REFERENCE_PATCH, dark_channel, default_patch_size
from engine.export import ExportCancelled, ExportReport, export_video, plural  # noqa: F401 - API
from engine.models import (
    MAX_WORKING_SHORT_SIDE,
    MIN_WORKING_SHORT_SIDE,
    MODEL_NAMES,
    MODELS,
    NETWORK_MODELS,
    WeightsError,
    default_weights,
    load_network,
    read_config,
    working_interpolation,
    working_shape,
)
from engine.models.dcp import estimate_smoke_layer
from engine.models.weights import shipped_weights  # noqa: F401 - engine.pipeline's before
from engine.restore import DEFAULT_T_MIN, Restorer, SmokeLayer, to_gray

log = logging.getLogger(__name__)

#: Frame sizes whose working shapes a Desmoker remembers: a video has one or two (a size
#: change midway), while a caller feeding crops of every size would otherwise grow the
#: cache without bound.
MAX_REMEMBERED_SHAPES = 64

#: The GPU frame path's timings that are copies (host <-> pinned memory <-> device); their
#: sum is reported as the stage "copies", beside "gpu" (all the device work).
DEVICE_COPY_STAGES = ("host_in", "upload", "download", "host_out")


@dataclass
class DesmokeResult:
    """One frame's three images (full resolution) and what it cost."""

    original: np.ndarray  # uint8 HxWx3 (the input, not copied)
    dark_channel: np.ndarray  # uint8 HxW
    desmoked: np.ndarray  # uint8 HxWx3
    smoke_level: float  # mean predicted opacity (mean dark channel for `paper`), 0..1
    timings: dict[str, float] = field(default_factory=dict)  # stage -> ms


def as_rgb_uint8(frame: np.ndarray) -> np.ndarray:
    """Accept HxWx3 RGB, HxW or HxWx1 grey, HxWx4 RGBA (uint8); anything else is an error."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError(_not_uint8_message(frame))
    # The shape is checked as given, before any conversion (OpenCV asserts on an empty one).
    if not _is_image_shape(frame.shape):
        raise ValueError(
            f"expected an HxWx3 RGB, HxW grey or HxWx4 RGBA frame, got shape {frame.shape}"
        )
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(frame[:, :, :3])  # RGBA's alpha dropped


def _is_image_shape(shape: tuple[int, ...]) -> bool:
    """HxW, or HxWxC with C 1, 3 or 4 channels; H and W at least 1."""
    if len(shape) not in (2, 3) or min(shape[:2]) < 1:
        return False
    return len(shape) == 2 or shape[2] in (1, 3, 4)


def _not_uint8_message(frame: object) -> str:
    """What was given instead of uint8 and, for floats and 16-bit integers, how to convert."""
    if isinstance(frame, np.generic):  # np.uint8(3): a dtype of its own, but no image
        return f"expected a uint8 image array, got a single {frame.dtype} number (no HxW shape)"
    if not isinstance(frame, np.ndarray):
        return f"expected a uint8 image array, got {type(frame).__name__}"
    message = f"expected a uint8 image array, got {frame.dtype}"
    if frame.dtype.kind == "f":
        return (
            message
            + ": for values in [0, 1] pass (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)"
        )
    if frame.dtype == np.uint16:
        return message + (
            ": pass (frame >> 8).astype(np.uint8) for 16-bit values, "
            "(frame >> 2).astype(np.uint8) for 10-bit ones"
        )
    return message


# -- Desmoker's own argument checks (the general ones: engine.arguments) ---------------
def _check_backend_name(backend: object) -> None:
    """Every model, dcp too (which runs no network), refuses a name that is no backend."""
    if not isinstance(backend, str) or backend not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKEND_NAMES)})")


def _resolve_model(model: str | Path, weights: str | Path | None) -> tuple[str, Path | None]:
    """(model name, weights file) from Desmoker's `model` and `weights` arguments."""
    if not isinstance(model, str | Path):
        names = ", ".join(repr(name) for name in MODEL_NAMES[:-1])
        raise TypeError(
            f"model must be {names}, {MODEL_NAMES[-1]!r} or a path to a .safetensors file, "
            f"got {model!r}"
        )
    if weights is not None and (not isinstance(weights, str | Path) or not str(weights)):
        raise ValueError(f"weights must be a path to a .safetensors file or None, got {weights!r}")
    if isinstance(model, Path) or Path(model).suffix:  # a weights file names its own model
        if weights is not None:
            raise ValueError(
                f"model {model} is already a weights file: pass weights= only with "
                f"model {' or '.join(NETWORK_MODELS)}"
            )
        return read_config(model)["model"], Path(model)  # a network model: checked there
    if model not in MODEL_NAMES:
        raise ValueError(_unknown_model_message(model))
    if model not in NETWORK_MODELS:
        if weights is not None:
            raise ValueError(f"{model} takes no weights, got weights={weights!r}")
        return model, None
    return model, Path(weights if weights is not None else default_weights(model))


def _unknown_model_message(model: str) -> str:
    """Why `model`, a string with no suffix, names nothing Desmoker runs. One with a folder
    in it was meant as a weights file: only its suffix tells a file from a model's name."""
    known = ", ".join(MODEL_NAMES)
    if Path(model).name != model:
        return (
            f"model '{model}' is a path with no suffix: give a weights file with its "
            f".safetensors suffix, or a model name ({known})"
        )
    return f"unknown model '{model}' (known: {known})"


class Desmoker:
    """Frame in -> original, dark channel, desmoked (+ timings) out.

    Frames are RGB, as PyAV and engine.video give them; cv2.imread and cv2.VideoCapture give
    BGR: convert with cv2.cvtColor(image, cv2.COLOR_BGR2RGB) first (`fast`, trained on RGB,
    removes less smoke from BGR frames, silently).

    model: "fast", "paper", "dcp", or a path (str or Path) to a .safetensors weights file.
    backend: "auto" or a backend name (engine.backends.BACKEND_NAMES); dcp runs no network
        and uses none, but an unknown name is an error for every model.
    weights: weights for "fast"/"paper" (default: the shipped ones in assets/; a
        NoShippedWeights, a WeightsError, where none are shipped: no method is ever swapped
        for another).
    working_short_side: the working resolution's short side, 16 to MAX_WORKING_SHORT_SIDE
        (2160) px (None: the weights' own, else 256).
    patch_size: dark-channel patch at a 256 px short side, odd, 3 to 61
        (engine.dark_channel.PATCH_RANGE; None: 15, He et al.); scaled per image.
    strength: 0 to 1; 0 leaves the frame untouched, 1 removes the estimated smoke fully.
    t_min: above 0 and below 1; the least transmission 1 - alpha the inversion divides by
        (fast and dcp; paper predicts the clear image itself and has none).
    strength, t_min, patch_size (also named reference_patch) and working_short_side may be changed
    between frames; they are checked then too (ValueError or TypeError naming the option).

    One Desmoker runs one frame at a time: process() takes a lock, since its buffers are
    reused from frame to frame, so threads sharing one wait for each other. For frames in
    parallel, give each thread its own Desmoker.
    """

    def __init__(
        self,
        model: str | Path = "fast",
        backend: str = "auto",
        *,
        weights: str | Path | None = None,
        working_short_side: int | None = None,
        patch_size: int | None = None,
        strength: float = 1.0,
        t_min: float = DEFAULT_T_MIN,
    ) -> None:
        self.notice = ""
        self._settings_notice = ""  # the notice of settings the GPU frame path cannot run
        self.config: dict[str, Any] = {}
        self.backend: Backend | None = None
        self._failed_backends: list[str] = []
        self._device_frame_path = False
        self._lock = threading.Lock()
        self._shapes: dict[tuple[int, int], tuple[int, int]] = {}
        self._restorer = Restorer()
        self.backend_reason = "none: the classical method needs no network"
        _check_backend_name(backend)
        self.model_name, self.weights_path = _resolve_model(model, weights)
        self.reference_patch = REFERENCE_PATCH if patch_size is None else patch_size
        self.strength = strength
        self.t_min = t_min
        if self.model_name in NETWORK_MODELS:
            self._load_network(backend)
        # The network's own (fast's depends on its architecture: unshuffle); 1 for dcp.
        self._stride = self._network.stride if self.model_name in NETWORK_MODELS else 1
        if working_short_side is None:  # the weights' own, else the model's default
            working_short_side = (
                self.config.get("working_short_side") or MODELS[self.model_name].working_short_side
            )
        self.working_short_side = working_short_side

    # -- settings, checked whenever they are set -----------------------------------------
    @property
    def strength(self) -> float:
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        strength = number("strength", value)
        require(0.0 <= strength <= 1.0, "strength", "from 0 to 1", value)  # NaN fails too
        with self._lock:  # not in the middle of another thread's frame
            self._strength = strength

    @property
    def t_min(self) -> float:
        return self._t_min

    @t_min.setter
    def t_min(self, value: float) -> None:
        t_min = number("t_min", value)
        # 0 divides by zero under dense smoke; 1 or more subtracts the smoke undivided.
        require(0.0 < t_min < 1.0, "t_min", "above 0 and below 1", value)
        with self._lock:
            self._t_min = t_min

    @property
    def reference_patch(self) -> int:
        return self._reference_patch

    @reference_patch.setter
    def reference_patch(self, value: int) -> None:
        value = whole_number("patch_size", value)
        low, high = PATCH_RANGE
        allowed = f"a positive odd number from {low} to {high}"
        require(low <= value <= high and value % 2 == 1, "patch_size", allowed, value)
        with self._lock:  # a frame reads it twice (network input, mask): one value a frame
            self._reference_patch = value

    @property
    def patch_size(self) -> int:
        """The constructor's name for reference_patch: the same setting (setting either
        sets both; an assignment to a name of no property would be silently unused)."""
        return self.reference_patch

    @patch_size.setter
    def patch_size(self, value: int) -> None:
        self.reference_patch = value

    @property
    def working_short_side(self) -> int:
        return self._working_short_side

    @working_short_side.setter
    def working_short_side(self, value: int) -> None:
        value = whole_number("working_short_side", value)
        low, high = MIN_WORKING_SHORT_SIDE, MAX_WORKING_SHORT_SIDE
        require(value >= low, "working_short_side", f"at least {low} px", value)
        require(value <= high, "working_short_side", f"at most {high} px (4K's short side)", value)
        with self._lock:
            self._working_short_side = value
            self._shapes.clear()  # the working shapes of the frame sizes seen so far change

    # -- construction ------------------------------------------------------------------
    def _load_network(self, backend: str) -> None:
        self._network, self.config = load_network(self.weights_path)
        if self.config["model"] != self.model_name:
            raise WeightsError(
                f"{self.weights_path}: holds a '{self.config['model']}' model, "
                f"not '{self.model_name}'"
            )
        self._use_backend(backend)

    def _use_backend(self, backend: str) -> None:
        """Load the network on `backend`; with auto, on the first that loads, skipping
        those that failed before (self._failed_backends)."""
        while True:
            instance, reason = select_backend(backend, exclude=tuple(self._failed_backends))
            try:
                instance.load(self._network, self.config)
                break
            except BackendUnavailable as exc:
                if backend != "auto":
                    raise
                self._failed_backends.append(instance.name)
                log.warning("%s failed to load (%s); trying the next backend", instance.name, exc)
        self.backend, self.backend_reason = instance, reason
        # Asked on the next frame: GPU backends run the whole frame (fused pre/post kernels).
        self._device_frame_path = True

    @property
    def backend_name(self) -> str:
        return self.backend.name if self.backend else "none"

    def describe(self, weights_label: str | None = None) -> str:
        """What runs, in one line. weights_label names the weights in place of their path
        (a recorded result names them by content, not by where they lay when it ran)."""
        weights = weights_label or self.weights_path
        source = f" from {weights}" if self.weights_path else ""
        backend = self.backend.describe() if self.backend else "no network"
        return (
            f"model {self.model_name}{source}; backend {backend}; working short side "
            f"{self.working_short_side} px; {self.backend_reason}"
        )

    # -- per frame ---------------------------------------------------------------------
    def working_shape_for(self, height: int, width: int) -> tuple[int, int]:
        shape = self._shapes.get((height, width))
        if shape is None:
            shape = working_shape(height, width, self.working_short_side, self._stride)
            if len(self._shapes) >= MAX_REMEMBERED_SHAPES:
                self._shapes.clear()  # cheap to recompute: a bound, not an eviction policy
            self._shapes[(height, width)] = shape
        return shape

    def process(self, frame: np.ndarray) -> DesmokeResult:
        """Desmoke one RGB uint8 frame of any size; the outputs have the frame's size.
        Calls from several threads run one after another (see the class's docstring)."""
        frame = as_rgb_uint8(frame)
        with self._lock:  # the restorer's buffers and the backend serve one frame at a time
            return self._process(frame)

    def _process(self, frame: np.ndarray) -> DesmokeResult:
        height, width = frame.shape[:2]
        timings: dict[str, float] = {}
        start = time.perf_counter()

        work_h, work_w = self.working_shape_for(height, width)
        if self._device_frame_path:
            result = self._process_on_device(frame, (work_h, work_w))
            if result is not None:
                return result
        interpolation = working_interpolation(height, width, work_h, work_w)
        small = cv2.resize(frame, (work_w, work_h), interpolation=interpolation)
        small_f = small.astype(np.float32) * np.float32(1 / 255)
        small_patch = default_patch_size(work_h, work_w, self.reference_patch)
        _lap(timings, "preprocess", start)

        if self.model_name == "paper":
            desmoked, level = self._run_paper(frame, small_f, small_patch, timings)
        else:
            layer = self._smoke_layer(small_f, small_patch, timings)
            mark = time.perf_counter()
            desmoked = self._restorer.restore(
                frame, layer, to_gray(small_f), strength=self.strength, t_min=self.t_min
            )
            level = layer.level
            _lap(timings, "restore", mark)

        mark = time.perf_counter()
        mask = dark_channel(frame, default_patch_size(height, width, self.reference_patch))
        _lap(timings, "mask", mark)
        timings["total"] = (time.perf_counter() - start) * 1000
        return DesmokeResult(frame, mask, desmoked, level, timings)

    def _process_on_device(
        self, frame: np.ndarray, work_shape: tuple[int, int]
    ) -> DesmokeResult | None:
        """The whole frame through the backend's fused kernels; None (and the CPU pre/post
        path from then on) where the backend has none, or they cannot run (NVRTC missing, out
        of GPU memory: the notice says so); None for this frame alone where its sizes or
        settings are past the kernels' limits (a large patch)."""
        height, width = frame.shape[:2]
        try:
            out = self.backend.process_frame(
                frame,
                work_shape=work_shape,
                small_patch=default_patch_size(*work_shape, self.reference_patch),
                mask_patch=default_patch_size(height, width, self.reference_patch),
                strength=self.strength,
                t_min=self.t_min,
            )
        except FrameUnsupported as exc:  # these settings only: others go back to the GPU
            self.notice = self._settings_notice = f"pre/post-processing on the CPU ({exc})"
            return None
        except BackendUnavailable as exc:
            self._device_frame_path = False
            self.notice = f"GPU frame path off ({exc}); pre/post-processing on the CPU"
            log.warning(self.notice)
            return None
        if out is None:  # a backend without a frame path: never asked again
            self._device_frame_path = False
            return None
        if self.notice and self.notice == self._settings_notice:  # back within the limits
            self.notice = ""
        timings = out.timings
        timings["copies"] = sum(timings.get(k, 0.0) for k in DEVICE_COPY_STAGES)
        return DesmokeResult(frame, out.dark_channel, out.desmoked, out.smoke_level, timings)

    def _run_network(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """The network on the current backend; if that backend stops working mid-run
        (out of GPU memory, an input the TensorRT engine was not built for, a lost
        device), the next one that loads takes over and the notice says so."""
        try:
            return self.backend.run(x)
        except BackendUnavailable as exc:
            failed = self.backend.name
            self._failed_backends.append(failed)
            self._use_backend("auto")
            self.notice = f"{failed} stopped working ({exc}); now running on {self.backend.name}"
            log.warning(self.notice)
        return self.backend.run(x)

    def _network_input(self, small_f: np.ndarray, patch: int) -> np.ndarray:
        """1x4xHxW float32: R, G, B planes and the dark channel, written once (no
        concatenate-then-transpose copies on the per-frame path)."""
        height, width = small_f.shape[:2]
        x = np.empty((1, 4, height, width), np.float32)
        x[0, :3] = small_f.transpose(2, 0, 1)
        x[0, 3] = dark_channel(small_f, patch)
        return x

    def _network_outputs(
        self, small_f: np.ndarray, patch: int, timings: dict[str, float]
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """(network input, the network's outputs on it); the input's making is timed as
        "preprocess", the run as "network"."""
        mark = time.perf_counter()
        x = self._network_input(small_f, patch)
        mark = _lap(timings, "preprocess", mark)
        outputs = self._run_network(x)
        _lap(timings, "network", mark)
        return x, outputs

    def _smoke_layer(self, small_f: np.ndarray, patch: int, timings: dict) -> SmokeLayer:
        if self.model_name == "dcp":  # the classical estimate stands in for the network
            mark = time.perf_counter()
            layer = estimate_smoke_layer(small_f, patch)
            _lap(timings, "network", mark)
            return layer
        _, (alpha, colour) = self._network_outputs(small_f, patch, timings)
        return SmokeLayer(
            alpha=alpha[0, 0], colour=np.ascontiguousarray(colour[0].transpose(1, 2, 0))
        )

    def _run_paper(
        self, frame: np.ndarray, small_f: np.ndarray, patch: int, timings: dict
    ) -> tuple[np.ndarray, float]:
        x, (restored,) = self._network_outputs(small_f, patch, timings)
        mark = time.perf_counter()
        level = float(x[0, 3].mean())  # the mean dark channel: paper predicts no smoke layer
        # The network's change to the image is low-frequency: upsample it, keep native detail.
        change = (restored[0].transpose(1, 2, 0) - small_f) * np.float32(255 * self.strength)
        height, width = frame.shape[:2]
        change = cv2.resize(change, (width, height), interpolation=cv2.INTER_LINEAR)
        change += frame
        desmoked = np.clip(change, 0, 255, out=change).astype(np.uint8)
        _lap(timings, "restore", mark)
        return desmoked, level


def _lap(timings: dict[str, float], stage: str, since: float) -> float:
    """Record milliseconds since `since` under `stage`; returns now."""
    now = time.perf_counter()
    timings[stage] = timings.get(stage, 0.0) + (now - since) * 1000
    return now
