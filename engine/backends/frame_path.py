"""The fused GPU frame path: the whole frame on the device, around any network.

One host->device copy of the uint8 frame; pre-kernels (resize, normalise, dark channel,
the display mask: two launches); network; guided-filter coefficients (torch, at the
working resolution); post-kernel (edge-aware upsampling, inversion of the compositing,
uint8); one device->host copy of the desmoked frame, the mask and the smoke level
together.

`FramePath` only needs a kernel module with `launch(...)`, a device and a network
function, so the same code runs the torch-cuda backend's network, the TensorRT backend's
engine, and (with the kernels' host emulation and CPU tensors) the tests on machines
without a GPU. `FramePathBackend` is what those two backends share: a FramePath built on
first use behind `Backend.process_frame`.
"""

from __future__ import annotations

import logging
import os
import time
from abc import abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.backends.base import Backend, BackendUnavailable, FrameUnsupported
from engine.cuda import kernels as K
from engine.cuda.loader import CudaError
from engine.restore import DEFAULT_GUIDE_EPS, guide_radius

log = logging.getLogger(__name__)

#: Eager runs of a new shape before it is captured into a CUDA graph (cuDNN picks its
#: algorithms and the caching allocator settles during these).
GRAPH_WARMUP_RUNS = 2
#: The models the fused kernels restore: `fast` (a smoke layer), `paper` (the clear image).
FRAME_PATH_MODELS = ("fast", "paper")


# -- host copies ------------------------------------------------------------------------
class HostCopier:
    """Copies between NumPy arrays and pinned staging memory, in row strips on a few
    threads when the arrays are large and the machine has the cores: the frame path's host
    copies bound its frame rate. Measured on the 16-core host of an H200: 4 threads copy a
    1080p frame 1.45x and a 4K frame 2x faster than one, while 2 threads were slower than
    one at 4K; so machines with fewer than 8 cores copy on one thread."""

    MIN_BYTES = 4 << 20  # below this, thread hand-offs cost more than they save

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or (4 if (os.cpu_count() or 1) >= 8 else 1)
        self._pool = (
            ThreadPoolExecutor(self.threads, thread_name_prefix="desmoke-copy")
            if self.threads > 1
            else None
        )

    def copy(self, dst: np.ndarray, src: np.ndarray) -> None:
        """dst[...] = src (same shape); NumPy releases the GIL while it copies."""
        if self._pool is None or dst.nbytes < self.MIN_BYTES:
            np.copyto(dst, src)
            return
        step = -(-dst.shape[0] // self.threads)
        strips = [slice(top, top + step) for top in range(0, dst.shape[0], step)]
        for done in [self._pool.submit(np.copyto, dst[s], src[s]) for s in strips]:
            done.result()

    def fresh_copy(self, src: np.ndarray) -> np.ndarray:
        out = np.empty_like(src)
        self.copy(out, src)
        return out


# -- the guided filter's coefficients, on the device -----------------------------------
def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 box with a replicated border (cv2.boxFilter, BORDER_REPLICATE)."""
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    return F.avg_pool2d(padded, kernel_size=2 * radius + 1, stride=1)


def guided_coefficients(
    guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float = DEFAULT_GUIDE_EPS
) -> tuple[torch.Tensor, torch.Tensor]:
    """engine.restore.guided_filter_coefficients on Nx1xHxW float32 tensors."""
    mean_i, mean_p = box_filter(guide, radius), box_filter(source, radius)
    cov_ip = box_filter(guide * source, radius) - mean_i * mean_p
    var_i = box_filter(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_filter(a, radius), box_filter(b, radius)


# -- the frame path -------------------------------------------------------------------
@dataclass
class FrameOutputs:
    """One frame's GPU results on the host (fresh arrays, safe to keep)."""

    dark_channel: np.ndarray  # uint8 HxW
    desmoked: np.ndarray  # uint8 HxWx3
    smoke_level: float
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Launch:
    """The kernels' launch arguments a CUDA graph bakes in: a change is captured afresh.
    Strength is not one of them: a device scalar (_Buffers.strength) the graph reads, so
    the GUI's slider changes it without a recapture."""

    small_patch: int
    mask_patch: int
    t_min: float


@dataclass
class _Buffers:
    """Device (and pinned host) buffers of one frame/working shape; fixed addresses, so a
    CUDA graph captured over them stays valid."""

    height: int
    width: int
    work_h: int
    work_w: int
    frame: torch.Tensor  # uint8 HxWx3
    net_input: torch.Tensor  # 1x4xhxw, the network's dtype and memory format
    guide: torch.Tensor  # float32 1x1xhxw
    scratch: torch.Tensor  # uint8 H x scratch_pitch(W)
    out: torch.Tensor  # uint8: desmoked (3HW) | mask (HW) | smoke level (float32)
    strength: torch.Tensor  # float32 scalar on the device (changes without a recapture)
    host_frame: torch.Tensor | None = None  # pinned
    host_out: torch.Tensor | None = None  # pinned
    launch: _Launch | None = None  # of the runs counted and the graph
    runs: int = 0  # eager runs with `launch` (a graph is captured after GRAPH_WARMUP_RUNS)
    graph: Any = None
    graph_failed: bool = False

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.height, self.width, self.work_h, self.work_w

    def views(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pixels = self.height * self.width
        desmoked = out[: 3 * pixels].view(self.height, self.width, 3)
        mask = out[3 * pixels : 4 * pixels].view(self.height, self.width)
        level = out[4 * pixels : 4 * pixels + 4].view(torch.float32)
        return desmoked, mask, level

    def use_launch(self, launch: _Launch) -> None:
        """Run with `launch` from now: another one drops the graph of the old (settled
        settings are captured again, GRAPH_WARMUP_RUNS frames later)."""
        if launch != self.launch:
            self.drop_graph()
            self.launch, self.runs = launch, 0

    def drop_graph(self) -> None:
        if self.graph is not None:
            self.graph.reset()  # its private memory pool goes with it
            self.graph = None


def free_cached_memory() -> None:
    """Hand the blocks torch's caching allocators keep back to the driver: device memory,
    and pinned host memory where this torch can (torch.accelerator.empty_host_cache).
    Best effort: callers free after a failure, and a device in a sticky error state fails
    these calls too."""
    if not torch.cuda.is_initialized():  # nothing was ever allocated
        return
    empty_host_cache = getattr(getattr(torch, "accelerator", None), "empty_host_cache", None)
    try:
        torch.cuda.empty_cache()
        if empty_host_cache is not None:
            empty_host_cache()
    except RuntimeError as exc:
        log.debug("could not free cached GPU memory: %s", exc)


class FramePath:
    """The whole frame on the device: uint8 frame in, mask + desmoked + level out.

    kernels: engine.cuda.loader.CudaModule (or the host emulation, with a CPU device).
    network: device tensor (1x4xhxw, `input_dtype`) -> the network's output tensors.
    model: "fast" (outputs alpha, colour) or "paper" (output the restored image).

    Holds the buffers (and CUDA graph) of one frame/working shape, the last one run: a new
    shape frees the old one's, so moving the GUI's sliders never piles up GPU or pinned
    memory.
    """

    def __init__(
        self,
        kernels: K.KernelModule,
        network: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
        *,
        model: str,
        device: torch.device,
        input_dtype: torch.dtype = torch.float16,
        channels_last: bool = True,
        use_graphs: bool = True,
        stream: Any = None,
    ) -> None:
        if model not in FRAME_PATH_MODELS:
            raise ValueError(f"the GPU frame path runs 'fast' and 'paper', not '{model}'")
        self.kernels = kernels
        self.network = network
        self.model = model
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.input_dtype = input_dtype
        self.channels_last = channels_last
        self.use_graphs = use_graphs and self.cuda
        self.stream = stream if stream is not None or not self.cuda else torch.cuda.Stream()
        self._held: _Buffers | None = None
        self._copier = HostCopier() if self.cuda else HostCopier(threads=1)

    # -- buffers ------------------------------------------------------------------------
    def _allocate(self, height: int, width: int, work_h: int, work_w: int) -> _Buffers:
        device = self.device
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        pixels = height * width
        buffers = _Buffers(
            height=height,
            width=width,
            work_h=work_h,
            work_w=work_w,
            frame=torch.empty((height, width, 3), dtype=torch.uint8, device=device),
            net_input=torch.empty(
                (1, 4, work_h, work_w), dtype=self.input_dtype, device=device
            ).contiguous(memory_format=memory_format),
            guide=torch.empty((1, 1, work_h, work_w), dtype=torch.float32, device=device),
            scratch=torch.empty((height, K.scratch_pitch(width)), dtype=torch.uint8, device=device),
            out=torch.empty(4 * pixels + 4, dtype=torch.uint8, device=device),
            strength=torch.ones((), dtype=torch.float32, device=device),
        )
        if self.cuda:
            buffers.host_frame = torch.empty_like(buffers.frame, device="cpu").pin_memory()
            buffers.host_out = torch.empty_like(buffers.out, device="cpu").pin_memory()
        return buffers

    def _buffers_for(self, shape: tuple[int, int, int, int]) -> _Buffers:
        """The held buffers if they have this shape, else new ones (the old freed first)."""
        if self._held is None or self._held.shape != shape:
            self.release()
            self._held = self._allocate(*shape)
        return self._held

    def release(self) -> None:
        """Free the buffers and graph held (the next frame allocates afresh). Every frame is
        synchronous, so no device work still uses them."""
        held, self._held = self._held, None
        if held is None:
            return
        try:
            held.drop_graph()
        except RuntimeError as exc:  # after a failure on the device, as free_cached_memory
            log.debug("could not free a CUDA graph: %s", exc)
        free_cached_memory()

    def _stream_handle(self) -> int:
        return torch.cuda.current_stream(self.device).cuda_stream if self.cuda else 0

    # -- the device work (graph-capturable: fixed buffers, no host syncs) ----------------
    def _device_work(self, b: _Buffers, launch: _Launch, marks: list | None = None) -> None:
        """Pre-kernels (network input and display mask), network, restore. `marks` (eager
        profiling) collects a CUDA event after each of the first two stages."""
        self._preprocess(b, launch.small_patch, launch.mask_patch)
        self._mark(marks)
        outputs = self.network(b.net_input)
        self._mark(marks)
        if self.model == "paper":
            self._restore_paper(b, outputs[0])
        else:
            self._restore_layer(b, outputs[0], outputs[1], launch.t_min)

    def _net_input_planes(self, b: _Buffers) -> K.Planes:
        x = b.net_input
        return K.Planes(x.data_ptr(), x.dtype == torch.float16, tuple(x.stride()[1:]))

    def _preprocess(self, b: _Buffers, small_patch: int, mask_patch: int) -> None:
        _, mask, _ = b.views(b.out)
        K.preprocess(
            self.kernels,
            self._stream_handle(),
            frame=K.Image(b.frame.data_ptr(), 3 * b.width),
            height=b.height,
            width=b.width,
            net_input=self._net_input_planes(b),
            work_h=b.work_h,
            work_w=b.work_w,
            small_patch=small_patch,
            guide=b.guide.data_ptr(),
            mask=K.Image(mask.data_ptr(), b.width),
            scratch=K.Image(b.scratch.data_ptr(), b.scratch.shape[1]),
            mask_patch=mask_patch,
        )

    def _restore_paper(self, b: _Buffers, restored: torch.Tensor) -> None:
        desmoked, _, level = b.views(b.out)
        level.copy_(b.net_input[:, 3].float().mean().reshape(1))  # as the CPU pipeline
        # The kernel adds (restored - input) upsampled; strength scales that change here,
        # from the device scalar, so the graph need not bake it into the launch.
        before = b.net_input[:, :3].float()
        restored = (before + (restored.float() - before) * b.strength).contiguous()
        K.restore_paper(
            self.kernels,
            self._stream_handle(),
            frame=K.Image(b.frame.data_ptr(), 3 * b.width),
            height=b.height,
            width=b.width,
            restored=restored.data_ptr(),
            work_h=b.work_h,
            work_w=b.work_w,
            net_input=self._net_input_planes(b),
            strength=1.0,
            out=K.Image(desmoked.data_ptr(), 3 * b.width),
        )

    def _restore_layer(
        self, b: _Buffers, alpha: torch.Tensor, colour: torch.Tensor, t_min: float
    ) -> None:
        desmoked, _, level = b.views(b.out)
        alpha, colour = alpha.float(), colour.float().contiguous()
        level.copy_(alpha.mean().reshape(1))  # before strength, as SmokeLayer.level
        alpha = alpha * b.strength
        if alpha.shape[-2:] != (b.work_h, b.work_w):
            alpha = F.interpolate(
                alpha, size=(b.work_h, b.work_w), mode="bilinear", align_corners=False
            )
        a, c = guided_coefficients(b.guide, alpha, guide_radius(b.work_h, b.work_w))
        # `a` applies to the uint8 grey frame in the kernel, as in engine.restore.
        coef = torch.cat([a * (1.0 / 255.0), c], dim=1).contiguous()
        K.restore_smoke_layer(
            self.kernels,
            self._stream_handle(),
            frame=K.Image(b.frame.data_ptr(), 3 * b.width),
            height=b.height,
            width=b.width,
            coef=coef.data_ptr(),
            coef_h=b.work_h,
            coef_w=b.work_w,
            colour=colour.data_ptr(),
            colour_h=colour.shape[-2],
            colour_w=colour.shape[-1],
            t_min=t_min,
            out=K.Image(desmoked.data_ptr(), 3 * b.width),
        )

    def _mark(self, marks: list | None) -> None:
        if marks is not None:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            marks.append(event)

    def _run_device(self, b: _Buffers, launch: _Launch, profile: bool = False) -> dict[str, float]:
        """The device work: graph replay once captured; profile runs it eagerly with
        per-stage events (preprocess, network, restore) and returns their milliseconds."""
        if profile and self.cuda:
            marks: list = []
            self._mark(marks)
            self._device_work(b, launch, marks)
            self._mark(marks)
            marks[-1].synchronize()
            stages = ("preprocess", "network", "restore")
            return {s: marks[i].elapsed_time(marks[i + 1]) for i, s in enumerate(stages)}
        self._run(b, launch)
        return {}

    def _run(self, b: _Buffers, launch: _Launch) -> None:
        b.use_launch(launch)
        if b.graph is not None:
            b.graph.replay()
            return
        self._device_work(b, launch)
        b.runs += 1
        if self.use_graphs and not b.graph_failed and b.runs >= GRAPH_WARMUP_RUNS:
            self._capture(b, launch)

    def _capture(self, b: _Buffers, launch: _Launch) -> None:
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: another thread's Desmoker (the export worker) may allocate or
            # synchronise on its own stream meanwhile; the default "global" mode would fail
            # its calls and this capture. This thread's own unsafe calls still fail.
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                self._device_work(b, launch)
        except Exception as exc:  # some op cannot be captured: stay eager, say so once
            b.graph_failed = True
            log.warning("CUDA graph capture failed (%s); running eagerly", exc)
            return
        b.graph = graph

    # -- per frame ----------------------------------------------------------------------
    def process(
        self,
        frame: np.ndarray,
        *,
        work_shape: tuple[int, int],
        small_patch: int,
        mask_patch: int,
        strength: float = 1.0,
        t_min: float = 0.1,
        profile: bool = False,
    ) -> FrameOutputs:
        """One uint8 HxWx3 RGB frame through the GPU path (synchronous). Timings (ms):
        host_in (frame into pinned memory), upload, gpu, download (+ preprocess, network,
        restore with `profile`, which runs eagerly with an event between the stages,
        instead of replaying the CUDA graph),
        host_out (results out of pinned memory) and total (host wall clock).

        FrameUnsupported (the caller pre/post-processes this frame on the CPU) for sizes or
        patches past the kernels' limits, checked before anything runs; BackendUnavailable
        (the CPU from then on) for any failure on the device; out of memory first frees
        what is held and tries once more."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected a uint8 HxWx3 frame, got {frame.dtype} {frame.shape}")
        shape = (*frame.shape[:2], *work_shape)
        try:
            K.check_frame(*shape, small_patch, mask_patch)
        except K.KernelLimit as exc:
            raise FrameUnsupported(str(exc)) from exc
        # t_min is a launch argument of `fast`'s restore only: paper's graph does not hang on it.
        launch = _Launch(small_patch, mask_patch, float(t_min) if self.model == "fast" else 0.0)
        started = time.perf_counter()
        timings = self._process_or_unavailable(shape, launch, frame, strength, profile)
        b = self._held
        host = b.host_out if self.cuda else b.out
        desmoked, mask, level = b.views(host)
        copied = time.perf_counter()
        result = FrameOutputs(
            dark_channel=self._copier.fresh_copy(mask.numpy()),
            desmoked=self._copier.fresh_copy(desmoked.numpy()),
            smoke_level=float(level.item()),
            timings=timings,
        )
        done = time.perf_counter()
        result.timings["host_out"] = (done - copied) * 1000
        result.timings["total"] = (done - started) * 1000
        return result

    def _process_or_unavailable(
        self, shape: tuple, launch: _Launch, frame: np.ndarray, strength: float, profile: bool
    ) -> dict[str, float]:
        """_process; any failure frees what is held and becomes BackendUnavailable."""
        try:
            return self._process_retrying(shape, launch, frame, strength, profile)
        except BackendUnavailable:
            self.release()
            raise
        except CudaError as exc:
            self.release()
            raise BackendUnavailable(f"GPU kernels failed: {exc}") from exc
        except RuntimeError as exc:  # torch's errors: a driver problem, a lost device
            self.release()
            raise BackendUnavailable(f"the GPU frame path failed: {exc}") from exc

    def _process_retrying(
        self, shape: tuple, launch: _Launch, frame: np.ndarray, strength: float, profile: bool
    ) -> dict[str, float]:
        try:
            return self._process(shape, launch, frame, strength, profile)
        except torch.cuda.OutOfMemoryError:
            self.release()  # all of it: what a new shape or a graph's pool needs may fit now
        try:
            return self._process(shape, launch, frame, strength, profile)
        except torch.cuda.OutOfMemoryError as exc:
            height, width = shape[:2]
            raise BackendUnavailable(f"out of GPU memory for {width}x{height} frames") from exc

    def _process(
        self, shape: tuple, launch: _Launch, frame: np.ndarray, strength: float, profile: bool
    ) -> dict[str, float]:
        if self.cuda:
            with torch.cuda.stream(self.stream):  # buffers too: made on the stream that uses them
                b = self._buffers_for(shape)
                return self._process_cuda(b, launch, frame, strength, profile)
        b = self._buffers_for(shape)
        b.frame.copy_(torch.from_numpy(np.ascontiguousarray(frame)))
        b.strength.fill_(strength)
        self._run_device(b, launch)
        return {}

    def _process_cuda(
        self, b: _Buffers, launch: _Launch, frame: np.ndarray, strength: float, profile: bool
    ) -> dict[str, float]:
        events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        began = time.perf_counter()
        self._copier.copy(b.host_frame.numpy(), frame)  # pinned memory: a true async upload
        host_in = (time.perf_counter() - began) * 1000
        events[0].record()
        b.frame.copy_(b.host_frame, non_blocking=True)
        b.strength.fill_(strength)
        events[1].record()
        stages = self._run_device(b, launch, profile)
        events[2].record()
        b.host_out.copy_(b.out, non_blocking=True)
        events[3].record()
        events[3].synchronize()
        return {
            "host_in": host_in,
            "upload": events[0].elapsed_time(events[1]),
            "gpu": events[1].elapsed_time(events[2]),
            "download": events[2].elapsed_time(events[3]),
            **stages,
        }


# -- the backends that run it ---------------------------------------------------------
def cuda_kernels(model: str) -> K.KernelModule:
    """The fused kernels on the current CUDA device (compiled on first use) for `model`;
    BackendUnavailable saying why where they cannot run it here (NVRTC missing, a model
    they do not restore)."""
    if model not in FRAME_PATH_MODELS:
        raise BackendUnavailable(f"no fused path for model '{model}'")
    try:
        from engine.cuda.loader import CudaModule

        return CudaModule(torch.cuda.current_device())
    except (ImportError, CudaError) as exc:  # the pipeline's notice says it, once
        raise BackendUnavailable(str(exc)) from exc


class FramePathBackend(Backend):
    """A GPU backend that also runs whole frames: `process_frame` through a FramePath
    around its network, built on the first frame (the kernels compile then) and kept; where
    it cannot be built, the reason is kept (`frame_path_reason`) and not tried again."""

    model: str = ""  # the loaded network's model name (FRAME_PATH_MODELS: a fused path)
    _frame_path: FramePath | None = None
    _frame_path_error: str = ""

    @abstractmethod
    def _new_frame_path(self, kernels: K.KernelModule) -> FramePath:
        """A FramePath on `kernels` around this backend's loaded network."""

    def frame_path(self) -> FramePath | None:
        """The fused GPU frame path, or None (with `frame_path_reason`) when the kernels
        cannot be compiled or loaded here; built once."""
        if self._frame_path is None and not self._frame_path_error:
            try:
                self._frame_path = self._new_frame_path(cuda_kernels(self.model))
            except BackendUnavailable as exc:
                self._frame_path_error = str(exc)
        return self._frame_path

    @property
    def frame_path_reason(self) -> str:
        return self._frame_path_error

    def process_frame(self, frame: np.ndarray, **options: Any) -> FrameOutputs:
        """FramePath.process on this backend's network; BackendUnavailable without kernels."""
        path = self.frame_path()
        if path is None:
            raise BackendUnavailable(f"fused CUDA kernels unavailable: {self._frame_path_error}")
        return path.process(frame, **options)
