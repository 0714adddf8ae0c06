"""Full-resolution restoration from a low-resolution smoke layer.

Synthesis composites smoke as I = J (1 - alpha) + A alpha. Every smoke-layer method
(the `fast` network, the classical `dcp`) estimates alpha and the smoke colour A at the
working resolution; this module upsamples alpha edge-aware (a guided filter whose linear
coefficients are computed at low resolution and applied with the full-resolution frame as
guide: He & Sun's "fast guided filter") and inverts the compositing at full resolution:
J = (I - A alpha) / max(1 - alpha, t_min). Only a handful of per-pixel passes run at full
resolution, so the cost is nearly independent of the network's.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Lower bound on the transmission 1 - alpha (He et al.'s t0): dense smoke cannot be
#: inverted, and dividing by a tiny number would amplify noise without bound.
DEFAULT_T_MIN = 0.1
DEFAULT_GUIDE_EPS = 1e-3


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


def guided_upsample(
    alpha: np.ndarray,
    guide_low: np.ndarray,
    guide_full: np.ndarray,
    radius: int,
    eps: float = DEFAULT_GUIDE_EPS,
) -> np.ndarray:
    """Upsample alpha (low-res, same size as guide_low) to guide_full's size, edge-aware."""
    if alpha.shape != guide_low.shape:
        alpha = cv2.resize(alpha, guide_low.shape[::-1], interpolation=cv2.INTER_LINEAR)
    a, b = guided_filter_coefficients(guide_low, alpha, radius, eps)
    height, width = guide_full.shape
    if (height, width) != a.shape:
        a = cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR)
        b = cv2.resize(b, (width, height), interpolation=cv2.INTER_LINEAR)
    alpha_full = a * guide_full + b
    return np.clip(alpha_full, 0.0, 1.0, out=alpha_full)


def invert_compositing(
    frame: np.ndarray,
    alpha: np.ndarray,
    colour: np.ndarray,
    t_min: float = DEFAULT_T_MIN,
) -> np.ndarray:
    """J = (I - A alpha) / max(1 - alpha, t_min) at the frame's resolution, as uint8.

    frame: uint8 HxWx3; alpha: float32 HxW; colour: (3,) or HxWx3 (any size: resized) in [0, 1].
    Written as J = g I + c with g = 1 / max(1 - alpha, t_min), c = -255 A alpha g, so the
    three-channel work is one multiply-add.
    """
    height, width = frame.shape[:2]
    gain = 1.0 / np.maximum(1.0 - alpha, np.float32(t_min))
    weight = (alpha * gain * np.float32(-255.0))[:, :, None]
    colour = np.asarray(colour, dtype=np.float32)
    if colour.ndim == 3 and colour.shape[:2] != (height, width):
        colour = cv2.resize(colour, (width, height), interpolation=cv2.INTER_LINEAR)
    restored = frame * gain[:, :, None]
    restored += weight * colour
    return np.clip(restored, 0, 255, out=restored).astype(np.uint8)


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
    """
    if radius is None:
        radius = max(2, min(guide_low.shape) // 32)
    alpha = layer.alpha if strength == 1.0 else layer.alpha * np.float32(strength)
    alpha_full = guided_upsample(alpha, guide_low, to_gray(frame), radius)
    return invert_compositing(frame, alpha_full, layer.colour, t_min)


def composite(clear: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """I = J (1 - alpha) + A alpha, float32 in [0, 1] (the model that `restore` inverts)."""
    alpha3 = alpha[..., None] if alpha.ndim == clear.ndim - 1 else alpha
    return clear * (1.0 - alpha3) + np.asarray(colour, dtype=np.float32) * alpha3
