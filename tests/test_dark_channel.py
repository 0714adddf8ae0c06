"""The dark channel against its brute-force definition."""

from __future__ import annotations

import numpy as np
import pytest

from engine.dark_channel import dark_channel, default_patch_size


def brute_force_dark_channel(image: np.ndarray, patch: int) -> np.ndarray:
    """min over the patch (clipped to the image) of min over RGB: the definition itself."""
    plane = image.min(axis=2)
    height, width = plane.shape
    r = patch // 2
    out = np.empty_like(plane)
    for y in range(height):
        for x in range(width):
            out[y, x] = plane[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1].min()
    return out


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (7, 3), (16, 16), (31, 45)])
@pytest.mark.parametrize("patch", [1, 3, 15])
def test_matches_brute_force(shape: tuple[int, int], patch: int) -> None:
    rng = np.random.default_rng(shape[0] * 100 + shape[1] + patch)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected = brute_force_dark_channel(image, patch)
    np.testing.assert_array_equal(dark_channel(image, patch), expected)


def test_large_odd_frame_matches_brute_force_on_rows() -> None:
    """1081x1921 with its default patch: check a band of rows and the borders exactly."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (1081, 1921, 3), dtype=np.uint8)
    patch = default_patch_size(1081, 1921)
    out = dark_channel(image)
    plane = image.min(axis=2)
    r = patch // 2
    for y in (0, 1, 540, 1079, 1080):
        for x in (0, 5, 960, 1919, 1920):
            window = plane[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1]
            assert out[y, x] == window.min()


def test_float_images_match_brute_force() -> None:
    rng = np.random.default_rng(2)
    image = rng.random((37, 53, 3), dtype=np.float32)
    expected = brute_force_dark_channel(image, 5)
    np.testing.assert_array_equal(dark_channel(image, 5), expected)


def test_default_patch_scales_with_short_side() -> None:
    assert default_patch_size(256, 455) == 15
    assert default_patch_size(720, 1280) == 43
    assert default_patch_size(1, 1) == 1
    assert all(default_patch_size(h, 3 * h) % 2 == 1 for h in range(1, 2000, 37))


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8)])
def test_rejects_non_rgb(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        dark_channel(bad)


def test_rejects_even_patch() -> None:
    with pytest.raises(ValueError, match="odd"):
        dark_channel(np.zeros((4, 4, 3), np.uint8), 4)
