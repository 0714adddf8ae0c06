"""GPU check (issue 4, item 5): correctness and speed of the GPU path on this machine's GPU.

1. Compiles the fused kernels (NVRTC, for this GPU) and times it.
2. Compares every kernel with the CPU reference (engine.pipeline / engine.restore /
   engine.dark_channel) on fresh random frames and on real footage, writing into poisoned
   buffers (NaN, and 0x00 then 0xFF for uint8) so an unwritten pixel cannot pass.
3. Runs the torch-CUDA backend end to end (fp32 network: kernel exactness; fp16: the
   product) against the CPU backend; the pipeline as the app builds it (backend auto);
   and a 4K frame with almost no GPU memory left (message, CPU fallback, result).
4. TensorRT, when importable: builds an engine (fp16, fixed 1080p working shape), loads it
   through the backend and compares it; otherwise says that TensorRT is absent.
5. Times per-stage milliseconds at 720p, 1080p and 4K, end-to-end fps (host frame in,
   host frames out, CUDA graphs) and where a replayed frame's time goes, the paper model
   at 256x256, and the pre-kernels' achieved bandwidth against device-to-device copies
   measured in the same run (each kernel also timed alone).
Every phase runs even if an earlier one failed (a GPU lease is short); the report lists
the phases that failed. Writes gpu_<gpu-name>.md and .json to --out (default
benchmarks/results/).

--emulate (no GPU): the kernels' host emulation, correctness only; its report (printed,
and written to --out when given, never to benchmarks/results) says so.

    DESMOKE_DATA=../shared/data python benchmarks/gpu_check.py [--frames DIR] [--out DIR]

Real footage: PNG/JPG files in --frames, plus DESMOKE_DATA's images and (when PyAV is
installed) a few frames of its 720p clip and of two DeSmoke-LAP clips. `--extract-frames DIR` (no GPU needed) saves
those frames as PNGs, to carry to a GPU machine that has no PyAV or shared data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.backends.frame_path import FramePath  # noqa: E402
from engine.backends.torch_cuda import TorchCudaBackend  # noqa: E402
from engine.cuda import kernels as K  # noqa: E402
from engine.dark_channel import dark_channel, default_patch_size  # noqa: E402
from engine.models import (  # noqa: E402
    build_network,
    default_config,
    save_weights,
    shipped_weights,
    working_interpolation,
    working_shape,
)
from engine.pipeline import Desmoker  # noqa: E402
from engine.restore import (  # noqa: E402
    SmokeLayer,
    guide_radius,
    guided_filter_coefficients,
    restore,
    to_gray,
)

RESULTS = Path(__file__).resolve().parent / "results"
#: The "GPU" of an --emulate report (its files: gpu_host-emulation-no-gpu.md/.json).
EMULATION = "host emulation (no GPU)"
#: What an --emulate run without --out prints.
EMULATION_SUMMARY = ("max_abs_error", "failures", "end_to_end", "phase_errors")
RESOLUTIONS = {"720p": (720, 1280), "1080p": (1080, 1920), "4K": (2160, 3840)}
PAPER_FPS = 92.0  # Salazar-Colores et al. 2020, hardware not stated
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ABSENT_TRT = "absent (not importable): the TensorRT path was not run"


# -- inputs ---------------------------------------------------------------------------
def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


#: Clips of DESMOKE_DATA that real frames come from: (path, every n-th frame, how many).
CLIPS = (
    ("clear/endo_720p.mp4", 80, 3),
    ("real_smoke/desmokelap_input_9.avi", 50, 1),  # lilac haze
    ("real_smoke/desmokelap_input_7.avi", 50, 1),  # dense smoke
)


def clip_frames() -> list[tuple[str, np.ndarray]]:
    """A few frames of the shared clips, when PyAV and DESMOKE_DATA are there."""
    data = os.environ.get("DESMOKE_DATA")
    if not data:
        return []
    try:
        import av
    except ImportError:
        return []
    frames = []
    for relative, step, count in CLIPS:
        clip = Path(data) / relative
        if not clip.is_file():
            continue
        taken = 0
        with av.open(str(clip)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index % step == 0:
                    frames.append((f"{clip.stem}#{index}", frame.to_ndarray(format="rgb24")))
                    taken += 1
                if taken == count:
                    break
    return frames


def real_frames(folder: Path | None) -> list[tuple[str, np.ndarray]]:
    frames = clip_frames()
    paths = sorted(folder.iterdir()) if folder and folder.is_dir() else []
    data = os.environ.get("DESMOKE_DATA")
    if data:
        paths += sorted(Path(data).glob("*/*.png"))
    seen = {slug(name) for name, _ in frames}  # --extract-frames names files by slug
    for path in paths:
        if path.suffix.lower() in IMAGE_SUFFIXES and slug(path.stem) not in seen:
            frames.append((path.stem, read_rgb(path)))
            seen.add(slug(path.stem))
    return frames


def random_frame(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    sigma = max(1.0, min(height, width) / 200)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), sigma), None, 0, 255, cv2.NORM_MINMAX)


def smoke_layer(work_h: int, work_w: int, rng: np.random.Generator) -> SmokeLayer:
    coarse = rng.random((4, 6)).astype(np.float32) * 0.9
    alpha = cv2.resize(coarse, (work_w // 4, work_h // 4), interpolation=cv2.INTER_CUBIC)
    colour = rng.uniform(0.6, 1.0, (work_h // 4, work_w // 4, 3)).astype(np.float32)
    return SmokeLayer(np.clip(alpha, 0, 1), colour)


# -- helpers --------------------------------------------------------------------------
#: "cuda"; "cpu" with --emulate (the kernels' host emulation: correctness only, small frames).
DEVICE = "cuda"


def stream() -> int:
    return torch.cuda.current_stream().cuda_stream if DEVICE == "cuda" else 0


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def difference(actual: np.ndarray, expected: np.ndarray) -> tuple[float, int]:
    """(mean, largest) absolute difference in levels of two uint8 images."""
    diff = np.abs(actual.astype(int) - expected)
    return float(diff.mean()), int(diff.max())


def levels_error(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(max abs difference, fraction of values differing); inf when unwritten (NaN)."""
    actual = np.asarray(actual, np.float64)
    if not np.isfinite(actual).all():
        return float("inf"), 1.0
    diff = np.abs(actual - np.asarray(expected, np.float64))
    return float(diff.max()), float((diff > 1e-6).mean())


def reference_small(frame: np.ndarray, work_h: int, work_w: int) -> np.ndarray:
    interpolation = working_interpolation(*frame.shape[:2], work_h, work_w)
    small = cv2.resize(frame, (work_w, work_h), interpolation=interpolation)
    return small.astype(np.float32) * np.float32(1 / 255)


def shapes_for(height: int, width: int, stride: int = 16) -> tuple[int, int, int, int]:
    work_h, work_w = working_shape(height, width, 256, stride)
    return work_h, work_w, default_patch_size(work_h, work_w), default_patch_size(height, width)


class Errors:
    """Worst error per kernel over all frames, and the frames that failed."""

    def __init__(self) -> None:
        self.worst: dict[str, float] = {}
        self.failures: list[str] = []

    def add(
        self,
        kernel: str,
        frame: str,
        error: tuple[float, float],
        limit: float,
        max_fraction: float = 1e-3,
    ) -> None:
        value, fraction = error
        self.worst[kernel] = max(self.worst.get(kernel, 0.0), value)
        if value > limit or fraction > max_fraction:
            self.failures.append(
                f"{kernel} on {frame}: max {value:g} (limit {limit:g}), {fraction:.3%} differ"
            )


class Phases:
    """Every phase of the check runs even when an earlier one failed (a GPU lease is short
    and rare): a phase that raises is recorded, its traceback printed, and the check goes on."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}
        self.seconds: dict[str, float] = {}

    def run(self, name: str, step, *args, **kwargs):
        print(f"-- {name}", flush=True)
        began = time.perf_counter()
        try:
            return step(*args, **kwargs)
        except Exception as exc:
            traceback.print_exc()
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            return None
        finally:
            self.seconds[name] = round(time.perf_counter() - began, 1)


# -- 2. kernels against the CPU reference ---------------------------------------------
def check_pre(module, name: str, frame: np.ndarray, errors: Errors, half: bool) -> None:
    height, width = frame.shape[:2]
    work_h, work_w, small_patch, mask_patch = shapes_for(height, width)
    device_frame = torch.from_numpy(frame).to(DEVICE)
    dtype = torch.float16 if half else torch.float32
    net = torch.full((1, 4, work_h, work_w), float("nan"), dtype=dtype, device=DEVICE)
    if half:
        net = net.contiguous(memory_format=torch.channels_last)
    guide = torch.full((work_h, work_w), float("nan"), device=DEVICE)
    scratch = torch.empty((height, K.scratch_pitch(width)), dtype=torch.uint8, device=DEVICE)
    masks = []
    for poison in (0, 255):  # a pixel the kernel skips keeps one of two different values
        mask = torch.full((height, width), poison, dtype=torch.uint8, device=DEVICE)
        K.preprocess(
            module,
            stream(),
            frame=K.Image(device_frame.data_ptr(), 3 * width),
            height=height,
            width=width,
            net_input=K.Planes(net.data_ptr(), half, tuple(net.stride()[1:])),
            work_h=work_h,
            work_w=work_w,
            small_patch=small_patch,
            guide=guide.data_ptr(),
            mask=K.Image(mask.data_ptr(), width),
            scratch=K.Image(scratch.data_ptr(), scratch.shape[1]),
            mask_patch=mask_patch,
        )
        masks.append(mask.cpu().numpy())
    sync()
    small = reference_small(frame, work_h, work_w)
    got = net[0].float().cpu().numpy()
    suffix = "fp16" if half else "fp32"
    slack = 0.13 if half else 0.0  # fp16 keeps a [0, 1] level within 0.13 of itself
    # Exact area averages rounded once; cv2 rounds a float sum, so exact ties (a half-
    # integer average, common at scales like 9/8) may land either way: 1 level, <= 1%.
    errors.add(
        f"network input RGB ({suffix}, levels)",
        name,
        levels_error(np.rint(got[:3].transpose(1, 2, 0) * 255), np.rint(small * 255)),
        1,
        0.01,
    )
    errors.add(
        f"input_dark ({suffix}, levels)",
        name,
        levels_error(got[3] * 255, dark_channel(small, small_patch) * 255),
        1.001 + slack,
        1.0,
    )
    if not half:
        guide_error = levels_error(guide.cpu().numpy(), to_gray(small))
        errors.add("guide (grey)", name, guide_error, 1.001 / 255, 1.0)
    expected_mask = dark_channel(frame, mask_patch)
    for mask in masks:
        errors.add("mask_rows+cols (levels)", name, levels_error(mask, expected_mask), 0, 0)


def check_post(module, name: str, frame: np.ndarray, errors: Errors, rng) -> None:
    height, width = frame.shape[:2]
    work_h, work_w, _, _ = shapes_for(height, width)
    small = reference_small(frame, work_h, work_w)
    layer = smoke_layer(work_h, work_w, rng)
    expected = restore(frame, layer, to_gray(small))
    alpha = cv2.resize(layer.alpha, (work_w, work_h), interpolation=cv2.INTER_LINEAR)
    a, b = guided_filter_coefficients(to_gray(small), alpha, guide_radius(work_h, work_w))
    coef = torch.from_numpy(np.stack([a * np.float32(1 / 255), b])).to(DEVICE)
    colour = torch.from_numpy(np.ascontiguousarray(layer.colour.transpose(2, 0, 1))).to(DEVICE)
    device_frame = torch.from_numpy(frame).to(DEVICE)
    for poison in (0, 255):
        out = torch.full((height, width, 3), poison, dtype=torch.uint8, device=DEVICE)
        K.restore_smoke_layer(
            module,
            stream(),
            frame=K.Image(device_frame.data_ptr(), 3 * width),
            height=height,
            width=width,
            coef=coef.data_ptr(),
            coef_h=work_h,
            coef_w=work_w,
            colour=colour.data_ptr(),
            colour_h=colour.shape[1],
            colour_w=colour.shape[2],
            t_min=0.1,
            out=K.Image(out.data_ptr(), 3 * width),
        )
        errors.add(
            "restore_smoke_layer (levels)", name, levels_error(out.cpu().numpy(), expected), 1
        )

    # The paper model's post-kernel: (restored - input) * 255 s, upsampled, + frame.
    restored = np.clip(small + rng.normal(0, 0.05, small.shape).astype(np.float32), 0, 1)
    change = (restored - small) * np.float32(255 * 0.8)
    change = cv2.resize(change, (width, height), interpolation=cv2.INTER_LINEAR) + frame
    expected = np.clip(change, 0, 255).astype(np.uint8)
    planes = torch.from_numpy(np.ascontiguousarray(restored.transpose(2, 0, 1))).to(DEVICE)
    net = torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1))).to(DEVICE)
    out = torch.full((height, width, 3), 0, dtype=torch.uint8, device=DEVICE)
    K.restore_paper(
        module,
        stream(),
        frame=K.Image(device_frame.data_ptr(), 3 * width),
        height=height,
        width=width,
        restored=planes.data_ptr(),
        work_h=work_h,
        work_w=work_w,
        net_input=K.Planes(net.data_ptr(), False, (work_h * work_w, work_w, 1)),
        strength=0.8,
        out=K.Image(out.data_ptr(), 3 * width),
    )
    errors.add("restore_paper (levels)", name, levels_error(out.cpu().numpy(), expected), 1)


# -- 3. end to end --------------------------------------------------------------------
def fast_weights(folder: Path) -> tuple[Path, str]:
    shipped = shipped_weights("fast")
    if shipped is not None:
        return shipped, f"shipped {shipped.name}"
    torch.manual_seed(0)
    network = build_network("fast")
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = save_weights(folder / "fast.safetensors", network, default_config("fast"))
    return path, "randomly initialised (no shipped weights)"


def end_to_end(module, weights: Path, frames, errors: Errors, fp16: bool = True) -> dict[str, Any]:
    """FramePath (fp32 network: the kernels' exactness) and the torch-cuda backend (fp16:
    the product) against the CPU Desmoker."""
    from engine.models import load_network

    desmoker = Desmoker(str(weights), "torch")
    network, config = load_network(weights)
    fp32 = network.to(DEVICE).float()
    torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32 here

    def forward(x):
        with torch.inference_mode():
            return fp32(x)

    exact = FramePath(
        module,
        forward,
        model="fast",
        device=torch.device(DEVICE),
        input_dtype=torch.float32,
        channels_last=False,
    )
    backend = None
    if fp16:
        backend = TorchCudaBackend()
        backend.load(load_network(weights)[0], config)
    fp16_diffs = []
    for name, frame in frames:
        height, width = frame.shape[:2]
        work_h, work_w = desmoker.working_shape_for(height, width)
        options = dict(
            work_shape=(work_h, work_w),
            small_patch=default_patch_size(work_h, work_w),
            mask_patch=default_patch_size(height, width),
            strength=1.0,
            t_min=0.1,
        )
        expected = desmoker.process(frame)
        for _ in range(3 if DEVICE == "cuda" else 1):  # eager, eager, CUDA graph
            got = exact.process(frame, **options)
            errors.add(
                "end to end, fp32 network (levels)",
                name,
                levels_error(got.desmoked, expected.desmoked),
                1,
                0.02,
            )
            errors.add(
                "end to end mask (levels)",
                name,
                levels_error(got.dark_channel, expected.dark_channel),
                0,
                0,
            )
        if backend is not None:
            got = backend.process_frame(frame, **options)
            fp16_diffs.append((name, *difference(got.desmoked, expected.desmoked)))
    torch.backends.cudnn.allow_tf32 = True
    return {"fp16_vs_cpu": [{"frame": n, "mean_abs": m, "max_abs": x} for n, m, x in fp16_diffs]}


def app_path(weights: Path, frames) -> dict[str, Any]:
    """The pipeline as the app builds it (backend auto): which backend it picks, whether the
    fused frame path stays on, its output against the CPU pipeline, and its frame rate at
    1080p (host frame in, DesmokeResult out)."""
    gpu = Desmoker(str(weights), "auto")
    cpu = Desmoker(str(weights), "torch")
    result: dict[str, Any] = {"backend": gpu.backend_name, "describe": gpu.describe()}
    diffs = []
    for name, frame in frames:
        got, expected = gpu.process(frame), cpu.process(frame)
        mean, largest = difference(got.desmoked, expected.desmoked)
        mask_same = bool(np.array_equal(got.dark_channel, expected.dark_channel))
        diffs.append(
            {"frame": name, "mean_abs": mean, "max_abs": largest, "mask_identical": mask_same}
        )
    result["vs_cpu"] = diffs
    frame = cv2.resize(frames[0][1], (1920, 1080), interpolation=cv2.INTER_LINEAR)
    result["fps_1080p"] = fps(lambda: gpu.process(frame), 200)
    result["notice"] = gpu.notice  # empty while the fused frame path is on
    return result


def out_of_memory(weights: Path) -> dict[str, Any]:
    """Bad input on the device: a 4K frame with almost no GPU memory left. The pipeline
    must say so, move the work to the CPU and still return the frame desmoked."""
    desmoker = Desmoker(str(weights), "torch-cuda")
    frame = random_frame(2160, 3840, np.random.default_rng(3))
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info()
    hog = torch.empty(max(0, free - (48 << 20)), dtype=torch.uint8, device="cuda")
    try:
        result = desmoker.process(frame)
    finally:
        del hog
        torch.cuda.empty_cache()
    mean, largest = difference(
        result.desmoked, Desmoker(str(weights), "torch").process(frame).desmoked
    )
    return {
        "notice": desmoker.notice,
        "backend_after": desmoker.backend_name,
        "mean_abs_vs_cpu": mean,
        "max_abs_vs_cpu": largest,
    }


# -- 4. TensorRT ----------------------------------------------------------------------
def tensorrt_check(weights: Path, frames, folder: Path) -> dict[str, Any] | None:
    try:
        import tensorrt as trt
    except ImportError as exc:
        print(f"TensorRT: absent ({exc}); the TensorRT path was not checked")
        return None
    from engine.backends.tensorrt_backend import TensorRTBackend
    from engine.models import load_network
    from training.build_engine import build_engine

    result: dict[str, Any] = {"version": trt.__version__}
    try:
        began = time.perf_counter()
        engine, sidecar = build_engine(
            weights,
            folder / "fast.engine",
            fp16=True,
            timing_cache=folder / "timing.cache",
            shape=(256, 448),
        )
        result["build_s"] = time.perf_counter() - began
        os.environ["DESMOKE_TRT_ENGINE"] = str(engine)
        network, config = load_network(weights)
        backend = TensorRTBackend()
        backend.load(network, config)
        desmoker = Desmoker(str(weights), "torch")
        frame = cv2.resize(frames[0][1], (1920, 1080), interpolation=cv2.INTER_AREA)
        options = dict(
            work_shape=(256, 448), small_patch=15, mask_patch=63, strength=1.0, t_min=0.1
        )
        expected = desmoker.process(frame)
        got = backend.process_frame(frame, **options)
        mean, largest = difference(got.desmoked, expected.desmoked)
        result.update(mean_abs_vs_cpu=mean, max_abs_vs_cpu=largest)
        result["fps_1080p"] = fps(lambda: backend.process_frame(frame, **options), 100)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    return result


# -- 5. speed -------------------------------------------------------------------------
def fps(step, count: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        step()
    sync()
    began = time.perf_counter()
    for _ in range(count):
        step()
    return count / (time.perf_counter() - began)


def stage_timings(path: FramePath, frame: np.ndarray, runs: int) -> dict[str, float]:
    height, width = frame.shape[:2]
    work_h, work_w, small_patch, mask_patch = shapes_for(height, width)
    options = dict(work_shape=(work_h, work_w), small_patch=small_patch, mask_patch=mask_patch)
    samples: dict[str, list[float]] = {}
    for index in range(runs + 3):
        timings = path.process(frame, profile=True, **options).timings
        if index >= 3:
            for stage, ms in timings.items():
                samples.setdefault(stage, []).append(ms)
    stats = {stage: statistics.median(values) for stage, values in samples.items()}
    stats["fps"] = fps(lambda: path.process(frame, **options), runs)  # graph replay
    # Where a replayed frame's time goes: host copies in and out of pinned memory, the
    # transfers, the graph on the GPU.
    replays = [path.process(frame, **options).timings for _ in range(runs)]
    stats["graph"] = {
        stage: statistics.median(t[stage] for t in replays)
        for stage in ("host_in", "upload", "gpu", "download", "host_out", "total")
    }
    stats["working_shape"] = f"{work_h}x{work_w}"
    return stats


def timed_graph(work, repeats: int = 50) -> float:
    """Milliseconds per replay of a CUDA graph of `work` (median of 5 batches)."""
    work()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        work()
    times = []
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / repeats)
    return statistics.median(times)


class LaunchRecorder:
    """Stands in for the kernel module: keeps launches instead of running them, so that each
    kernel of a sequence can be timed alone."""

    def __init__(self) -> None:
        self.launches: list[tuple] = []

    def launch(self, name, grid, block, shared, args, stream=0) -> None:
        self.launches.append((name, grid, block, shared, args))


def pre_bandwidth(module) -> dict[str, float]:
    """The pre-kernels at 1080p (cold L2: a 256 MB write before each run, its own time
    subtracted) against device-to-device copies measured the same way."""
    height, width = RESOLUTIONS["1080p"]
    work_h, work_w, small_patch, mask_patch = shapes_for(height, width)
    frame = torch.from_numpy(random_frame(height, width, np.random.default_rng(0))).to(DEVICE)
    net = torch.empty((1, 4, work_h, work_w), dtype=torch.float16, device=DEVICE)
    net = net.contiguous(memory_format=torch.channels_last)
    mask = torch.empty((height, width), dtype=torch.uint8, device=DEVICE)
    scratch = torch.empty((height, K.scratch_pitch(width)), dtype=torch.uint8, device=DEVICE)
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=DEVICE)
    big_src = torch.empty(1 << 30, dtype=torch.uint8, device=DEVICE)
    big_dst = torch.empty_like(big_src)
    copy_dst = torch.empty_like(frame)
    frame_image = K.Image(frame.data_ptr(), 3 * width)

    def pre(segments=(K.ROW_SEGMENT, K.COL_SEGMENT), with_mask=True, kernels=module, paired=True):
        """As the frame path runs them: two launches of paired jobs (paired=False: a
        launch a job, the plan before the pairing)."""
        K.preprocess(
            kernels,
            stream(),
            frame=frame_image,
            height=height,
            width=width,
            net_input=K.Planes(net.data_ptr(), True, tuple(net.stride()[1:])),
            work_h=work_h,
            work_w=work_w,
            small_patch=small_patch,
            mask=K.Image(mask.data_ptr(), width) if with_mask else None,
            scratch=K.Image(scratch.data_ptr(), scratch.shape[1]),
            mask_patch=mask_patch,
            segments=segments,
            paired=paired,
        )

    def cold(work) -> float:
        """ms of `work` after the L2 cache is flushed (the flush's own time subtracted)."""
        return timed_graph(lambda: (flush.fill_(1), work())) - flush_ms

    flush_ms = timed_graph(lambda: flush.fill_(1))
    # The mask passes' segment lengths are a speed knob: sweep a few, keep the best.
    sweep = {}
    for segments in ((K.ROW_SEGMENT, K.COL_SEGMENT), (32, 16), (16, 8), (16, 4), (8, 4)):
        sweep[f"{segments[0]}/{segments[1]}"] = cold(lambda s=segments: pre(s))
    best = min(sweep, key=sweep.get)
    best_segments = tuple(map(int, best.split("/")))
    # The two launch plans at the best segments, alternating (the sweep's minimum would
    # favour the paired one): medians of three each.
    paired, separate = [], []
    for _ in range(3):
        paired.append(cold(lambda: pre(best_segments)))
        separate.append(cold(lambda: pre(best_segments, paired=False)))
    pre_hot_ms = timed_graph(lambda: pre(best_segments))
    input_only_ms = cold(lambda: pre(with_mask=False))
    copy_ms = cold(lambda: copy_dst.copy_(frame))
    big_ms = timed_graph(lambda: big_dst.copy_(big_src), repeats=5)
    recorder = LaunchRecorder()
    pre(best_segments, kernels=recorder, paired=False)
    jobs = ("input_rgb", "input_dark", "mask_rows", "mask_cols")  # preprocess's order
    kernel_ms = {  # each job alone, hot L2 (what bounds the sequence)
        job: timed_graph(lambda launch=launch: module.launch(*launch, stream()))
        for job, launch in zip(jobs, recorder.launches, strict=True)
    }
    useful = frame.numel() + mask.numel() + net.numel() * 2  # frame in, mask + input out
    return bandwidth_summary(
        pre_ms=statistics.median(paired),
        pre_segments=best,
        sweep=sweep,
        separate_ms=statistics.median(separate),
        input_only_ms=input_only_ms,
        pre_hot_ms=pre_hot_ms,
        kernel_ms=kernel_ms,
        pre_bytes=useful,
        copy_ms=copy_ms,
        copy_bytes=2 * frame.numel(),
        large_copy_ms=big_ms,
        large_copy_bytes=2 * big_src.numel(),
    )


def bandwidth_summary(
    *,
    pre_ms: float,
    pre_segments: str,
    sweep: dict[str, float],
    separate_ms: float | None = None,
    input_only_ms: float,
    pre_hot_ms: float,
    pre_bytes: int,
    kernel_ms: dict[str, float] | None = None,
    copy_ms: float,
    copy_bytes: int,
    large_copy_ms: float,
    large_copy_bytes: int,
) -> dict[str, Any]:
    """The pre-kernels' achieved bandwidth (bytes they must move / time) against copies
    (bytes read + written / time) measured in the same run."""
    pre_bw = pre_bytes / (pre_ms * 1e-3)
    copy_bw = copy_bytes / (copy_ms * 1e-3)
    big_bw = large_copy_bytes / (large_copy_ms * 1e-3)
    return {
        "pre_ms": pre_ms,
        "pre_segments": pre_segments,
        "pre_ms_by_segments": sweep,
        "pre_separate_launches_ms": separate_ms,
        "input_kernels_ms": input_only_ms,
        "pre_hot_l2_ms": pre_hot_ms,
        "kernel_hot_l2_ms": kernel_ms or {},
        "pre_bytes": pre_bytes,
        "pre_GBps": pre_bw / 1e9,
        "same_size_copy_GBps": copy_bw / 1e9,
        "large_copy_GBps": big_bw / 1e9,
        "fraction_of_large_copy": pre_bw / big_bw,
        "fraction_of_same_size_copy": pre_bw / copy_bw,
    }


def paper_fps(module) -> dict[str, float]:
    """The pix2pix U-Net-256 (ngf 64, random weights) at 256x256: frame path and network."""
    from engine.models.paper_unet import PaperDesmoker

    backend = TorchCudaBackend()
    backend.load(PaperDesmoker(), default_config("paper"))
    frame = random_frame(256, 256, np.random.default_rng(1))
    options = dict(work_shape=(256, 256), small_patch=15, mask_patch=15)
    x = np.random.default_rng(2).random((1, 4, 256, 256), dtype=np.float32)
    return {
        "frame_path_fps": fps(lambda: backend.process_frame(frame, **options), 300),
        "run_fps": fps(lambda: backend.run(x), 300),
    }


# -- report ---------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    from engine.cuda.loader import driver_status, nvrtc_status

    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return {
        "gpu": torch.cuda.get_device_name(index),
        "compute_capability": list(torch.cuda.get_device_capability(index)),
        "multiprocessors": props.multi_processor_count,
        "memory_GiB": round(props.total_memory / 2**30, 1),
        "driver": driver_status()[1],
        "nvrtc": nvrtc_status()[1],
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def emulation_environment() -> dict[str, Any]:
    """environment()'s keys for an --emulate run: what ran instead of a GPU."""
    return {
        "gpu": EMULATION,
        "compute_capability": [],
        "driver": "no GPU",
        "nvrtc": "not used",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "kernels": "kernels.cu built for the CPU with g++, a thread per CUDA thread",
    }


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [
        f"# GPU check: {env['gpu']}",
        "",
        *recorded_lines(report),
        "",
        "## Correctness (max abs error against the CPU reference, poisoned outputs)",
        "",
        "| kernel | max abs error |",
        "|---|---|",
        *[f"| {k} | {v:g} |" for k, v in report["max_abs_error"].items()],
        "",
        f"Frames: {', '.join(report['frames'])}. Failures: "
        f"{'; '.join(report['failures']) if report['failures'] else 'none'}.",
        *end_to_end_lines(report.get("end_to_end") or {}),
        *speed_lines(report),
    ]
    if not report.get("emulated"):
        lines += [
            "",
            "Targets (issue 4): fast 1080p >= 240 fps -> "
            f"{figure(report['fast_1080p_fps'], '.0f')}; pre-kernel >= 50% of copy bandwidth "
            f"-> {figure(report['pre_kernel_bandwidth_fraction'], '.0%')}; paper 256 >= 920 "
            f"fps -> {figure(report['paper_256_fps'], '.0f')}.",
        ]
    if report.get("phase_errors"):
        lines += ["", "## Phases that failed", ""]
        lines += [f"- {name}: {why}" for name, why in report["phase_errors"].items()]
    return "\n".join(lines) + "\n"


def recorded_lines(report: dict[str, Any]) -> list[str]:
    """Where and how the check ran: the GPU, or (--emulate) that none did."""
    env = report["environment"]
    if report.get("emulated"):
        return [
            f"Recorded {report['date']} by `benchmarks/gpu_check.py --emulate`: NO GPU RAN. "
            f"The kernels ran in their host emulation ({env['kernels']}; torch {env['torch']}; "
            f"weights: {report['weights']}): their results against the CPU reference only, "
            "no timings, no TensorRT.",
        ]
    return [
        f"Recorded {report['date']} by `benchmarks/gpu_check.py`; compute "
        f"{'.'.join(map(str, env['compute_capability']))}, {env['driver']}, {env['nvrtc']}, "
        f"torch {env['torch']}; kernels: {env['kernels']}; weights: {report['weights']}.",
        f"TensorRT: {report['tensorrt'] or ABSENT_TRT}.",
    ]


def figure(value: float | None, spec: str) -> str:
    return "not measured (its phase failed)" if value is None else format(value, spec)


def listed_differences(diffs: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{d['frame']} mean {d['mean_abs']:.3f} max {d['max_abs']}"
        + ("" if d.get("mask_identical", True) else " (mask differs)")
        for d in diffs
    )


def end_to_end_lines(e2e: dict[str, Any]) -> list[str]:
    lines = []
    if e2e.get("fp16_vs_cpu"):
        lines += [
            "",
            "torch-cuda backend (fp16 network) against the CPU pipeline, desmoked "
            "levels: " + listed_differences(e2e["fp16_vs_cpu"]),
        ]
    app = e2e.get("app")
    if app:
        lines += [
            "",
            f"App pipeline (backend auto): {app['backend']}, "
            f"{app['fps_1080p']:.0f} fps at 1080p (host frame in, result out); "
            f"fused frame path {'off: ' + app['notice'] if app['notice'] else 'on'}; "
            "against the CPU pipeline: " + listed_differences(app["vs_cpu"]),
        ]
    oom = e2e.get("out_of_memory")
    if oom:
        lines += [
            "",
            f'Out of GPU memory at 4K (48 MB left): the pipeline says "{oom["notice"]}", '
            f"goes on with backend {oom['backend_after']}, and returns the frame "
            f"desmoked (against the CPU pipeline: mean {oom['mean_abs_vs_cpu']:.3f}, "
            f"max {oom['max_abs_vs_cpu']} levels).",
        ]
    return lines


def speed_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    if report.get("timings"):
        lines += [
            "",
            "## Speed (fast model, host frame in -> host mask + desmoked out)",
            "",
            "| resolution | working | upload | preprocess | network | restore | download "
            "| fps (graph) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for res, t in report["timings"].items():
            lines.append(
                f"| {res} | {t['working_shape']} | {t['upload']:.3f} | {t['preprocess']:.3f} | "
                f"{t['network']:.3f} | {t['restore']:.3f} | {t['download']:.3f} | "
                f"{t['fps']:.0f} |"
            )
        lines += [
            "",
            "Stage times are medians in ms of eager runs with CUDA events (the fps column "
            "replays the CUDA graph, wall clock, host copies included).",
        ]
        if all("graph" in t for t in report["timings"].values()):
            lines += [
                "",
                "Replaying the CUDA graph, medians in ms (host_in: frame into pinned memory; "
                "host_out: results out of it into fresh arrays; total: wall clock):",
                "",
                "| resolution | host_in | upload | gpu | download | host_out | total |",
                "|---|---|---|---|---|---|---|",
            ]
            for res, t in report["timings"].items():
                g = t["graph"]
                lines.append(
                    f"| {res} | {g['host_in']:.3f} | {g['upload']:.3f} | {g['gpu']:.3f} | "
                    f"{g['download']:.3f} | {g['host_out']:.3f} | {g['total']:.3f} |"
                )
    bw = report.get("bandwidth")
    if bw:
        lines += [
            "",
            f"Pre-kernels at 1080p: {bw['pre_ms'] * 1000:.1f} us cold L2 "
            f"({bw['pre_hot_l2_ms'] * 1000:.1f} "
            f"us hot) for {bw['pre_bytes'] / 1e6:.1f} MB -> {bw['pre_GBps']:.0f} GB/s; a 1 GiB "
            f"device copy {bw['large_copy_GBps']:.0f} GB/s, a frame-sized one "
            f"{bw['same_size_copy_GBps']:.0f} GB/s: {bw['fraction_of_large_copy']:.0%} / "
            f"{bw['fraction_of_same_size_copy']:.0%} of copy bandwidth"
            + (
                f" (four jobs paired in two launches; a launch a job: "
                f"{bw['pre_separate_launches_ms'] * 1000:.1f} us)"
                if bw.get("pre_separate_launches_ms")
                else ""
            )
            + ". Mask segment lengths "
            f"(rows/cols) swept, ms: {bw['pre_ms_by_segments']} (best {bw['pre_segments']}); "
            "the network input's jobs alone (resize + small dark channel): "
            f"{bw['input_kernels_ms'] * 1000:.1f} us. Each job alone, hot L2: "
            + ", ".join(f"{k} {v * 1000:.1f} us" for k, v in bw["kernel_hot_l2_ms"].items())
            + ".",
        ]
    paper = report.get("paper")
    if paper:
        lines += [
            "",
            f"Paper model at 256x256: {paper['frame_path_fps']:.0f} fps frame to frame, "
            f"{paper['run_fps']:.0f} fps through `run()` "
            f"({paper['frame_path_fps'] / PAPER_FPS:.1f}x the paper's {PAPER_FPS:.0f} fps).",
        ]
    return lines


def check_frames(args: argparse.Namespace, rng, seed: int) -> list[tuple[str, np.ndarray]]:
    sizes = ((720, 1280), (1080, 1920), (333, 517), (256, 256))
    real = real_frames(args.frames)
    if args.emulate:  # a thread per CUDA thread on the CPU: few, small frames (still > 256)
        sizes, real = ((288, 400),), [(n, shrink(f, 288)) for n, f in real[:2]]
    frames = [(f"random {h}x{w} (seed {seed})", random_frame(h, w, rng)) for h, w in sizes]
    return frames + real


def shrink(frame: np.ndarray, short_side: int) -> np.ndarray:
    scale = short_side / min(frame.shape[:2])
    size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def correctness(module, frames, weights: Path, emulate: bool, phases: Phases):
    errors = Errors()
    rng = np.random.default_rng(len(frames))
    for name, frame in frames:
        for half in (False, True):
            phases.run(
                f"pre-kernels fp{16 if half else 32} on {name}",
                check_pre,
                module,
                name,
                frame,
                errors,
                half,
            )
        phases.run(f"post-kernels on {name}", check_post, module, name, frame, errors, rng)
    print(f"kernels checked on {len(frames)} frames: {len(errors.failures)} failures", flush=True)
    picked = frames[:2] + [f for f in frames[2:] if not f[0].startswith("random")][:2]
    e2e = phases.run("end to end", end_to_end, module, weights, picked, errors, not emulate)
    return errors, e2e or {}


def speed(module, weights: Path, frame: np.ndarray, phases: Phases) -> dict[str, Any]:
    from engine.models import load_network

    network, _ = load_network(weights)
    backend = TorchCudaBackend()
    backend.load(network, default_config("fast"))
    path = backend.frame_path()
    if path is None:
        raise RuntimeError(f"no fused frame path: {backend.frame_path_reason}")
    timings = {}
    for res, (height, width) in RESOLUTIONS.items():
        resized = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
        measured = phases.run(
            f"timings {res}", stage_timings, path, resized, 30 if res == "4K" else 100
        )
        if measured:
            timings[res] = measured
            print(f"{res}: {measured}", flush=True)
    return {
        "timings": timings,
        "bandwidth": phases.run("pre-kernel bandwidth", pre_bandwidth, module),
        "paper": phases.run("paper model at 256x256", paper_fps, module),
    }


def run_check(args: argparse.Namespace) -> int:
    global DEVICE
    phases = Phases()
    if args.emulate and args.out and Path(args.out).resolve() == RESULTS:
        print(
            f"gpu_check: --emulate does not write to {RESULTS} (it holds GPU results): "
            "give another --out",
            file=sys.stderr,
        )
        return 2
    if args.emulate:
        from engine.cuda.emulation import EmulatedModule, build_library

        DEVICE = "cpu"
        module = EmulatedModule(build_library(Path(tempfile.mkdtemp(prefix="desmoke-emu-"))))
        env = emulation_environment()
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible to torch: nothing to check", file=sys.stderr)
        return 2
    else:
        from engine.cuda.loader import CudaModule

        env = environment()
        began = time.perf_counter()
        module = CudaModule(torch.cuda.current_device())
        env["kernels"] = f"{module.target}, compiled in {time.perf_counter() - began:.1f} s"
    print(f"gpu_check: {env['gpu']} {env.get('driver', '')} {env.get('nvrtc', '')}", flush=True)
    seed = int(time.time())
    frames = check_frames(args, np.random.default_rng(seed), seed)
    with tempfile.TemporaryDirectory() as scratch:
        weights, weights_note = fast_weights(Path(scratch))
        errors, e2e = correctness(module, frames, weights, args.emulate, phases)
        if args.emulate:
            return emulation_report(args, env, weights_note, frames, errors, e2e, phases)
        real = [f for f in frames if not f[0].startswith("random")] or frames
        e2e["app"] = phases.run("app pipeline (backend auto)", app_path, weights, real[:4])
        e2e["out_of_memory"] = phases.run("out of GPU memory at 4K", out_of_memory, weights)
        trt = phases.run("TensorRT", tensorrt_check, weights, frames, Path(scratch))
        measured = phases.run("speed", speed, module, weights, frames[0][1], phases) or {}
    report = assemble_report(env, weights_note, frames, errors, e2e, trt, measured, phases)
    write_report(report, Path(args.out or RESULTS))
    return 1 if errors.failures or phases.errors else 0


def emulation_report(
    args: argparse.Namespace,
    env: dict[str, Any],
    weights_note: str,
    frames: list[tuple[str, np.ndarray]],
    errors: Errors,
    e2e: dict[str, Any],
    phases: Phases,
) -> int:
    """The --emulate run's findings, printed, and written to --out when given."""
    report = assemble_report(env, weights_note, frames, errors, e2e, None, {}, phases)
    report["emulated"] = True
    if args.out:
        write_report(report, Path(args.out))
    else:
        print(json.dumps({k: report[k] for k in EMULATION_SUMMARY}, indent=2, default=str))
    return 1 if errors.failures or phases.errors else 0


def assemble_report(
    env: dict[str, Any],
    weights_note: str,
    frames: list[tuple[str, np.ndarray]],
    errors: Errors,
    e2e: dict[str, Any],
    trt: dict[str, Any] | None,
    measured: dict[str, Any],
    phases: Phases | None = None,
) -> dict[str, Any]:
    """Everything the run found, with the headline figures issue 4 asks for on top (None
    where the phase that measures one failed)."""
    timings = measured.get("timings") or {}
    bandwidth = measured.get("bandwidth") or {}
    paper = measured.get("paper") or {}
    return {
        "gpu": env["gpu"],
        "date": time.strftime("%Y-%m-%d"),
        "environment": env,
        "weights": weights_note,
        "frames": [name for name, _ in frames],
        "max_abs_error": errors.worst,
        "failures": errors.failures,
        "phase_errors": phases.errors if phases else {},
        "phase_seconds": phases.seconds if phases else {},
        "end_to_end": e2e,
        "tensorrt": trt["version"] if trt else None,
        "tensorrt_details": trt,
        **measured,
        "fast_1080p_fps": timings.get("1080p", {}).get("fps"),
        "pre_kernel_bandwidth_fraction": bandwidth.get("fraction_of_large_copy"),
        "paper_256_fps": paper.get("frame_path_fps"),
    }


def write_report(report: dict[str, Any], out: Path) -> None:
    """The JSON first: it holds whatever was measured even if the Markdown cannot be made."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"gpu_{slug(report['gpu'])}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    text = markdown(report)
    (out / f"{stem}.md").write_text(text)
    print(text)


def extract_frames(folder: Path) -> int:
    if folder.exists() and not folder.is_dir():
        print(f"gpu_check: {folder} is a file, not a folder for the frames", file=sys.stderr)
        return 1
    frames = real_frames(None)
    if not frames:
        data = os.environ.get("DESMOKE_DATA")
        where = f"no clip or image under DESMOKE_DATA={data}" if data else "DESMOKE_DATA unset"
        print(f"gpu_check: no real frames to extract ({where}; clips need PyAV)", file=sys.stderr)
        return 1
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"gpu_check: cannot make {folder}: {error.strerror}", file=sys.stderr)
        return 1
    for name, frame in frames:
        path = folder / f"{slug(name)}.png"
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    print(f"gpu_check: wrote {len(frames)} frames to {folder}")
    return 0 if frames else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, help="folder of real PNG/JPG frames")
    parser.add_argument(
        "--out", help=f"where the results go (default {RESULTS}; --emulate: printed only)"
    )
    parser.add_argument(
        "--extract-frames",
        type=Path,
        metavar="DIR",
        help="save real frames as PNGs for a GPU machine, then exit",
    )
    parser.add_argument(
        "--emulate",
        action="store_true",
        help="no GPU: check the kernels' maths in their host emulation only",
    )
    args = parser.parse_args(argv)
    if args.extract_frames:
        return extract_frames(args.extract_frames)
    return run_check(args)


if __name__ == "__main__":
    sys.exit(main())
