"""Image quality figures: full-reference (PSNR, SSIM, CIEDE2000) and no-reference ones.

Full-reference metrics compare a restored frame with its clear ground truth, both uint8
RGB HxWx3, through scikit-image (the implementations the literature's numbers come from).
No-reference figures describe one frame, for real smoke that has no ground truth:
- mean dark channel: He et al.'s haze density (smoke raises the per-patch minimum);
- RMS contrast: the standard deviation of grey intensity (smoke flattens it);
- colourfulness: Hasler & Suesstrunk 2003 (smoke desaturates towards its grey-white).
- clipped: the fraction of pixels with a channel at 0 or 255 (an over-correction guard:
  inverting too much smoke pushes colours out of range, and clipping hides it from the rest).
Before/after, for real smoke too:
- crushed: the fraction of pixels with a channel driven to black from a clearly visible
  level (detail lost: a dark grey instrument shaft taken for smoke turns flat black).
For video, temporal_error measures flicker against the clear clip's own frame-to-frame change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from engine.dark_channel import dark_channel

#: scikit-image's default SSIM window (7x7, uniform); smaller images use the largest odd fit.
SSIM_WINDOW = 7


def _check_pair(reference: np.ndarray, test: np.ndarray) -> None:
    for name, image in (("reference", reference), ("test", test)):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{name} image must be uint8 HxWx3, got {image.dtype} {image.shape}")
    if reference.shape != test.shape:
        raise ValueError(f"image sizes differ: {reference.shape} vs {test.shape}")


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (data range 255); inf for identical images."""
    _check_pair(reference, test)
    if np.array_equal(reference, test):
        return math.inf  # skimage divides by a zero MSE (and warns) here
    return float(peak_signal_noise_ratio(reference, test, data_range=255))


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    """Structural similarity (mean over the colour channels), data range 255."""
    _check_pair(reference, test)
    window = min(SSIM_WINDOW, *reference.shape[:2])
    window -= 1 - window % 2  # odd
    if window < 3:
        raise ValueError(f"image too small for SSIM: {reference.shape[1]}x{reference.shape[0]}")
    return float(
        structural_similarity(reference, test, channel_axis=2, data_range=255, win_size=window)
    )


def ciede2000(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean CIEDE2000 colour difference over the pixels (0 = identical; ~2.3 = just noticeable)."""
    _check_pair(reference, test)
    return float(np.mean(deltaE_ciede2000(rgb2lab(reference), rgb2lab(test))))


def full_reference(reference: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """{"psnr", "ssim", "ciede2000"} of test against reference."""
    return {
        "psnr": psnr(reference, test),
        "ssim": ssim(reference, test),
        "ciede2000": ciede2000(reference, test),
    }


def temporal_error(references: Sequence[np.ndarray], tests: Sequence[np.ndarray]) -> float:
    """Flicker: mean |(test_t - test_t-1) - (reference_t - reference_t-1)| in 0-255 levels.

    The clear reference clip carries the true motion, so no optical flow is needed: what
    remains is change the restoration added or failed to follow (0 = changes exactly as
    the clear clip does).
    """
    if len(references) != len(tests) or len(tests) < 2:
        raise ValueError(
            f"need two or more frames of each clip, got {len(references)} and {len(tests)}"
        )
    for reference, test in zip(references, tests, strict=True):
        _check_pair(reference, test)
    errors = [
        np.abs(
            (tests[t].astype(np.int16) - tests[t - 1])
            - (references[t].astype(np.int16) - references[t - 1])
        ).mean()
        for t in range(1, len(tests))
    ]
    return float(np.mean(errors))


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 image, got {image.dtype} {image.shape}")
    return image


def mean_dark_channel(image: np.ndarray) -> float:
    """Mean of the dark channel (default patch for the size), in [0, 1]."""
    return float(dark_channel(_check_image(image)).mean()) / 255.0


def rms_contrast(image: np.ndarray) -> float:
    """Standard deviation of the grey intensity, in [0, 0.5]."""
    grey = cv2.cvtColor(_check_image(image), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    return float(grey.std())


def colourfulness(image: np.ndarray) -> float:
    """Hasler & Suesstrunk's colourfulness M on the 0-255 scale (0 = grey; > ~60 = vivid)."""
    rgb = _check_image(image).astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = math.hypot(float(rg.std()), float(yb.std()))
    centre = math.hypot(float(rg.mean()), float(yb.mean()))
    return spread + 0.3 * centre


def clipped_fraction(image: np.ndarray) -> float:
    """Fraction of pixels with any channel at 0 or 255."""
    image = _check_image(image)
    return float(((image == 0) | (image == 255)).any(axis=2).mean())


#: A channel at or above this level (of 255) before and at 0 after counts as crushed.
CRUSHED_FROM_LEVEL = 64


def crushed_fraction(before: np.ndarray, after: np.ndarray) -> float:
    """Fraction of pixels with a channel at >= CRUSHED_FROM_LEVEL in `before` and 0 in
    `after`."""
    _check_pair(before, after)
    return float(((before >= CRUSHED_FROM_LEVEL) & (after == 0)).any(axis=2).mean())


def no_reference(image: np.ndarray) -> dict[str, float]:
    """{"dark_channel", "rms_contrast", "colourfulness", "clipped"} of one frame."""
    return {
        "dark_channel": mean_dark_channel(image),
        "rms_contrast": rms_contrast(image),
        "colourfulness": colourfulness(image),
        "clipped": clipped_fraction(image),
    }
