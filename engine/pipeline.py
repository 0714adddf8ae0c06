"""The pipeline, composed in one place: frame -> preprocess -> network -> restore -> result.

`Desmoker` is the public entry point (its signature is stable: the app, the CLI, the
benchmarks and the evaluation rely on it). Every method works at a working resolution
(short side ~256) and restores at the frame's own resolution:
- `fast`: the network predicts the smoke layer (alpha, colour); engine.restore inverts it.
- `dcp`: the classical dark-channel prior estimates the same smoke layer; same restore.
- `paper`: the pix2pix U-Net predicts the clear image at working resolution; its change to
  the image is upsampled and added to the full-resolution frame (detail stays native).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.backends import Backend, BackendUnavailable, select_backend
from engine.dark_channel import REFERENCE_PATCH, dark_channel, default_patch_size
from engine.models import (
    DEFAULT_WORKING_SHORT_SIDE,
    MODEL_NAMES,
    NETWORK_MODELS,
    load_network,
    network_stride,
    working_shape,
)
from engine.models.dcp import estimate_smoke_layer
from engine.restore import DEFAULT_T_MIN, Restorer, SmokeLayer, to_gray

log = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
#: The GPU frame path's timings that are copies (host <-> pinned memory <-> device); their
#: sum is reported as the stage "copies", beside "gpu" (all the device work).
DEVICE_COPY_STAGES = ("host_in", "upload", "download", "host_out")


def shipped_weights(model: str) -> Path | None:
    """The weights shipped in assets/ for a model name, if any."""
    path = ASSETS_DIR / f"{model}.safetensors"
    return path if path.is_file() else None


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
        kind = frame.dtype if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"expected a uint8 image array, got {kind}")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        frame = cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2RGB)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = np.ascontiguousarray(frame[:, :, :3])
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"expected an HxWx3 RGB frame, got shape {frame.shape}")
    return np.ascontiguousarray(frame)


class Desmoker:
    """Frame in -> original, dark channel, desmoked (+ timings) out.

    model: "fast", "paper", "dcp", or a path to a .safetensors weights file.
    backend: "auto" or a backend name (engine.backends.BACKEND_NAMES).
    weights: weights for "fast"/"paper" (default: the shipped ones in assets/).
    patch_size: dark-channel patch at a 256 px short side (15, He et al.); scaled per image.
    strength: 0 leaves the frame untouched, 1 removes the estimated smoke fully.
    """

    def __init__(
        self,
        model: str = "fast",
        backend: str = "auto",
        *,
        weights: str | Path | None = None,
        working_short_side: int | None = None,
        patch_size: int | None = None,
        strength: float = 1.0,
        t_min: float = DEFAULT_T_MIN,
    ) -> None:
        self.notice = ""
        self.config: dict[str, Any] = {}
        self.backend: Backend | None = None
        self._failed_backends: list[str] = []
        self._device_frame_path = False
        self.backend_reason = "none: the classical method needs no network"
        model, weights = self._resolve_weights(model, weights)
        self.model_name = model
        self.weights_path = Path(weights) if weights else None
        self.reference_patch = patch_size or REFERENCE_PATCH
        if self.reference_patch < 1 or self.reference_patch % 2 == 0:
            raise ValueError(f"patch size must be a positive odd number, got {patch_size}")
        self.strength = float(strength)
        self.t_min = float(t_min)
        if model in NETWORK_MODELS:
            self._load_network(backend)
        self.working_short_side = int(
            working_short_side
            or self.config.get("working_short_side")
            or DEFAULT_WORKING_SHORT_SIDE[model]
        )
        if self.working_short_side < 16:
            raise ValueError(f"working resolution too small: {self.working_short_side}")
        self._shapes: dict[tuple[int, int], tuple[int, int]] = {}
        self._restorer = Restorer()

    # -- construction ------------------------------------------------------------------
    def _resolve_weights(
        self, model: str, weights: str | Path | None
    ) -> tuple[str, str | Path | None]:
        if model.endswith(".safetensors") or Path(model).suffix:
            from engine.models import read_config

            return read_config(model)["model"], model
        if model not in MODEL_NAMES:
            raise ValueError(f"unknown model '{model}' (known: {', '.join(MODEL_NAMES)})")
        if model in NETWORK_MODELS and weights is None:
            weights = shipped_weights(model)
            if weights is None:
                self.notice = f"no trained weights for '{model}' are shipped: using 'dcp'"
                log.info(self.notice)
                return "dcp", None
        return model, weights

    def _load_network(self, backend: str) -> None:
        self._network, self.config = load_network(self.weights_path)
        if self.config["model"] != self.model_name:
            raise ValueError(
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
        # GPU backends run the whole frame on the device (fused pre/post kernels).
        self._device_frame_path = hasattr(instance, "process_frame")

    @property
    def backend_name(self) -> str:
        return self.backend.name if self.backend else "none"

    def describe(self) -> str:
        source = f" from {self.weights_path}" if self.weights_path else ""
        backend = self.backend.describe() if self.backend else "no network"
        return (
            f"model {self.model_name}{source}; backend {backend}; working short side "
            f"{self.working_short_side} px; {self.backend_reason}"
        )

    # -- per frame ---------------------------------------------------------------------
    def working_shape_for(self, height: int, width: int) -> tuple[int, int]:
        key = (height, width)
        if key not in self._shapes:
            stride = network_stride(self.model_name)
            self._shapes[key] = working_shape(height, width, self.working_short_side, stride)
        return self._shapes[key]

    def process(self, frame: np.ndarray) -> DesmokeResult:
        """Desmoke one RGB uint8 frame of any size; the outputs have the frame's size."""
        frame = as_rgb_uint8(frame)
        height, width = frame.shape[:2]
        timings: dict[str, float] = {}
        start = time.perf_counter()

        work_h, work_w = self.working_shape_for(height, width)
        if self._device_frame_path:
            result = self._process_on_device(frame, (work_h, work_w))
            if result is not None:
                return result
        interpolation = cv2.INTER_AREA if work_h <= height else cv2.INTER_LINEAR
        small = cv2.resize(frame, (work_w, work_h), interpolation=interpolation)
        small_f = small.astype(np.float32) * np.float32(1 / 255)
        small_patch = default_patch_size(work_h, work_w, self.reference_patch)
        mark = _lap(timings, "preprocess", start)

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
        path from then on) when they cannot run, e.g. NVRTC missing or out of GPU memory."""
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
        except BackendUnavailable as exc:
            self._device_frame_path = False
            self.notice = f"GPU frame path off ({exc}); pre/post-processing on the CPU"
            log.warning(self.notice)
            return None
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

    def _smoke_layer(self, small_f: np.ndarray, patch: int, timings: dict) -> SmokeLayer:
        mark = time.perf_counter()
        if self.model_name == "dcp":
            layer = estimate_smoke_layer(small_f, patch)
            _lap(timings, "network", mark)
            return layer
        x = self._network_input(small_f, patch)
        timings["preprocess"] += (time.perf_counter() - mark) * 1000
        mark = time.perf_counter()
        alpha, colour = self._run_network(x)
        _lap(timings, "network", mark)
        return SmokeLayer(
            alpha=alpha[0, 0], colour=np.ascontiguousarray(colour[0].transpose(1, 2, 0))
        )

    def _run_paper(
        self, frame: np.ndarray, small_f: np.ndarray, patch: int, timings: dict
    ) -> tuple[np.ndarray, float]:
        mark = time.perf_counter()
        x = self._network_input(small_f, patch)
        level = float(x[0, 3].mean())
        timings["preprocess"] += (time.perf_counter() - mark) * 1000
        mark = time.perf_counter()
        (restored,) = self._run_network(x)
        mark = _lap(timings, "network", mark)
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


# -- whole videos ------------------------------------------------------------------------
class ExportCancelled(Exception):
    """Raised inside `export_video` when `should_stop()` says so; the output is removed."""


def _stated_end(source, end: float | None) -> float:
    """Where the video stream says the range ends (0 when it states no duration)."""
    stated = source.video_duration
    return stated if end is None else min(end, stated)


@dataclass
class ExportReport:
    output: Path
    frames: int
    skipped_frames: int
    seconds: float
    encoder: str
    warning: str = ""  # e.g. the input ends before its stated duration (a cut-short file)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """'250 frames in 10.0 s, 25.0 frames/s, libx264[, 1 undecodable frame skipped]':
        the processing rate, not the video's."""
        text = f"{plural(self.frames, 'frame')} in {self.seconds:.1f} s, {self.fps:.1f} frames/s"
        text += f", {self.encoder}"
        if self.skipped_frames:
            text += f", {plural(self.skipped_frames, 'undecodable frame')} skipped"
        return text


def plural(count: int, noun: str) -> str:
    """'1 frame', '2 frames'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def export_video(
    source_path: str | Path,
    output_path: str | Path,
    desmoker: Desmoker,
    *,
    layout: str = "3up",
    labels: bool = False,
    start: float = 0.0,
    end: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    crf: int | None = None,
) -> ExportReport:
    """Desmoke [start, end) of a video file into a side-by-side MP4 (audio copied);
    crf: H.264 quality (default engine.video.writer.DEFAULT_CRF; lower is better).

    progress(frames_done, frames_expected) after each frame. The writer works on a temporary
    file: on any error, cancellation or Ctrl-C, nothing is left at `output_path`.
    """
    from engine.video import FileSource, SideBySideWriter, WriterThread, cut_short_warning
    from engine.video.writer import DEFAULT_CRF, SOURCE_TIME_BASE

    began = time.perf_counter()
    with FileSource(source_path) as source:
        if end is not None and end <= start:
            raise ValueError(f"empty range: end {end:g} s is not after start {start:g} s")
        stop = source.duration if end is None else min(end, source.duration)
        expected = max(1, round((stop - start) * source.fps))
        writer = SideBySideWriter(
            output_path,
            fps=source.fps,
            frame_size=(source.width, source.height),
            layout=layout,
            labels=labels,
            source=source_path,
            audio_start=start,
            audio_end=end,
            crf=DEFAULT_CRF if crf is None else crf,
            time_base=SOURCE_TIME_BASE,
        )
        try:
            encoder = WriterThread(writer)  # encoding overlaps the next frames' desmoking
        except BaseException:  # Ctrl-C or a kill between the two: the writer's file goes too
            writer.abort()
            raise
        ended_at = start
        with encoder:
            for done, frame in enumerate(source.frames(start, end), start=1):
                if should_stop is not None and should_stop():
                    raise ExportCancelled(f"export of {source_path} cancelled")
                result = desmoker.process(frame.rgb)
                # Each frame at its own time: a variable frame rate (a recorder that dropped
                # frames) keeps its timing, and its sync with the audio.
                shown_at = max(0.0, frame.time - start)
                encoder.write(result.original, result.dark_channel, result.desmoked, shown_at)
                ended_at = frame.time + 1 / source.fps
                if progress is not None:
                    progress(done, max(expected, done))
            if encoder.frames_queued == 0:
                raise ValueError(f"{source_path}: no decodable frame in the range asked for")
        return ExportReport(
            output=Path(output_path),
            frames=writer.frames_written,
            skipped_frames=source.skipped_frames,
            seconds=time.perf_counter() - began,
            encoder=writer.encoder_name,
            warning=cut_short_warning(source_path, ended_at, _stated_end(source, end)),
        )
