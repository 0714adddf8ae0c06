"""Full-resolution restoration from a low-resolution smoke layer.

Synthesis composites smoke as I = J (1 - alpha) + A alpha. Every smoke-layer method
(the `fast` network, the classical `dcp`) estimates alpha and the smoke colour A at the
working resolution; this module upsamples alpha edge-aware (a guided filter whose linear
coefficients are computed at low resolution and applied with the full-resolution frame as
guide: He & Sun's "fast guided filter") and inverts the compositing at full resolution:
J = (I - A alpha) / (1 - alpha) with alpha at most 1 - t_min (He et al.'s t >= t0: where
the smoke is too dense to invert, the frame is cleared as far as t_min allows and no
further, so a pixel of the smoke's own colour keeps it). Only a handful of per-pixel passes run at full
resolution, so the cost is nearly independent of the network's.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

#: Lower bound on the transmission 1 - alpha (He et al.'s t0): dense smoke cannot be
#: inverted, and dividing by a tiny number would amplify noise without bound.
DEFAULT_T_MIN = 0.1
DEFAULT_GUIDE_EPS = 1e-3
#: Rows per strip, as bytes of one float32 plane. Tried by hand at 1080p on 2 threads
#: (2 cores): 256 KiB 8.3 ms (more Python calls), 1 MiB 7.3 ms, 2 MiB 7.1 ms.
STRIP_BYTES = 1 << 20


@dataclass
class SmokeLayer:
    """Smoke opacity and colour at (usually) the working resolution.

    alpha: float32 HxW in [0, 1]; colour: float32 (3,) global RGB or hxwx3 map, in [0, 1].
    """

    alpha: np.ndarray
    colour: np.ndarray

    @property
    def level(self) -> float:
        """Mean opacity: a one-number smoke level for timelines and reports."""
        return float(self.alpha.mean())


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB (uint8 or float) -> float32 grey in [0, 1]."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if gray.dtype == np.uint8:
        return gray.astype(np.float32) * np.float32(1 / 255)
    return gray.astype(np.float32, copy=False)


def guide_radius(work_h: int, work_w: int) -> int:
    """The guided upsampling's window radius at the working resolution: about one cell of a
    smoke layer at 1/4 of it. Measured on the synthetic test split (fast model, 12 frames):
    radius 4 at a 256 px short side beat 8 by +0.007 SSIM; wider windows smear the alpha."""
    return max(2, min(work_h, work_w) // 64)


def guided_filter_coefficients(
    guide: np.ndarray, source: np.ndarray, radius: int, eps: float = DEFAULT_GUIDE_EPS
) -> tuple[np.ndarray, np.ndarray]:
    """Mean linear coefficients (a, b) of He et al.'s guided filter: q = a * guide + b."""
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, size, borderType=cv2.BORDER_REPLICATE)

    mean_i, mean_p = box(guide), box(source)
    cov_ip = box(guide * source) - mean_i * mean_p
    var_i = box(guide * guide) - mean_i * mean_i
    a = cov_ip / (var_i + np.float32(eps))
    b = mean_p - a * mean_i
    return box(a), box(b)


def upsampled_coefficients(
    alpha: np.ndarray,
    guide_low: np.ndarray,
    size: tuple[int, int],
    radius: int,
    eps: float = DEFAULT_GUIDE_EPS,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter's (a, b) at full resolution `size` (height, width), with the 1/255
    of a uint8 guide folded into `a`: alpha_full = a * gray_uint8 + b.

    guide_low: float32 grey in [0, 1] at the working resolution (alpha is resized to it).
    out: buffers to write into (two float32 arrays of `size`), else new ones.
    """
    if alpha.shape != guide_low.shape:
        alpha = cv2.resize(alpha, guide_low.shape[::-1], interpolation=cv2.INTER_LINEAR)
    a, b = guided_filter_coefficients(guide_low, alpha, radius, eps)
    height, width = size
    a_full, b_full = out if out is not None else (None, None)
    a_full = cv2.resize(
        a * np.float32(1 / 255), (width, height), dst=a_full, interpolation=cv2.INTER_LINEAR
    )
    b_full = cv2.resize(b, (width, height), dst=b_full, interpolation=cv2.INTER_LINEAR)
    return a_full, b_full


def guided_upsample(
    alpha: np.ndarray,
    guide_low: np.ndarray,
    gray_full: np.ndarray,
    radius: int,
    eps: float = DEFAULT_GUIDE_EPS,
) -> np.ndarray:
    """Upsample alpha to gray_full's size, edge-aware (float32 HxW in [0, 1]).

    guide_low: float32 grey in [0, 1] at the working resolution;
    gray_full: uint8 grey frame at full resolution.
    """
    a, b = upsampled_coefficients(alpha, guide_low, gray_full.shape, radius, eps)
    alpha_full = cv2.add(cv2.multiply(a, gray_full, dtype=cv2.CV_32F), b)
    return np.clip(alpha_full, 0.0, 1.0, out=alpha_full)


def restore(
    frame: np.ndarray,
    layer: SmokeLayer,
    guide_low: np.ndarray,
    *,
    strength: float = 1.0,
    t_min: float = DEFAULT_T_MIN,
    radius: int | None = None,
) -> np.ndarray:
    """Remove a smoke layer estimated at low resolution from the full-resolution frame.

    guide_low: the grey frame at the smoke layer's working resolution.
    strength scales the opacity (0 = untouched, 1 = full removal).
    One frame on the calling thread; a stream of frames goes faster through a `Restorer`.
    """
    return Restorer(threads=1).restore(
        frame, layer, guide_low, strength=strength, t_min=t_min, radius=radius
    )


class Restorer:
    """`restore` for a stream of frames: the same output to the bit, faster.

    Measured on 2 cores (benchmarks/results/restore_speed.md): new full-resolution arrays
    on every frame cost thousands of page faults a call whenever the allocator had given
    the memory back (16.5 ms instead of 4.7 at 720p), so every plane is kept between
    frames; and the per-pixel passes run in strips of rows on a few threads (OpenCV
    releases the GIL): about 1.4x over one thread at 1080p and 4K. Not for use by two threads at once:
    each processing thread owns its own.
    """

    def __init__(self, threads: int | None = None, strip_bytes: int = STRIP_BYTES) -> None:
        self.threads = threads or default_threads()
        self.strip_bytes = strip_bytes
        self._pool: ThreadPoolExecutor | None = None  # made on first use: see _strip_pool
        self._pool_pid = 0  # the process that made it
        self._planes: dict[str, np.ndarray] = {}

    def restore(
        self,
        frame: np.ndarray,
        layer: SmokeLayer,
        guide_low: np.ndarray,
        *,
        strength: float = 1.0,
        t_min: float = DEFAULT_T_MIN,
        radius: int | None = None,
    ) -> np.ndarray:
        """As the module's `restore`; the result is a new array (callers may keep it)."""
        if radius is None:
            radius = guide_radius(*guide_low.shape)
        alpha = layer.alpha if strength == 1.0 else layer.alpha * np.float32(strength)
        size = frame.shape[:2]
        coefficients = upsampled_coefficients(
            alpha, guide_low, size, radius, out=(self._plane("a", size), self._plane("b", size))
        )
        colour = _full_resolution_colour(layer.colour, size, self._plane("colour", (3, *size)))
        out = np.empty_like(frame)

        def strip(rows: slice) -> None:
            alpha_rows = _guided_alpha_rows(frame[rows], coefficients, rows)
            colour_rows = colour if colour.ndim == 1 else colour[:, rows]
            _invert_rows(frame[rows], alpha_rows, colour_rows, t_min, out[rows])

        strips = row_strips(*size, self.strip_bytes)
        pool = self._strip_pool()
        if pool is None:
            for rows in strips:
                strip(rows)
        else:
            for done in [pool.submit(strip, rows) for rows in strips]:
                done.result()
        return out

    def _strip_pool(self) -> ThreadPoolExecutor | None:
        """The threads for the strips (None: one thread, the caller's), made by this very
        process: a fork copies the pool but not its threads (a DataLoader worker forked
        after the parent desmoked a frame), and work sent to it would wait forever."""
        if self.threads <= 1:
            return None
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool, self._pool_pid = ThreadPoolExecutor(self.threads), os.getpid()
        return self._pool

    def _plane(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        plane = self._planes.get(name)
        if plane is None or plane.shape != shape:
            plane = self._planes[name] = np.empty(shape, np.float32)
        return plane


def default_threads() -> int:
    """Threads for the full-resolution passes: the cores, at most 8 (measured on 2)."""
    return max(1, min(os.cpu_count() or 1, 8))


def row_strips(height: int, width: int, strip_bytes: int = STRIP_BYTES) -> list[slice]:
    """Row ranges of about strip_bytes per float32 plane, the units of work for threads."""
    rows = max(8, strip_bytes // (4 * width))
    return [slice(top, min(top + rows, height)) for top in range(0, height, rows)]


def composite(clear: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """I = J (1 - alpha) + A alpha, float32 in [0, 1] (the model that `restore` inverts)."""
    alpha3 = alpha[..., None] if alpha.ndim == clear.ndim - 1 else alpha
    return clear * (1.0 - alpha3) + np.asarray(colour, dtype=np.float32) * alpha3


def _full_resolution_colour(
    colour: np.ndarray, size: tuple[int, int], out: np.ndarray | None = None
) -> np.ndarray:
    """A global (3,) colour as is; a colour map (hxwx3) as three planes at `size` (3xHxW)."""
    colour = np.asarray(colour, dtype=np.float32)
    if colour.ndim == 1:
        return colour
    height, width = size
    planes = out if out is not None else np.empty((3, height, width), np.float32)
    for c in range(3):
        cv2.resize(
            np.ascontiguousarray(colour[:, :, c]),
            (width, height),
            dst=planes[c],
            interpolation=cv2.INTER_LINEAR,
        )
    return planes


def _guided_alpha_rows(
    frame_rows: np.ndarray, coefficients: tuple[np.ndarray, np.ndarray], rows: slice
) -> np.ndarray:
    """alpha = clip(a * grey + b) for some rows of the frame (per-thread scratch)."""
    height, width = frame_rows.shape[:2]
    gray = _scratch("gray", height, width, np.uint8)
    cv2.cvtColor(frame_rows, cv2.COLOR_RGB2GRAY, dst=gray)
    alpha = _scratch("alpha", height, width)
    a, b = coefficients
    cv2.multiply(a[rows], gray, dst=alpha, dtype=cv2.CV_32F)
    cv2.add(alpha, b[rows], dst=alpha)
    return np.clip(alpha, 0.0, 1.0, out=alpha)


def _invert_rows(
    frame: np.ndarray, alpha: np.ndarray, colour: np.ndarray, t_min: float, out: np.ndarray
) -> None:
    """J = g I + c A into `out`, with alpha at most 1 - t_min: g = 1 / max(1 - alpha, t_min)
    and c = -255 alpha g = 255 (1 - g) (the same, with alpha clamped: no pass of its own),
    one channel at a time with OpenCV's saturating arithmetic (3x fewer passes than
    broadcasting three-channel float arrays in NumPy). colour: (3,) or 3xHxW. Clamping
    alpha, not only the divisor: dividing I - A alpha by t_min with alpha past 1 - t_min
    darkened what it could not invert (a white frame under dcp came out mid-grey, a flat
    frame under `fast` a dark rectangle)."""
    height, width = frame.shape[:2]
    gain = _scratch("gain", height, width)
    np.subtract(np.float32(1.0), alpha, out=gain)
    np.maximum(gain, np.float32(t_min), out=gain)
    cv2.divide(1.0, gain, dst=gain)
    offset = _scratch("offset", height, width)
    cv2.addWeighted(gain, -255.0, gain, 0.0, 255.0, dst=offset)
    planes = cv2.split(frame, [_scratch(f"in{c}", height, width, np.uint8) for c in range(3)])
    weighted = _scratch("weighted", height, width)
    scaled = _scratch("scaled", height, width)
    results = [_scratch(f"out{c}", height, width, np.uint8) for c in range(3)]
    for c, plane in enumerate(planes):
        if colour.ndim == 1:
            np.multiply(offset, colour[c], out=weighted)
        else:
            cv2.multiply(offset, colour[c], dst=weighted)
        cv2.multiply(plane, gain, dst=scaled, dtype=cv2.CV_32F)
        cv2.add(scaled, weighted, dst=results[c], dtype=cv2.CV_8U)
    cv2.merge(results, out)


_thread_scratch = threading.local()


def _scratch(name: str, height: int, width: int, dtype: type = np.float32) -> np.ndarray:
    """A per-thread buffer of at least height x width, reused from call to call (new
    arrays every frame cost page faults); a view of its first `height` rows."""
    buffers = _thread_scratch.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.shape[0] < height or buffer.shape[1] != width:
        buffer = buffers[name] = np.empty((height, width), dtype)
    return buffer[:height]
