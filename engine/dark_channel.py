"""The dark channel: per-pixel minimum over R, G, B, then a square minimum filter.

This module is the reference definition (training's too); the CUDA kernels match it.
The border is replicated (a min filter over a replicated border equals a min filter
over the pixels that exist, which is what the brute-force definition in the tests does).
"""

from __future__ import annotations

import cv2
import numpy as np

#: He et al. use a 15x15 patch; we keep that at a 256 px short side and scale with it.
REFERENCE_PATCH = 15
REFERENCE_SHORT_SIDE = 256
#: The reference patches (odd, at a 256 px short side) a Desmoker, the CLI's --patch and the
#: app's "Patch" control take: 1 would be no patch at all (the channel minimum alone), and
#: past 61 (a quarter of the short side) the mask is a few flat blocks.
PATCH_RANGE = (3, 61)


def default_patch_size(height: int, width: int, reference_patch: int = REFERENCE_PATCH) -> int:
    """Odd patch size that is `reference_patch` (15) px at a 256 px short side, scaled with
    the image, so the mask looks the same at every resolution."""
    short_side = min(height, width)
    size = round(reference_patch * short_side / REFERENCE_SHORT_SIDE)
    return max(1, size | 1)  # odd, so the patch is centred on its pixel


def _validate(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"empty image of shape {image.shape}")


def channel_min(image: np.ndarray) -> np.ndarray:
    """Per-pixel minimum over the three colour channels (HxWx3 -> HxW, dtype kept)."""
    _validate(image)
    # cv2.min on channel views is ~10x faster than ndarray.min(axis=2) on interleaved data.
    return cv2.min(cv2.min(image[:, :, 0], image[:, :, 1]), image[:, :, 2])


def min_filter(plane: np.ndarray, patch_size: int) -> np.ndarray:
    """Square minimum filter with a replicated border; separable (1xN then Nx1)."""
    if patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(f"patch size must be a positive odd number, got {patch_size}")
    if patch_size == 1:
        return plane.copy()
    row = cv2.getStructuringElement(cv2.MORPH_RECT, (patch_size, 1))
    col = cv2.getStructuringElement(cv2.MORPH_RECT, (1, patch_size))
    out = cv2.erode(plane, row, borderType=cv2.BORDER_REPLICATE)
    return cv2.erode(out, col, borderType=cv2.BORDER_REPLICATE)


def dark_channel(image: np.ndarray, patch_size: int | None = None) -> np.ndarray:
    """Dark channel of an HxWx3 image (uint8 or float32); same dtype, shape HxW."""
    _validate(image)
    if patch_size is None:
        patch_size = default_patch_size(image.shape[0], image.shape[1])
    return min_filter(channel_min(np.ascontiguousarray(image)), patch_size)
