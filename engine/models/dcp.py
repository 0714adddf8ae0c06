"""Classical dark-channel-prior dehazing (He, Sun, Tang 2009), as a smoke-layer estimator.

He et al.: omega 0.95, atmospheric light A from the brightest 0.1% of the dark channel,
transmission t = 1 - omega * dark(I / A), guided-filter refinement, t >= t0 = 0.1. Here the
estimate runs at the working resolution and returns alpha = 1 - t with A as the smoke
colour; engine.restore then does the guided-filter refinement while upsampling and the
inversion at full resolution - the same path as the `fast` network. No weights.
"""

from __future__ import annotations

import numpy as np

from engine.dark_channel import dark_channel
from engine.restore import SmokeLayer

OMEGA = 0.95
BRIGHTEST_FRACTION = 0.001


def atmospheric_light(image: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """Mean colour of the pixels in the brightest 0.1% of the dark channel (float32 (3,))."""
    flat_dark = dark.reshape(-1)
    count = max(1, int(flat_dark.size * BRIGHTEST_FRACTION))
    brightest = np.argpartition(flat_dark, flat_dark.size - count)[-count:]
    colour = image.reshape(-1, 3)[brightest].mean(axis=0)
    # A near zero (a black frame) would divide by zero below; such a frame has no haze to see.
    return np.maximum(colour, np.float32(1 / 255)).astype(np.float32)


def estimate_smoke_layer(image: np.ndarray, patch_size: int | None = None) -> SmokeLayer:
    """Smoke layer of a float32 RGB image in [0, 1] (typically at the working resolution)."""
    dark = dark_channel(image, patch_size)
    colour = atmospheric_light(image, dark)
    normalised_dark = dark_channel(image / colour, patch_size)
    alpha = np.clip(OMEGA * normalised_dark, 0.0, 1.0).astype(np.float32)
    return SmokeLayer(alpha=alpha, colour=colour)
