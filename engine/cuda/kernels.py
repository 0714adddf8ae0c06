"""Launch geometry and arguments of the kernels in kernels.cu.

Every function takes a `module` with `launch(name, grid, block, shared, args, stream)`:
engine.cuda.loader.CudaModule on a GPU, engine.cuda.emulation.EmulatedModule on the CPU
(tests), so the same code computes grids, shared-memory sizes and argument lists for both.
Pointers are raw addresses (torch's `data_ptr()`, TensorRT's bindings); strides are in
elements, pitches in bytes.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Protocol

import cv2

from engine.models import working_interpolation

#: The default per-block dynamic shared memory every CUDA GPU gives without opting in.
SHARED_LIMIT = 48 * 1024
BLOCK_2D = (32, 8, 1)  # the post-processing kernels'
MODE_AREA, MODE_LINEAR = 0, 1


class KernelLimit(ValueError):
    """Sizes the kernels cannot run (shared memory, 32-bit indexing): the caller falls back
    to another path; the message says which value is too large and what fits."""


class KernelModule(Protocol):
    def launch(
        self,
        name: str,
        grid: tuple[int, int, int],
        block: tuple[int, int, int],
        shared: int,
        args: list,
        stream: int = 0,
    ) -> None: ...


@dataclass(frozen=True)
class Image:
    """Interleaved uint8 rows (RGB, or one byte a pixel for a mask): address and pitch."""

    ptr: int
    pitch: int


@dataclass(frozen=True)
class Planes:
    """Float planes (fp32, or fp16 when `half`): address and (channel, y, x) element strides."""

    ptr: int
    half: bool
    strides: tuple[int, int, int]


@dataclass(frozen=True)
class Panes:
    """Where the side-by-side export's other panes go (written in the post-kernel's pass)."""

    original: Image | None = None
    mask: Image | None = None  # the mask to show (uint8, one byte a pixel)
    mask_pane: Image | None = None  # where it goes, as grey RGB


def _ptr(value: int | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(int(value or 0))


def _int(value: int) -> ctypes.c_int:
    return ctypes.c_int(int(value))


def _grid(width: int, height: int, block: tuple[int, int, int]) -> tuple[int, int, int]:
    return (-(-width // block[0]), -(-height // block[1]), 1)


def _radius(patch: int) -> int:
    if patch < 1 or patch % 2 == 0:
        raise ValueError(f"patch size must be a positive odd number, got {patch}")
    return patch // 2


def resize_mode(height: int, width: int, work_h: int, work_w: int) -> int:
    """The pipeline's choice (engine.models.working_interpolation) as the kernel's mode."""
    area = working_interpolation(height, width, work_h, work_w) == cv2.INTER_AREA
    return MODE_AREA if area else MODE_LINEAR


# -- pre-processing: four jobs, two launches (see kernels.cu) ---------------------------
#: Threads of every pre-processing block (kernels.cu reads it from blockDim.x).
BLOCK_THREADS = 256
#: Outputs a row of an input_rgb tile (tiles are RGB_TILE_W x BLOCK_THREADS / RGB_TILE_W).
RGB_TILE_W = 32


class InputRgbJob(ctypes.Structure):
    _fields_ = [
        ("frame", ctypes.c_void_p), ("out", ctypes.c_void_p), ("guide", ctypes.c_void_p),
        *[(name, ctypes.c_int) for name in (
            "grid_x", "tile_w", "frame_pitch", "src_h", "src_w", "out_half", "stride_c",
            "stride_y", "stride_x", "dst_h", "dst_w", "mode", "ties_up",
        )],
    ]  # fmt: skip


class InputDarkJob(ctypes.Structure):
    _fields_ = [
        ("planes", ctypes.c_void_p),
        *[(name, ctypes.c_int) for name in (
            "grid_x", "tile_w", "tile_h", "half", "stride_c", "stride_y", "stride_x", "h",
            "w", "radius",
        )],
    ]  # fmt: skip


class MaskRowsJob(ctypes.Structure):
    _fields_ = [
        ("frame", ctypes.c_void_p), ("scratch", ctypes.c_void_p),
        *[(name, ctypes.c_int) for name in (
            "grid_x", "frame_pitch", "h", "w", "scratch_pitch", "radius", "segments", "len",
            "rows",
        )],
    ]  # fmt: skip


class MaskColsJob(ctypes.Structure):
    _fields_ = [
        ("scratch", ctypes.c_void_p), ("mask", ctypes.c_void_p),
        *[(name, ctypes.c_int) for name in (
            "grid_x", "scratch_pitch", "h", "w", "mask_pitch", "mask_aligned", "radius", "len",
            "threads",
        )],
    ]  # fmt: skip


@dataclass(frozen=True)
class Job:
    """One job's share of a launch: its struct argument, blocks and shared bytes."""

    args: ctypes.Structure
    blocks: int
    shared: int

    @classmethod
    def idle(cls, kind: type[ctypes.Structure]) -> Job:
        return cls(kind(), 0, 0)


def _job(args: ctypes.Structure, grid: tuple[int, int], shared: int = 0) -> Job:
    args.grid_x = grid[0]
    return Job(args, grid[0] * grid[1], shared)


def _tiles(width: int, height: int, tile_w: int, tile_h: int) -> tuple[int, int]:
    return -(-width // tile_w), -(-height // tile_h)


def _launch_pair(module: KernelModule, stream: int, kernel: str, first: Job, second: Job) -> None:
    """One launch of `kernel`: the first job's blocks, then the second's."""
    blocks = first.blocks + second.blocks
    if blocks == 0:
        return
    module.launch(
        kernel,
        (blocks, 1, 1),
        (BLOCK_THREADS, 1, 1),
        max(first.shared, second.shared),
        [_int(first.blocks), first.args, second.args],
        stream,
    )


DARK_TILES = ((32, 8), (16, 8), (8, 8))  # input_dark's tiles, widest first


def _dark_shared(tile: tuple[int, int], radius: int) -> int:
    span_w, span_h = tile[0] + 2 * radius, tile[1] + 2 * radius
    return 4 * (span_w * span_h + span_h * tile[0])


def _largest_dark_radius() -> int:
    radius = 0
    while _dark_shared(DARK_TILES[-1], radius + 1) <= SHARED_LIMIT:
        radius += 1
    return radius


#: The largest working-resolution patch input_dark takes (its smallest tile + halo fit).
MAX_SMALL_PATCH = 2 * _largest_dark_radius() + 1


def small_dark_geometry(radius: int) -> tuple[tuple[int, int], int]:
    """Tile and shared bytes of input_dark: a tile plus its halo must fit."""
    for tile in DARK_TILES:
        shared = _dark_shared(tile, radius)
        if shared <= SHARED_LIMIT:
            return tile, shared
    raise KernelLimit(
        f"working-resolution patch {2 * radius + 1} is over the GPU kernels' limit of "
        f"{MAX_SMALL_PATCH}: a smaller patch size or working size keeps the frame on the GPU"
    )


#: Segment lengths (outputs a thread) of the mask's row and column passes; a segment of
#: `len` costs win + len - 1 loads, shorter ones give more threads. Tunable on a GPU
#: (benchmarks/gpu_check.py sweeps them; 8/8 was the fastest of five on an H200 at 1080p
#: with one launch a pass: all pre-kernels 39.5 us, against 42.1 for 16/8 and 52.5 for
#: 32/16); any value gives the same result.
ROW_SEGMENT = 8
COL_SEGMENT = 8


def mask_rows_geometry(radius: int, segment: int = ROW_SEGMENT) -> tuple[int, int, int, int]:
    """(segment length, segments per row, rows per block, shared bytes) of mask_rows."""
    win = 2 * radius + 1
    length = max(1, min(segment, win))
    segments = max(1, min(32, -(-128 // length)))
    per_row = 2 * segments * length + 2 * radius
    rows = min(BLOCK_THREADS // segments, 32, SHARED_LIMIT // per_row)
    if rows < 1:
        raise KernelLimit(f"display patch {win} is too large for the GPU kernels")
    return length, segments, rows, rows * per_row


def mask_cols_geometry(radius: int, segment: int = COL_SEGMENT) -> tuple[int, int, int]:
    """(segment length, threads per block, shared bytes) of mask_cols: `len` words a
    thread in shared memory."""
    length = max(1, min(segment, 2 * radius + 1))
    threads = min(BLOCK_THREADS, SHARED_LIMIT // (4 * length))
    if threads >= 32:
        threads -= threads % 32
    return length, threads, 4 * length * threads


def check_indexing(height: int, width: int, work_h: int, work_w: int) -> None:
    """KernelLimit where the resize's products of sizes overflow the kernels' 32-bit ints."""
    if max(work_w * width, work_h * height) >= 2**31:
        raise KernelLimit(
            f"{width}x{height} frames at a {work_w}x{work_h} working size are too large for "
            "the GPU kernels: a smaller working size keeps the frame on the GPU"
        )


def check_frame(
    height: int, width: int, work_h: int, work_w: int, small_patch: int, mask_patch: int
) -> None:
    """Whether `preprocess` can run these sizes and patches (with the display mask), before
    anything is allocated or launched: KernelLimit saying what is too large, ValueError
    for a patch that is not a positive odd number."""
    check_indexing(height, width, work_h, work_w)
    small_dark_geometry(_radius(small_patch))
    mask_rows_geometry(_radius(mask_patch))


def scratch_pitch(width: int) -> int:
    """Row pitch of the mask's scratch buffer: >= width, a multiple of 16 (word reads)."""
    return -(-width // 16) * 16


def _input_jobs(
    frame: Image,
    height: int,
    width: int,
    net_input: Planes,
    work_h: int,
    work_w: int,
    small_patch: int,
    guide: int,
) -> tuple[Job, Job]:
    check_indexing(height, width, work_h, work_w)
    sc, sy, sx = net_input.strides
    half = int(net_input.half)
    rgb = InputRgbJob(
        frame=frame.ptr, out=net_input.ptr, guide=guide or None, tile_w=RGB_TILE_W,
        frame_pitch=frame.pitch, src_h=height, src_w=width, out_half=half, stride_c=sc,
        stride_y=sy, stride_x=sx, dst_h=work_h, dst_w=work_w,
        mode=resize_mode(height, width, work_h, work_w),
        ties_up=int(height == 2 * work_h and width == 2 * work_w),
    )  # fmt: skip
    radius = _radius(small_patch)
    tile, shared = small_dark_geometry(radius)
    dark = InputDarkJob(
        planes=net_input.ptr, tile_w=tile[0], tile_h=tile[1], half=half, stride_c=sc,
        stride_y=sy, stride_x=sx, h=work_h, w=work_w, radius=radius,
    )  # fmt: skip
    rgb_tiles = _tiles(work_w, work_h, RGB_TILE_W, BLOCK_THREADS // RGB_TILE_W)
    return _job(rgb, rgb_tiles), _job(dark, _tiles(work_w, work_h, *tile), shared)


def _mask_jobs(
    frame: Image,
    height: int,
    width: int,
    mask: Image,
    scratch: Image,
    patch: int,
    segments: tuple[int, int],
) -> tuple[Job, Job]:
    if scratch.pitch % 4 or scratch.pitch < -(-width // 4) * 4:
        raise ValueError(f"scratch pitch {scratch.pitch} must be a multiple of 4, >= width")
    radius = _radius(patch)
    length, per_row, rows, shared = mask_rows_geometry(radius, segments[0])
    row_job = MaskRowsJob(
        frame=frame.ptr, scratch=scratch.ptr, frame_pitch=frame.pitch, h=height, w=width,
        scratch_pitch=scratch.pitch, radius=radius, segments=per_row, len=length, rows=rows,
    )  # fmt: skip
    rows_pass = _job(row_job, _tiles(width, height, per_row * length, rows), shared)
    length, threads, shared = mask_cols_geometry(radius, segments[1])
    col_job = MaskColsJob(
        scratch=scratch.ptr, mask=mask.ptr, scratch_pitch=scratch.pitch, h=height, w=width,
        mask_pitch=mask.pitch, mask_aligned=int(mask.ptr % 4 == 0 and mask.pitch % 4 == 0),
        radius=radius, len=length, threads=threads,
    )  # fmt: skip
    cols_pass = _job(col_job, _tiles(-(-width // 4), height, threads, length), shared)
    return rows_pass, cols_pass


def preprocess(
    module: KernelModule,
    stream: int,
    *,
    frame: Image,
    height: int,
    width: int,
    net_input: Planes,
    work_h: int,
    work_w: int,
    small_patch: int,
    guide: int = 0,
    mask: Image | None = None,
    scratch: Image | None = None,
    mask_patch: int = 1,
    segments: tuple[int, int] = (ROW_SEGMENT, COL_SEGMENT),
    paired: bool = True,
) -> None:
    """Frame -> network input (RGB in [0, 1] + dark channel) and, if asked, the display mask.

    guide: optional float32 work_h x work_w buffer for the grey guide of the guided filter.
    mask needs scratch (height rows of `scratch_pitch(width)` bytes).
    paired=False launches each job on its own (benchmarks compare the two plans).
    """
    if min(height, width, work_h, work_w) < 1:
        raise ValueError(f"empty frame or working shape: {height}x{width} -> {work_h}x{work_w}")
    rgb, dark = _input_jobs(frame, height, width, net_input, work_h, work_w, small_patch, guide)
    if mask is None:
        rows, cols = Job.idle(MaskRowsJob), Job.idle(MaskColsJob)
    elif scratch is None:
        raise ValueError("the display mask needs a scratch buffer")
    else:
        rows, cols = _mask_jobs(frame, height, width, mask, scratch, mask_patch, segments)
    if paired:
        _launch_pair(module, stream, "pre_pass_one", rgb, rows)
        _launch_pair(module, stream, "pre_pass_two", dark, cols)
        return
    _launch_pair(module, stream, "pre_pass_one", rgb, Job.idle(MaskRowsJob))
    _launch_pair(module, stream, "pre_pass_two", dark, Job.idle(MaskColsJob))
    _launch_pair(module, stream, "pre_pass_one", Job.idle(InputRgbJob), rows)
    _launch_pair(module, stream, "pre_pass_two", Job.idle(InputDarkJob), cols)


def display_mask(
    module: KernelModule,
    stream: int,
    frame: Image,
    height: int,
    width: int,
    mask: Image,
    scratch: Image,
    patch: int,
    segments: tuple[int, int] = (ROW_SEGMENT, COL_SEGMENT),
) -> None:
    """engine.dark_channel.dark_channel(frame, patch) as uint8, alone (two launches).
    segments: (row pass, column pass) segment lengths (tuning only)."""
    rows, cols = _mask_jobs(frame, height, width, mask, scratch, patch, segments)
    _launch_pair(module, stream, "pre_pass_one", Job.idle(InputRgbJob), rows)
    _launch_pair(module, stream, "pre_pass_two", Job.idle(InputDarkJob), cols)


def _pane_args(panes: Panes | None) -> list:
    panes = panes or Panes()
    original, mask, pane = panes.original, panes.mask, panes.mask_pane
    return [
        _ptr(original.ptr if original else 0), _int(original.pitch if original else 0),
        _ptr(mask.ptr if mask else 0), _int(mask.pitch if mask else 0),
        _ptr(pane.ptr if pane else 0), _int(pane.pitch if pane else 0),
    ]  # fmt: skip


def restore_smoke_layer(
    module: KernelModule,
    stream: int,
    *,
    frame: Image,
    height: int,
    width: int,
    coef: int,
    coef_h: int,
    coef_w: int,
    colour: int,
    colour_h: int,
    colour_w: int,
    t_min: float,
    out: Image,
    panes: Panes | None = None,
) -> None:
    """engine.restore.restore on the device: coef = guided-filter a then b planes (float32,
    coef_h x coef_w each), colour = 3 float32 planes (1 x 1 for a global colour)."""
    module.launch(
        "restore_smoke_layer",
        _grid(width, height, BLOCK_2D),
        BLOCK_2D,
        0,
        [
            _ptr(frame.ptr), _int(frame.pitch), _int(height), _int(width),
            _ptr(coef), _int(coef_h), _int(coef_w),
            _ptr(colour), _int(colour_h), _int(colour_w), ctypes.c_float(t_min),
            _ptr(out.ptr), _int(out.pitch), *_pane_args(panes),
        ],
        stream,
    )  # fmt: skip


def restore_paper(
    module: KernelModule,
    stream: int,
    *,
    frame: Image,
    height: int,
    width: int,
    restored: int,
    work_h: int,
    work_w: int,
    net_input: Planes,
    strength: float,
    out: Image,
    panes: Panes | None = None,
) -> None:
    """The `paper` model's output (3 float32 planes at the working size) onto the frame."""
    sc, sy, sx = net_input.strides
    module.launch(
        "restore_paper",
        _grid(width, height, BLOCK_2D),
        BLOCK_2D,
        0,
        [
            _ptr(frame.ptr), _int(frame.pitch), _int(height), _int(width),
            _ptr(restored), _int(work_h), _int(work_w),
            _ptr(net_input.ptr), _int(net_input.half), _int(sc), _int(sy), _int(sx),
            ctypes.c_float(255.0 * strength), _ptr(out.ptr), _int(out.pitch),
            *_pane_args(panes),
        ],
        stream,
    )  # fmt: skip
