"""Image quality figures: full-reference (PSNR, SSIM, CIEDE2000) and no-reference ones.

Full-reference metrics compare a restored frame with its clear ground truth, both uint8
RGB HxWx3, through scikit-image (the implementations the literature's numbers come from),
over the whole frame or over a field (the lit scope field, what the surgeon looks at: the
unlit corners score otherwise, and smoke laid over them weighs there too).
No-reference figures describe one frame, for real smoke that has no ground truth:
- mean dark channel: He et al.'s haze density (smoke raises the per-patch minimum);
- RMS contrast: the standard deviation of grey intensity (smoke flattens it);
- colourfulness: Hasler & Suesstrunk 2003 (smoke desaturates towards its grey-white).
- clipped: the fraction of pixels with a channel at 0 or 255 (an over-correction guard:
  inverting too much smoke pushes colours out of range, and clipping hides it from the rest).
Each is taken over the frame's field (the lit scope field; the whole frame by default): a
black scope surround would count as contrast and as clipped pixels.
Before/after, for real smoke too:
- crushed: the fraction of pixels with a channel driven to black from a clearly visible
  level (detail lost: a dark grey instrument shaft taken for smoke turns flat black);
- mean abs change: how much a method changes a frame (on clear frames: should be ~0).
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
#: The SSIM variant, for reports: the literature also uses an 11x11 Gaussian window (Wang et
#: al.), whose values differ, so a comparison must say which one it is.
SSIM_VARIANT = (
    f"skimage structural_similarity, {SSIM_WINDOW}x{SSIM_WINDOW} uniform window, sample "
    "covariance, mean over RGB channels"
)


def _check_pair(reference: np.ndarray, test: np.ndarray) -> None:
    for name, image in (("reference", reference), ("test", test)):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{name} image must be uint8 HxWx3, got {image.dtype} {image.shape}")
    if reference.shape != test.shape:
        raise ValueError(f"image sizes differ: {reference.shape} vs {test.shape}")


def psnr(reference: np.ndarray, test: np.ndarray, field: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB (data range 255) over the field's pixels (all of
    them where None); inf where they are identical."""
    _check_pair(reference, test)
    _check_image(reference, field)
    reference, test = _in_field(reference, field), _in_field(test, field)
    if np.array_equal(reference, test):
        return math.inf  # skimage divides by a zero MSE (and warns) here
    return float(peak_signal_noise_ratio(reference, test, data_range=255))


def ssim(reference: np.ndarray, test: np.ndarray, field: np.ndarray | None = None) -> float:
    """Structural similarity (mean over the colour channels), data range 255.

    With a field: the mean of the SSIM map over the field's pixels whose whole window lies
    inside the field (and inside the frame, as skimage's own mean keeps), so no window that
    straddles the field's edge takes in the surround; over a field of every pixel it is
    the whole-frame figure."""
    _check_pair(reference, test)
    _check_image(reference, field)
    window = min(SSIM_WINDOW, *reference.shape[:2])
    window -= 1 - window % 2  # odd
    if window < 3:
        raise ValueError(f"image too small for SSIM: {reference.shape[1]}x{reference.shape[0]}")
    options = {
        "channel_axis": 2,
        "data_range": 255,
        "win_size": window,
        "gaussian_weights": False,  # skimage's defaults, spelled out: SSIM_VARIANT says them
        "use_sample_covariance": True,
    }
    if field is None:
        return float(structural_similarity(reference, test, **options))
    _, ssim_map = structural_similarity(reference, test, full=True, **options)
    whole_windows = _windows_inside(field, window)
    if not whole_windows.any():
        raise ValueError(
            f"the field ({int(field.sum())} pixels) holds no whole {window}x{window} SSIM "
            "window: score a larger field, or the whole frame"
        )
    return float(ssim_map[whole_windows].mean())


def _windows_inside(field: np.ndarray, window: int) -> np.ndarray:
    """The pixels whose window x window neighbourhood lies wholly inside the field and the
    frame: the field eroded by the window's radius, the frame's edge counting as outside."""
    kernel = np.ones((window, window), np.uint8)
    eroded = cv2.erode(
        field.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0
    )
    return eroded.astype(bool)


def ciede2000(reference: np.ndarray, test: np.ndarray, field: np.ndarray | None = None) -> float:
    """Mean CIEDE2000 colour difference over the field's pixels (all of them where None;
    0 = identical; ~2.3 = just noticeable)."""
    _check_pair(reference, test)
    _check_image(reference, field)
    reference, test = _in_field(reference, field), _in_field(test, field)
    return float(np.mean(deltaE_ciede2000(rgb2lab(reference), rgb2lab(test))))


def full_reference(
    reference: np.ndarray, test: np.ndarray, field: np.ndarray | None = None
) -> dict[str, float]:
    """{"psnr", "ssim", "ciede2000"} of test against reference, over the field (bool HxW;
    None: the whole frame)."""
    return {
        "psnr": psnr(reference, test, field),
        "ssim": ssim(reference, test, field),
        "ciede2000": ciede2000(reference, test, field),
    }


def mean_abs_change(
    before: np.ndarray, after: np.ndarray, field: np.ndarray | None = None
) -> float:
    """Mean |after - before| over the field's pixels and channels, on the 0-1 scale."""
    _check_pair(before, after)
    _check_image(before, field)
    change = np.abs(after.astype(np.float32) - before.astype(np.float32))
    return float(_in_field(change, field).mean()) / 255.0


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


def _check_image(image: np.ndarray, field: np.ndarray | None = None) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 image, got {image.dtype} {image.shape}")
    if field is not None and (field.dtype != bool or field.shape != image.shape[:2]):
        raise ValueError(
            f"the field must be a bool mask of the image's {image.shape[1]}x{image.shape[0]} "
            f"pixels, got {field.dtype} {field.shape}"
        )
    if field is not None and not field.any():
        raise ValueError("the field holds no pixel: pass None to score the whole frame")
    return image


def _in_field(values: np.ndarray, field: np.ndarray | None) -> np.ndarray:
    """The values (HxW or HxWxC) of the field's pixels; all of them where field is None."""
    return values if field is None else values[field]


def mean_dark_channel(image: np.ndarray, field: np.ndarray | None = None) -> float:
    """Mean of the dark channel (default patch for the size) over the field, in [0, 1].

    Pixels outside the field are taken as white first, so no patch at the field's edge
    takes its minimum from the black surround."""
    _check_image(image, field)
    if field is not None:
        image = np.where(field[..., None], image, np.uint8(255))
    return float(_in_field(dark_channel(image), field).mean()) / 255.0


def rms_contrast(image: np.ndarray, field: np.ndarray | None = None) -> float:
    """Standard deviation of the grey intensity over the field, in [0, 0.5]."""
    grey = cv2.cvtColor(_check_image(image, field), cv2.COLOR_RGB2GRAY)
    return float((_in_field(grey, field).astype(np.float32) / 255.0).std())


def colourfulness(image: np.ndarray, field: np.ndarray | None = None) -> float:
    """Hasler & Suesstrunk's colourfulness M on the 0-255 scale (0 = grey; > ~60 = vivid),
    over the field."""
    rgb = _in_field(_check_image(image, field), field).astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = math.hypot(float(rg.std()), float(yb.std()))
    centre = math.hypot(float(rg.mean()), float(yb.mean()))
    return spread + 0.3 * centre


def clipped_fraction(image: np.ndarray, field: np.ndarray | None = None) -> float:
    """Fraction of the field's pixels with any channel at 0 or 255."""
    image = _check_image(image, field)
    return float(_in_field(((image == 0) | (image == 255)).any(axis=2), field).mean())


#: A channel at or above this level (of 255) before and at 0 after counts as crushed.
CRUSHED_FROM_LEVEL = 64


def crushed_fraction(
    before: np.ndarray, after: np.ndarray, field: np.ndarray | None = None
) -> float:
    """Fraction of the field's pixels with a channel at >= CRUSHED_FROM_LEVEL in `before`
    and 0 in `after`."""
    _check_pair(before, after)
    _check_image(before, field)
    crushed = ((before >= CRUSHED_FROM_LEVEL) & (after == 0)).any(axis=2)
    return float(_in_field(crushed, field).mean())


def no_reference(image: np.ndarray, field: np.ndarray | None = None) -> dict[str, float]:
    """{"dark_channel", "rms_contrast", "colourfulness", "clipped"} of one frame's field.

    field: bool HxW, the pixels that show the scene (the lit scope field); None: all of
    them. A black scope surround left in would read as contrast and as clipped pixels."""
    return {
        "dark_channel": mean_dark_channel(image, field),
        "rms_contrast": rms_contrast(image, field),
        "colourfulness": colourfulness(image, field),
        "clipped": clipped_fraction(image, field),
    }
