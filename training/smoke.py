"""Synthetic surgical smoke: seeded fBm opacity fields composited over clear frames.

The compositing model is the one the engine inverts (engine.restore.composite):
I = J (1 - alpha) + A alpha, with the ground-truth alpha and smoke colour A kept, so a
network can be supervised on the smoke layer as well as on the restored frame.

Noise: fractal Brownian motion of value noise in the spirit of python-clouds (6 octaves,
lacunarity ~1.84, gain ~0.6, zoom, offset, anisotropy, edge fade), but vectorised: every
octave is a small random lattice that cv2.warpAffine samples with bicubic interpolation
(rotation, anisotropy and sub-pixel offset are one affine map; BORDER_WRAP makes the
lattice periodic so a clip can drift without bound). Smoke is low-frequency, so the
octaves are rendered at a reduced working resolution (finest lattice cell >= 4 px) and
upsampled once. Time evolves the lattice values smoothly (Catmull-Rom across seeded
lattice slices), so clips drift and change without flicker. Nothing is pre-rendered.

Guard against "bright and grey = smoke" (a real failure of a model trained on smoke
only): some samples keep smoke away from bright low-saturation regions (instruments,
specular highlights), and some get a synthetic metal instrument shaft and speculars
painted into the *background* (so they are in the clear target too, with alpha zero).
"""

from __future__ import annotations

import logging
import math
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.restore import composite

#: Finest lattice cell (in working-resolution pixels) before the octaves are upsampled:
#: bicubic value noise at >= 4 px per cell is smooth, so rendering finer is wasted work.
MIN_CELL_PX = 4.0
#: Standard deviation of fbm_field's output at the default octaves/lacunarity/gain,
#: measured over 50 fields per zoom (0.10 at zoom 2, 0.125 at zoom 0.4-1). A fixed constant, not a
#: per-field statistic, so the shaping of a clip's frames does not flicker.
FBM_STD = 0.12

Range = tuple[float, float]


@dataclass(frozen=True)
class SmokeConfig:
    """Random ranges of the synthesis; every range is sampled uniformly (zoom log-uniformly)."""

    octaves: int = 6
    lacunarity: float = 1.84
    gain: float = 0.6
    density: Range = (0.05, 0.95)  # peak opacity of the plumes
    haze_probability: float = 0.3
    haze: Range = (0.0, 0.25)  # uniform opacity added under the plumes
    colour_white: tuple[float, float, float] = (1.0, 1.0, 1.0)
    colour_yellow: tuple[float, float, float] = (0.82, 0.78, 0.60)  # grey-yellow end
    colour_brightness: Range = (0.7, 1.0)
    # Tinted smoke: light scattered off tissue colours the smoke (pink, lilac, ...). With
    # this probability the colour is moved off the grey axis by a chroma drawn from `tint`
    # (RGB distance, 0-1 scale) at a random hue. 0 (default: the test split's synthesis)
    # draws nothing, so the default random stream is unchanged.
    tint_probability: float = 0.0
    tint: Range = (0.0, 0.15)
    zoom: Range = (0.4, 2.0)  # > 1: larger features
    anisotropy: Range = (1.0, 3.0)  # plume elongation
    coverage: Range = (-1.5, 1.0)  # fBm threshold in standard deviations (lower: more smoke)
    softness: Range = (0.8, 3.5)  # width of the threshold ramp, in standard deviations
    plume_probability: float = 0.6  # a localised plume envelope (position and scale)
    plume_scale: Range = (0.2, 0.7)  # envelope sigma as a fraction of the long side
    edge_fade: bool = True
    edge_fade_width: Range = (0.0, 0.15)  # fraction of the short side
    augment_probability: float = 0.5  # each augmentation independently
    speckle: Range = (0.0, 0.06)  # multiplicative speckle on the smoke opacity
    # Speckle grain: cells across the frame's short side, the same fraction of the scene at
    # every resolution (real smoke has no per-pixel noise at 720p). 64 matches the smoke
    # layer's grid at the default working size; per-pixel speckle capped the test SSIM.
    speckle_cells: int = 64
    hue_shift_deg: Range = (-10.0, 10.0)
    # Camera white balance: with this probability each channel of the clear frame is scaled
    # by a gain drawn from `white_balance` (a purple or blue cast with little contrast loss
    # is not smoke). 0 (default) draws nothing: the default random stream is unchanged.
    white_balance_probability: float = 0.0
    white_balance: Range = (0.8, 1.25)
    # Flat frames (the scope pressed against tissue, an overexposed view): with this
    # probability the clear frame loses its detail, keeping a `flat_detail` fraction of it
    # over a smooth field of its own colours or, half of the time, over one random colour.
    # Such a frame gives the network nothing to take for tissue under smoke: it must be
    # left as it is, and smoke drifting over it removed. 0 (default) draws nothing.
    flat_probability: float = 0.0
    flat_detail: Range = (0.0, 0.15)
    darken: Range = (0.6, 1.0)  # background brightness factor
    gamma: Range = (0.8, 1.6)  # background gamma (> 1 darkens)
    blur_sigma: Range = (0.5, 1.5)  # background Gaussian blur
    avoid_bright_probability: float = 0.35  # keep smoke off bright grey regions
    instrument_probability: float = 0.25  # paint a synthetic metal shaft + speculars
    # Shaft brightness before shading. Real shafts go down to matte black, which under
    # haze looks like grey smoke over dark tissue: without dark shafts in training the
    # network over-corrects them to black (measured on DeSmoke-LAP, see the model card).
    instrument_grey: Range = (0.45, 0.85)
    instrument_thickness: Range = (0.04, 0.12)  # fraction of the short side
    drift: Range = (0.3, 2.0)  # clip: field drift in pixels per frame (at 512 px)
    evolution: Range = (0.02, 0.08)  # clip: lattice slices per frame (shape change)

    def __post_init__(self) -> None:
        for name in _FIELD_BOUNDS:
            _check_field(name, getattr(self, name))
        _check_finest_lattice(self)


#: A bound on every number of a field: the words an error shows, and the test (written as
#: what is allowed, so NaN fails it).
Bound = tuple[str, Callable[[float], bool]]

_UNIT: Bound = ("in [0, 1]", lambda v: 0.0 <= v <= 1.0)
_POSITIVE: Bound = ("> 0", lambda v: v > 0.0)
_NON_NEGATIVE: Bound = (">= 0", lambda v: v >= 0.0)
_FREE: Bound = ("anything", lambda v: True)

#: Every SmokeConfig field, once, with what the synthesis can do with each of its numbers
#: (each end of a range, each channel of a colour). Ranges must also have low <= high.
_FIELD_BOUNDS: dict[str, Bound] = {
    "octaves": (">= 1", lambda v: v >= 1),  # at most: _check_finest_lattice
    # Each octave finer than the last is what fBm is; at 1 or below the "fine" octaves
    # would be as coarse or coarser (and 0 divides by 0).
    "lacunarity": ("> 1", lambda v: v > 1.0),
    # Each octave's weight relative to the last: below 0 the weights can sum to 0 (the
    # field is divided by the sum); above 1 fine noise outweighs the low-frequency plumes.
    "gain": _UNIT,
    "density": _UNIT,
    "haze_probability": _UNIT,
    "haze": _UNIT,  # an opacity: above 1 the whole frame turns opaque, below 0 it is skipped
    "colour_white": _UNIT,  # RGB: the smoke colour is clipped to [0, 1]
    "colour_yellow": _UNIT,
    "colour_brightness": _UNIT,
    "tint_probability": _UNIT,
    "tint": _UNIT,  # a chroma: an RGB distance
    "zoom": _POSITIVE,  # drawn log-uniformly
    # The angle is drawn in [0, pi): below 1 the cell is elongated across it instead.
    "anisotropy": _POSITIVE,
    "coverage": _FREE,  # a threshold in standard deviations: beyond ~4, all smoke or none
    "softness": _NON_NEGATIVE,  # 0: a hard edge
    "plume_probability": _UNIT,
    "plume_scale": _POSITIVE,  # a Gaussian's sigma: 0 divides by 0
    "edge_fade": _FREE,
    # Each side's ramp; at 0.5 the ramps meet in the middle, beyond it no pixel is opaque.
    "edge_fade_width": ("in [0, 0.5]", lambda v: 0.0 <= v <= 0.5),
    "augment_probability": _UNIT,
    "speckle": _NON_NEGATIVE,  # a standard deviation
    # A cell per pixel of a 4K frame's short side (2160) is per-pixel noise already; a
    # larger grid would only fill memory.
    "speckle_cells": ("in [1, 4096]", lambda v: 1 <= v <= 4096),
    "hue_shift_deg": _FREE,  # hue is cyclic
    "white_balance_probability": _UNIT,
    "white_balance": _POSITIVE,  # channel gains: 0 would black out a channel
    "flat_probability": _UNIT,
    "flat_detail": _UNIT,  # a fraction of the frame's detail kept
    "darken": _POSITIVE,  # a brightness factor: 0 would black out the frame
    "gamma": _POSITIVE,  # x ** 0 is white; a negative power inverts the frame
    # In pixels: at 100 a 720p frame is a smear already, and cv2's kernel grows with
    # sigma until it exhausts memory.
    "blur_sigma": ("in [0, 100]", lambda v: 0.0 <= v <= 100.0),
    "avoid_bright_probability": _UNIT,
    "instrument_probability": _UNIT,
    "instrument_grey": _UNIT,
    "instrument_thickness": ("in (0, 1]", lambda v: 0.0 < v <= 1.0),  # of the short side
    "drift": _NON_NEGATIVE,  # a speed: the heading is drawn apart
    "evolution": _NON_NEGATIVE,  # a rate: below 0 the same change would run backwards
}

_RANGE_FIELDS = frozenset(
    name for name, hint in typing.get_type_hints(SmokeConfig).items() if hint == Range
)

#: Most cells of the finest octave's lattice across the frame (about 4x the default's):
#: the lattices fbm_field allocates grow as its square, whatever the frame size.
MAX_FINEST_CELLS = 1024.0


def _check_field(name: str, value: typing.Any) -> None:
    if name in _RANGE_FIELDS and not value[0] <= value[1]:
        raise ValueError(f"{name} range must be (low, high) with low <= high, got {value}")
    words, allowed = _FIELD_BOUNDS[name]
    if not all(allowed(v) for v in (value if isinstance(value, tuple) else (value,))):
        raise ValueError(f"{name} must be {words}, got {value}")


def _check_finest_lattice(config: SmokeConfig) -> None:
    """octaves, lacunarity, zoom and anisotropy together set the finest lattice's size:
    3 / zoom cells across the frame at the first octave (fbm_field's cell), times
    lacunarity per octave, times sqrt(elongation) along the plume. Logs: no overflow."""
    elongation = max(config.anisotropy[1], 1.0 / config.anisotropy[0])
    log_cells = (
        math.log(3.0 / config.zoom[0])
        + 0.5 * math.log(elongation)
        + (config.octaves - 1) * math.log(config.lacunarity)
    )
    if log_cells > math.log(MAX_FINEST_CELLS):
        cells = math.exp(log_cells) if log_cells < 700.0 else math.inf
        raise ValueError(
            f"octaves {config.octaves}, lacunarity {config.lacunarity}, zoom {config.zoom} "
            f"and anisotropy {config.anisotropy} make the finest noise {cells:.3g} cells "
            f"across the frame, at most {MAX_FINEST_CELLS:.0f}: fewer octaves, a smaller "
            "lacunarity, a larger zoom or less anisotropy"
        )


@dataclass
class SmokeSample:
    """One training pair: smoky = composite(clear, alpha, colour), all float32 in [0, 1]."""

    smoky: np.ndarray  # HxWx3
    clear: np.ndarray  # HxWx3, after background augmentation
    alpha: np.ndarray  # HxW
    colour: np.ndarray  # (3,)


# ----------------------------------------------------------------------------- noise


def _lattice(seed: int, slice_index: int, shape: tuple[int, int]) -> np.ndarray:
    """One time slice of an octave's lattice: uniform values in [-1, 1], seeded by index."""
    rng = np.random.default_rng((seed, slice_index + 2**31))  # SeedSequence needs >= 0
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def _lattice_at(seed: int, time: float, shape: tuple[int, int]) -> np.ndarray:
    """Lattice values at a real time: Catmull-Rom across integer slices (C1 in time)."""
    base = math.floor(time)
    t = float(time - base)  # a NumPy float64 would promote the lattice to float64
    if t == 0.0:
        return _lattice(seed, base, shape)
    p0, p1, p2, p3 = (_lattice(seed, base + k, shape) for k in (-1, 0, 1, 2))
    t2, t3 = t * t, t * t * t
    # float32 matters: cv2.warpAffine with BORDER_WRAP returns zeros for float64 (cv2 5.0).
    return np.float32(0.5) * (
        2 * p1
        + (p2 - p0) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
        + (3 * p1 - p0 - 3 * p2 + p3) * t3
    )


def fbm_field(
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    octaves: int = 6,
    lacunarity: float = 1.84,
    gain: float = 0.6,
    zoom: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
    anisotropy: float = 1.0,
    time: float = 0.0,
    angle: float = 0.0,
) -> np.ndarray:
    """Fractal value noise, float32 HxW in [0, 1] (mean 0.5, std ~FBM_STD).

    zoom: base lattice cell = zoom * long side / 3 (larger = coarser features).
    offset: (dx, dy) in output pixels; the field translates rigidly (drift).
    anisotropy: cell stretched along `angle` (radians) by sqrt(a), shrunk across by sqrt(a).
    time: lattice slices (an octave k evolves (1 + k/2) times as fast: turbulence).
    rng: consumes exactly `octaves` integers, so the same rng state gives the same lattices.
    """
    if height < 1 or width < 1:
        raise ValueError(f"field size must be positive, got {height}x{width}")
    seeds = rng.integers(0, 2**31 - 1, size=octaves)
    cell = zoom * max(height, width) / 3.0
    stretch = math.sqrt(max(anisotropy, 1e-3))
    finest = cell / stretch / lacunarity ** (octaves - 1)
    scale = min(1.0, finest / MIN_CELL_PX)
    work_h, work_w = max(2, math.ceil(height * scale)), max(2, math.ceil(width * scale))
    # Output pixel -> centred full-resolution coordinates -> rotated -> lattice units.
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    sx, sy = width / work_w, height / work_h  # work pixel -> full-resolution pixel
    cx, cy = width / 2.0 - offset[0], height / 2.0 - offset[1]
    extent = math.hypot(height, width) + 2.0
    total = np.zeros((work_h, work_w), np.float32)
    amplitude, norm = 1.0, 0.0
    for k in range(octaves):
        cell_u = cell * stretch / lacunarity**k
        cell_v = cell / stretch / lacunarity**k
        n_u = max(4, math.ceil(extent / cell_u) + 1)
        n_v = max(4, math.ceil(extent / cell_v) + 1)
        lattice = _lattice_at(int(seeds[k]), time * (1 + 0.5 * k), (n_v, n_u))
        # (work x, y) -> lattice (u, v): full-resolution pixel centre, minus the field
        # centre, rotated and divided by the cell, plus the lattice centre.
        rot = np.array([[cos_a / cell_u, sin_a / cell_u], [-sin_a / cell_v, cos_a / cell_v]])
        a = rot @ np.diag([sx, sy])
        t = rot @ np.array([0.5 * sx - 0.5 - cx, 0.5 * sy - 0.5 - cy]) + [n_u / 2.0, n_v / 2.0]
        t = np.mod(t, [n_u, n_v])  # the lattice is periodic: keep the translation small
        matrix = np.hstack([a, t[:, None]]).astype(np.float64)
        layer = cv2.warpAffine(
            lattice,
            matrix,
            (work_w, work_h),
            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_WRAP,
        )
        total += np.float32(amplitude) * layer
        norm += amplitude
        amplitude *= gain
    if (work_h, work_w) != (height, width):
        total = cv2.resize(total, (width, height), interpolation=cv2.INTER_LINEAR)
    total *= np.float32(0.5 / norm)
    total += np.float32(0.5)
    return np.clip(total, 0.0, 1.0, out=total)


# ----------------------------------------------------------------------------- helpers


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - np.float32(edge0)) / np.float32(max(edge1 - edge0, 1e-6)), 0.0, 1.0)
    return t * t * (np.float32(3.0) - np.float32(2.0) * t)


def to_float_image(image: np.ndarray) -> np.ndarray:
    """uint8 or float HxWx3 -> float32 HxWx3 in [0, 1] (a copy)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) * np.float32(1 / 255)
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"expected a uint8 or float image, got dtype {image.dtype}")
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def bright_grey_mask(image: np.ndarray) -> np.ndarray:
    """Soft mask (HxW float32 in [0, 1]) of bright, low-saturation pixels: metal, speculars.

    Tissue is saturated red/pink; instruments and specular highlights are bright and grey.
    The mask is dilated and blurred so smoke keeps a margin around them.
    """
    # cv2.max/min over channel planes: ~10x faster than ndarray.max(axis=2) on interleaved data.
    r, g, b = cv2.split(image)
    value = cv2.max(cv2.max(r, g), b)
    saturation = (value - cv2.min(cv2.min(r, g), b)) / np.maximum(value, np.float32(1e-3))
    mask = _smoothstep(0.55, 0.8, value) * (1.0 - _smoothstep(0.15, 0.35, saturation))
    size = max(3, (min(image.shape[:2]) // 40) | 1)
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    return cv2.GaussianBlur(mask, (0, 0), size / 2.0)


# ----------------------------------------------------------------------------- plumes


@dataclass(frozen=True)
class _Plume:
    """Random parameters of one smoke layer (drawn once; a clip renders them over time)."""

    lattice_seed: int
    zoom: float
    anisotropy: float
    angle: float
    offset: tuple[float, float]
    density: float
    coverage: float
    softness: float
    envelope: tuple[float, float, float, float] | None  # centre x, y (fractions), sigma, aspect
    fade: float  # edge fade width, fraction of the short side
    haze: float


def _draw_plume(config: SmokeConfig, rng: np.random.Generator) -> _Plume:
    envelope = None
    if rng.random() < config.plume_probability:
        envelope = (
            _uniform(rng, (-0.1, 1.1)),
            _uniform(rng, (-0.1, 1.1)),
            _uniform(rng, config.plume_scale),
            _uniform(rng, (1.0, 2.0)),
        )
    return _Plume(
        lattice_seed=int(rng.integers(0, 2**31 - 1)),
        zoom=float(np.exp(_uniform(rng, tuple(np.log(config.zoom))))),
        anisotropy=_uniform(rng, config.anisotropy),
        angle=_uniform(rng, (0.0, math.pi)),
        offset=(_uniform(rng, (-1e4, 1e4)), _uniform(rng, (-1e4, 1e4))),
        density=_uniform(rng, config.density),
        coverage=_uniform(rng, config.coverage),
        softness=_uniform(rng, config.softness),
        envelope=envelope,
        fade=_uniform(rng, config.edge_fade_width) if config.edge_fade else 0.0,
        haze=_uniform(rng, config.haze) if rng.random() < config.haze_probability else 0.0,
    )


def _envelope(plume: _Plume, height: int, width: int) -> np.ndarray | None:
    """Gaussian plume envelope (position and scale), elongated along the plume's angle.

    Smooth by construction, so it is evaluated on a grid of at most 64 px and upsampled.
    """
    if plume.envelope is None:
        return None
    fx, fy, sigma, aspect = plume.envelope
    step = max(1.0, max(height, width) / 64.0)
    small_h, small_w = max(2, math.ceil(height / step)), max(2, math.ceil(width / step))
    sigma *= max(height, width)
    # Pixel centres of the small grid, in full-resolution coordinates.
    ys = ((np.arange(small_h, dtype=np.float32) + 0.5) * (height / small_h) - 0.5)[:, None]
    xs = ((np.arange(small_w, dtype=np.float32) + 0.5) * (width / small_w) - 0.5)[None, :]
    ys, xs = ys - np.float32(fy * height), xs - np.float32(fx * width)
    cos_a, sin_a = np.float32(math.cos(plume.angle)), np.float32(math.sin(plume.angle))
    along = (xs * cos_a + ys * sin_a) / np.float32(sigma * aspect)
    across = (ys * cos_a - xs * sin_a) / np.float32(sigma)
    small = np.exp(np.float32(-0.5) * (along * along + across * across))
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _edge_fade(width_fraction: float, height: int, width: int) -> np.ndarray | None:
    """python-clouds' edge fade: opacity ramps up from the image border over a band."""
    band = width_fraction * min(height, width)
    if band < 1.0:
        return None
    # smoothstep is monotonic: smoothstep(min(dy, dx)) = min(smoothstep(dy), smoothstep(dx)).
    ys = np.minimum(np.arange(height), np.arange(height)[::-1]).astype(np.float32)
    xs = np.minimum(np.arange(width), np.arange(width)[::-1]).astype(np.float32)
    return np.minimum(_smoothstep(0.0, band, ys)[:, None], _smoothstep(0.0, band, xs)[None, :])


def _render_plume(
    config: SmokeConfig,
    plume: _Plume,
    height: int,
    width: int,
    *,
    time: float = 0.0,
    drift: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Opacity field (HxW float32 in [0, 1]) of a plume at a time and drift."""
    field = fbm_field(
        height,
        width,
        np.random.default_rng(plume.lattice_seed),
        octaves=config.octaves,
        lacunarity=config.lacunarity,
        gain=config.gain,
        zoom=plume.zoom,
        offset=(plume.offset[0] + drift[0], plume.offset[1] + drift[1]),
        anisotropy=plume.anisotropy,
        angle=plume.angle,
        time=time,
    )
    # Threshold the fBm into plumes: coverage and softness are in standard deviations.
    centre = 0.5 + plume.coverage * FBM_STD
    half = 0.5 * plume.softness * FBM_STD
    alpha = _smoothstep(centre - half, centre + half, field)
    for window in (_envelope(plume, height, width), _edge_fade(plume.fade, height, width)):
        if window is not None:
            alpha *= window
    alpha *= np.float32(plume.density)
    if plume.haze > 0.0:
        alpha = np.float32(plume.haze) + np.float32(1.0 - plume.haze) * alpha
    return np.clip(alpha, 0.0, 1.0, out=alpha)


# ----------------------------------------------------------------------------- background


@dataclass(frozen=True)
class _Instrument:
    """A synthetic metal shaft entering from the border, plus a few specular highlights."""

    start: tuple[float, float]  # fractions of width, height (on or near the border)
    angle: float
    length: float  # fraction of the long side
    thickness: float  # fraction of the short side
    grey: float
    tint: tuple[float, float, float]
    specular_offset: float  # across the shaft, in half-thicknesses
    speculars: tuple[tuple[float, float, float], ...]  # x, y (fractions), sigma (fraction)


@dataclass(frozen=True)
class _Flat:
    """A frame with (almost) no detail: a smooth field plus a fraction of the frame's own."""

    detail: float  # fraction of the frame's detail kept
    cells: int  # the smooth field's resolution across the short side (1: one colour)
    colour: tuple[float, float, float] | None  # None: the frame's own colours


@dataclass(frozen=True)
class _Background:
    """Background augmentations; applied to the clear target as well (the pair stays exact)."""

    hue_shift: float  # degrees
    darken: float
    gamma: float
    blur_sigma: float  # 0: none
    instrument: _Instrument | None
    channel_gains: tuple[float, float, float] | None = None  # white balance; None: none
    flat: _Flat | None = None


def _draw_instrument(config: SmokeConfig, rng: np.random.Generator) -> _Instrument:
    # Enter from one of the four sides, pointing roughly inward.
    side = int(rng.integers(4))
    along = _uniform(rng, (0.1, 0.9))
    start = ((along, 0.0), (1.0, along), (along, 1.0), (0.0, along))[side]
    inward = (math.pi / 2, math.pi, -math.pi / 2, 0.0)[side]
    warm = _uniform(rng, (0.0, 0.06))  # metal reflects the warm tissue a little
    speculars = tuple(
        (_uniform(rng, (0.05, 0.95)), _uniform(rng, (0.05, 0.95)), _uniform(rng, (0.003, 0.015)))
        for _ in range(int(rng.integers(0, 6)))
    )
    return _Instrument(
        start=start,
        angle=inward + _uniform(rng, (-0.7, 0.7)),
        length=_uniform(rng, (0.3, 0.8)),
        thickness=_uniform(rng, config.instrument_thickness),
        grey=_uniform(rng, config.instrument_grey),
        tint=(1.0, 1.0 - warm, 1.0 - 1.5 * warm),
        specular_offset=_uniform(rng, (-0.5, 0.5)),
        speculars=speculars,
    )


def _draw_background(config: SmokeConfig, rng: np.random.Generator) -> _Background:
    p = config.augment_probability
    hue = _uniform(rng, config.hue_shift_deg) if rng.random() < p else 0.0
    darken = _uniform(rng, config.darken) if rng.random() < p else 1.0
    gamma = _uniform(rng, config.gamma) if rng.random() < p else 1.0
    blur = _uniform(rng, config.blur_sigma) if rng.random() < p else 0.0
    instrument = (
        _draw_instrument(config, rng) if rng.random() < config.instrument_probability else None
    )
    gains = None
    if config.white_balance_probability > 0 and rng.random() < config.white_balance_probability:
        gains = tuple(_uniform(rng, config.white_balance) for _ in range(3))
    flat = None
    if config.flat_probability > 0 and rng.random() < config.flat_probability:
        flat = _draw_flat(config, rng)
    return _Background(hue, darken, gamma, blur, instrument, gains, flat)


def _draw_flat(config: SmokeConfig, rng: np.random.Generator) -> _Flat:
    # A random colour anywhere in the cube's inner 90%: flat frames are not only tissue red.
    colour = tuple(_uniform(rng, (0.05, 0.95)) for _ in range(3)) if rng.random() < 0.5 else None
    return _Flat(
        detail=_uniform(rng, config.flat_detail), cells=int(rng.integers(1, 5)), colour=colour
    )


def _flatten(image: np.ndarray, flat: _Flat) -> np.ndarray:
    """The frame's smooth field (area-averaged to a few cells, upsampled bicubically) or one
    colour, plus `detail` of the frame's difference from that field."""
    height, width = image.shape[:2]
    scale = flat.cells / min(height, width)
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    field = cv2.resize(
        cv2.resize(image, small, interpolation=cv2.INTER_AREA),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    base = (
        field
        if flat.colour is None
        else np.broadcast_to(np.asarray(flat.colour, np.float32), image.shape)
    )
    return np.clip(base + np.float32(flat.detail) * (image - field), 0.0, 1.0).astype(np.float32)


def _paint_instrument(image: np.ndarray, tool: _Instrument) -> np.ndarray:
    """Shaded cylinder with a specular stripe, anti-aliased, then specular highlight blobs."""
    height, width = image.shape[:2]
    ys = np.arange(height, dtype=np.float32)[:, None] - np.float32(tool.start[1] * height)
    xs = np.arange(width, dtype=np.float32)[None, :] - np.float32(tool.start[0] * width)
    dx, dy = np.float32(math.cos(tool.angle)), np.float32(math.sin(tool.angle))
    along = xs * dx + ys * dy
    across = ys * dx - xs * dy
    half = np.float32(0.5 * tool.thickness * min(height, width))
    length = np.float32(tool.length * max(height, width))
    cover = np.clip(half - np.abs(across) + 0.5, 0, 1) * np.clip(length - along + 0.5, 0, 1)
    cover *= along > -half
    u = np.clip(across / half, -1.0, 1.0)
    shade = np.float32(tool.grey) * (0.45 + 0.55 * np.sqrt(1.0 - u * u))
    shade += np.exp(-(((u - np.float32(tool.specular_offset)) / np.float32(0.15)) ** 2))
    metal = np.clip(shade[..., None] * np.asarray(tool.tint, np.float32), 0.0, 1.0)
    out = image * (1.0 - cover[..., None]) + metal * cover[..., None]
    for fx, fy, fs in tool.speculars:
        # A small Gaussian blob, computed only in its 3-sigma window.
        sigma = fs * min(height, width)
        x0, x1 = int(max(0, fx * width - 3 * sigma)), int(min(width, fx * width + 3 * sigma + 1))
        y0, y1 = int(max(0, fy * height - 3 * sigma)), int(min(height, fy * height + 3 * sigma + 1))
        gy = np.exp(-0.5 * ((np.arange(y0, y1, dtype=np.float32) - fy * height) / sigma) ** 2)
        gx = np.exp(-0.5 * ((np.arange(x0, x1, dtype=np.float32) - fx * width) / sigma) ** 2)
        blob = np.clip(np.float32(1.6) * gy[:, None] * gx[None, :], 0.0, 1.0)[..., None]
        window = out[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = window * (1.0 - blob) + np.float32(0.98) * blob
    return out.astype(np.float32)


def _apply_background(image: np.ndarray, bg: _Background) -> tuple[np.ndarray, np.ndarray]:
    """Augment the clear frame (float32 HxWx3 in [0, 1]) -> (augmented, before photometry).

    The second image (instrument painted, colours untouched) is where bright grey regions
    are looked for: a darkened instrument is still an instrument.
    """
    out = image if bg.flat is None else _flatten(image, bg.flat)
    out = out if bg.instrument is None else _paint_instrument(out, bg.instrument)
    painted = out
    if bg.hue_shift != 0.0:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)  # float input: hue in degrees
        hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(bg.hue_shift), 360.0)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if bg.gamma != 1.0:
        out = np.power(np.clip(out, 0.0, 1.0), np.float32(bg.gamma))
    if bg.darken != 1.0:
        out = out * np.float32(bg.darken)
    if bg.channel_gains is not None:
        out = out * np.asarray(bg.channel_gains, np.float32)
    if bg.blur_sigma > 0.0:
        out = cv2.GaussianBlur(out, (0, 0), bg.blur_sigma)
    if out is image:
        out = image.copy()
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False), painted


def _speckle(config: SmokeConfig, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Multiplicative noise 1 + sigma * N(0, 1), drawn on a grid of speckle_cells per short
    side and upsampled bilinearly to the frame."""
    sigma = np.float32(_uniform(rng, config.speckle))
    cell = min(height, width) / config.speckle_cells
    grid = (max(1, math.ceil(height / cell)), max(1, math.ceil(width / cell)))
    noise = rng.standard_normal(grid, np.float32)
    noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_LINEAR)
    return 1.0 + sigma * noise


def _draw_colour(config: SmokeConfig, rng: np.random.Generator) -> np.ndarray:
    """Smoke colour between white and grey-yellow, at a random brightness, sometimes tinted."""
    t = _uniform(rng, (0.0, 1.0))
    white = np.asarray(config.colour_white, np.float32)
    yellow = np.asarray(config.colour_yellow, np.float32)
    colour = _uniform(rng, config.colour_brightness) * ((1.0 - t) * white + t * yellow)
    if config.tint_probability > 0 and rng.random() < config.tint_probability:
        colour = colour + _tint(_uniform(rng, config.tint), _uniform(rng, (0.0, 2 * math.pi)))
    return np.clip(colour, 0.0, 1.0).astype(np.float32)


#: Two orthonormal RGB directions perpendicular to grey (1, 1, 1): the chroma plane.
_CHROMA_AXES = np.array(
    [[2.0, -1.0, -1.0] / np.sqrt(6.0), [0.0, 1.0, -1.0] / np.sqrt(2.0)], np.float32
)


def _tint(chroma: float, hue: float) -> np.ndarray:
    """An RGB offset of length `chroma` off the grey axis, at angle `hue` (0 = red)."""
    return chroma * (math.cos(hue) * _CHROMA_AXES[0] + math.sin(hue) * _CHROMA_AXES[1])


# ----------------------------------------------------------------------------- synthesizer


class SmokeSynthesizer:
    """Seeded smoke synthesis: single training samples and temporally coherent clips."""

    def __init__(self, config: SmokeConfig = SmokeConfig(), seed: int = 0) -> None:
        self.config = config
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def opacity(self, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        """A random opacity field alpha (HxW float32 in [0, 1]): plumes, haze, edge fade."""
        return _render_plume(self.config, _draw_plume(self.config, rng), height, width)

    def _smoke_layer(self, alpha: np.ndarray, clear: np.ndarray, avoid_bright: bool) -> np.ndarray:
        if avoid_bright:
            alpha = alpha * (1.0 - bright_grey_mask(clear))
        return np.clip(alpha, 0.0, 1.0).astype(np.float32, copy=False)

    def sample(self, clear: np.ndarray, rng: np.random.Generator | None = None) -> SmokeSample:
        """Composite random smoke over one clear frame (uint8 or float HxWx3).

        Without rng, the synthesizer's own seeded generator is used (a deterministic
        sequence for the seed); with one, the result depends only on its state.
        """
        rng = self._rng if rng is None else rng
        image = to_float_image(clear)
        height, width = image.shape[:2]
        config = self.config
        alpha = self.opacity(height, width, rng)
        colour = _draw_colour(config, rng)
        background = _draw_background(config, rng)
        avoid_bright = rng.random() < config.avoid_bright_probability
        if rng.random() < config.augment_probability:
            alpha = alpha * _speckle(config, rng, height, width)
        clear_aug, painted = _apply_background(image, background)
        alpha = self._smoke_layer(alpha, painted, avoid_bright)
        smoky = composite(clear_aug, alpha, colour).astype(np.float32, copy=False)
        return SmokeSample(smoky=smoky, clear=clear_aug, alpha=alpha, colour=colour)

    def clip(self, frames: Iterable[np.ndarray], seed: int) -> Iterator[SmokeSample]:
        """Smoke over a sequence of frames: one plume that drifts and evolves, fixed colour.

        Everything random is drawn once per clip (no per-frame speckle: it would flicker);
        frame t renders the plume at drift velocity * t and lattice time evolution * t.
        """
        rng = np.random.default_rng(seed)
        config = self.config
        plume = _draw_plume(config, rng)
        colour = _draw_colour(config, rng)
        background = _draw_background(config, rng)
        avoid_bright = rng.random() < config.avoid_bright_probability
        heading = _uniform(rng, (0.0, 2 * math.pi))
        speed = _uniform(rng, config.drift)
        evolution = _uniform(rng, config.evolution)
        size: tuple[int, int] | None = None
        for index, frame in enumerate(frames):
            image = to_float_image(frame)
            if size is None:
                size = image.shape[:2]
            elif image.shape[:2] != size:
                raise ValueError(
                    f"frame {index} is {image.shape[1]}x{image.shape[0]}, "
                    f"the clip's first frame {size[1]}x{size[0]}"
                )
            step = speed * max(size) / 512.0 * index
            drift = (step * math.cos(heading), step * math.sin(heading))
            alpha = _render_plume(config, plume, *size, time=evolution * index, drift=drift)
            clear_aug, painted = _apply_background(image, background)
            alpha = self._smoke_layer(alpha, painted, avoid_bright)
            smoky = composite(clear_aug, alpha, colour).astype(np.float32, copy=False)
            yield SmokeSample(smoky=smoky, clear=clear_aug, alpha=alpha, colour=colour.copy())


# ----------------------------------------------------------------------------- video


def synthesize_video(
    src: Path, dst: Path, seed: int = 0, config: SmokeConfig = SmokeConfig()
) -> int:
    """Write a smoky H.264 MP4 version of a clip (audio copied); returns the frame count.

    The smoke drifts and evolves across the clip (SmokeSynthesizer.clip). The engine's
    Mp4Writer works on a temporary file: nothing is left at dst on failure, and it refuses
    to write over src. Errors are ValueErrors naming the file.
    """
    from engine.video import FileSource, Mp4Writer, VideoError, cut_short_warning
    from engine.video.writer import SOURCE_TIME_BASE

    try:
        with FileSource(src) as source:
            for notice in source.notices_saying("", desmoking=False):  # several streams
                logging.getLogger(__name__).warning("%s", notice)
            size = (source.width, source.height)
            # crf 18 (the exports' 20 is for viewing): these clips are inputs to be measured.
            with Mp4Writer(
                dst,
                fps=source.rate,
                size=size,
                source=src,
                crf=18,
                preset="veryfast",
                time_base=SOURCE_TIME_BASE,
            ) as writer:
                times: list[float] = []  # each frame at its own time (a variable rate)

                def frames() -> Iterator[np.ndarray]:
                    for frame in source.frames():
                        times.append(frame.time)
                        yield frame.rgb

                for sample in SmokeSynthesizer(config, seed).clip(frames(), seed):
                    smoky = np.rint(sample.smoky * 255.0).astype(np.uint8)
                    writer.write_image(smoky, times[writer.frames_written])
            ended_at = (times[-1] if times else 0.0) + 1 / source.fps
            warning = cut_short_warning(src, ended_at, source.video_duration)
    except VideoError as error:
        raise ValueError(str(error)) from None
    if warning:
        logging.getLogger(__name__).warning("%s", warning)
    return writer.frames_written
