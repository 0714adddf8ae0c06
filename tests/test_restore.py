"""Full-resolution restoration: the inversion undoes the compositing used in synthesis."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.models.dcp import estimate_smoke_layer
from engine.restore import (
    DEFAULT_T_MIN,
    Restorer,
    SmokeLayer,
    _full_resolution_colour,
    _invert_rows,
    composite,
    guide_radius,
    guided_upsample,
    restore,
    row_strips,
    to_gray,
)
from tests.frames import smooth_alpha, textured_frame


def invert_compositing(
    frame: np.ndarray, alpha: np.ndarray, colour: np.ndarray, t_min: float = DEFAULT_T_MIN
) -> np.ndarray:
    """The Restorer's inversion alone, J = (I - A alpha) / (1 - alpha) with alpha at most
    1 - t_min, with
    alpha given at the frame's resolution (no guided upsampling) and colour (3,) or hxwx3."""
    colour = _full_resolution_colour(colour, frame.shape[:2])
    out = np.empty_like(frame)
    for rows in row_strips(*frame.shape[:2]):
        colour_rows = colour if colour.ndim == 1 else colour[:, rows]
        _invert_rows(frame[rows], alpha[rows], colour_rows, t_min, out[rows])
    return out


@pytest.mark.parametrize("colour", [np.array([0.9, 0.88, 0.8], np.float32), None])
def test_inversion_matches_float64_formula(colour: np.ndarray | None) -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (45, 77, 3), dtype=np.uint8)
    alpha = rng.random((45, 77), dtype=np.float32) * 0.99
    if colour is None:
        colour = rng.random((45, 77, 3), dtype=np.float32)
    invertible = np.minimum(alpha, 0.9)[..., None]
    expected = (frame / 255.0 - colour * invertible) / (1 - invertible)
    expected = np.clip(expected * 255, 0, 255)
    out = invert_compositing(frame, alpha, colour)
    assert out.dtype == np.uint8 and out.shape == frame.shape
    assert np.abs(out - expected).max() <= 0.51  # rounding to the nearest integer only


def test_smoke_too_dense_to_invert_is_cleared_as_far_as_t_min_allows() -> None:
    """He et al.'s t >= t0: past alpha = 1 - t_min the frame is inverted with alpha = 1 -
    t_min. Dividing by t_min alone darkened what could not be inverted: a pixel of the
    smoke's own colour (a white frame under white smoke) came out half as bright."""
    colour = np.array([250, 250, 250], np.float32) / 255
    alpha = np.full((8, 8), 0.97, np.float32)
    smoke_coloured = np.full((8, 8, 3), 250, np.uint8)
    np.testing.assert_array_equal(invert_compositing(smoke_coloured, alpha, colour), 250)
    darker = np.full((8, 8, 3), 240, np.uint8)  # J = A + (I - A) / t_min = 250 - 10 / 0.1
    np.testing.assert_allclose(invert_compositing(darker, alpha, colour), 150, atol=1)
    assert (alpha == np.float32(0.97)).all()  # the caller's alpha is left as it was


def test_composite_then_invert_recovers_the_clear_frame() -> None:
    clear = textured_frame(90, 160)
    alpha = smooth_alpha(90, 160, peak=0.7)
    colour = np.array([0.92, 0.9, 0.85], np.float32)
    smoky = (composite(clear / 255.0, alpha, colour) * 255).round().astype(np.uint8)
    restored = invert_compositing(smoky, alpha, colour)
    # Quantisation of the smoky frame is amplified by 1 / (1 - alpha) <= 1 / 0.3.
    assert np.abs(restored.astype(int) - clear).max() <= 3
    assert np.abs(smoky.astype(int) - clear).mean() > 15  # the smoke was really there


def test_restore_from_low_resolution_layer() -> None:
    """The full pipeline path: alpha known at 1/4 of a 256 working size, frame at 720p-ish."""
    clear = textured_frame(360, 640, seed=4)
    alpha_full = smooth_alpha(360, 640, peak=0.6)
    colour = np.array([0.9, 0.9, 0.9], np.float32)
    smoky = (composite(clear / 255.0, alpha_full, colour) * 255).round().astype(np.uint8)
    small = cv2.resize(smoky, (448, 256), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    alpha_low = cv2.resize(alpha_full, (112, 64), interpolation=cv2.INTER_AREA)
    restored = restore(smoky, SmokeLayer(alpha_low, colour), to_gray(small))
    error_before = np.abs(smoky.astype(int) - clear).mean()
    error_after = np.abs(restored.astype(int) - clear).mean()
    assert error_after < 0.15 * error_before
    untouched = restore(smoky, SmokeLayer(alpha_low, colour), to_gray(small), strength=0.0)
    np.testing.assert_array_equal(untouched, smoky)


def test_guided_upsample_keeps_constants_and_range() -> None:
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (120, 200, 3), dtype=np.uint8)
    small = cv2.resize(frame, (100, 60), interpolation=cv2.INTER_AREA)
    gray_full = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    constant = np.full((60, 100), 0.4, np.float32)
    out = guided_upsample(constant, to_gray(small), gray_full, radius=4)
    assert out.shape == (120, 200)
    np.testing.assert_allclose(out, 0.4, atol=1e-3)
    wild = rng.random((15, 25), dtype=np.float32)
    out = guided_upsample(wild, to_gray(small), gray_full, radius=2)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_dcp_estimates_smoke_density_and_colour() -> None:
    clear = textured_frame(128, 224, seed=6)
    clear[::9, ::9] = 0  # the prior: small dark pixels everywhere in clear tissue
    colour = np.array([0.95, 0.93, 0.9], np.float32)
    alpha = smooth_alpha(128, 224, peak=0.98)  # a dense plume in the middle, clear edges
    smoky = composite(clear / 255.0, alpha, colour).astype(np.float32)
    layer = estimate_smoke_layer(smoky, patch_size=9)
    np.testing.assert_allclose(layer.colour, colour, atol=0.05)
    assert np.corrcoef(layer.alpha.ravel(), alpha.ravel())[0, 1] > 0.9
    assert abs(layer.alpha[64, 112] - 0.95 * alpha[64, 112]) < 0.1


def test_guide_radius_is_about_one_smoke_layer_cell() -> None:
    # The network's smoke layer is at 1/4 of the working resolution: 4 px cells at 256.
    assert guide_radius(256, 456) == 4
    assert guide_radius(512, 512) == 8
    assert guide_radius(64, 64) == 2  # never below 2


def _reference_restore(
    frame: np.ndarray, layer: SmokeLayer, guide_low: np.ndarray, strength: float
) -> np.ndarray:
    """The maths in whole-frame float64, independent of the strips and scratch buffers."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    alpha = guided_upsample(layer.alpha * np.float32(strength), guide_low, gray, radius=4)
    colour = layer.colour
    if colour.ndim == 3:
        colour = cv2.resize(colour, frame.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    alpha = alpha[..., None].astype(np.float64)
    clear = (frame / 255.0 - colour * alpha) / np.maximum(1 - alpha, 0.1)
    return np.clip(clear * 255, 0, 255)


def test_a_restorer_streams_frames_of_changing_size_like_the_maths() -> None:
    """Scratch buffers are reused across frames, strips and threads: each result must still
    be the whole-frame maths, and a result handed out must not change afterwards."""
    rng = np.random.default_rng(11)
    restorer = Restorer(threads=2, strip_bytes=4 * 200 * 9)  # strips of 9 rows at 200 wide
    kept = []
    for (height, width), map_colour, strength in [
        ((123, 200), True, 1.0),
        ((40, 64), False, 0.5),
        ((123, 200), False, 1.0),
        ((131, 77), True, 0.8),
    ]:
        frame = textured_frame(height, width, seed=height)
        small = cv2.resize(frame, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
        cells = (height // 8, width // 8)
        alpha = rng.random(cells, dtype=np.float32)
        colour = rng.random((*cells, 3), np.float32) if map_colour else rng.random(3, np.float32)
        layer = SmokeLayer(alpha, colour)
        out = restorer.restore(frame, layer, to_gray(small), strength=strength, radius=4)
        expected = _reference_restore(frame, layer, to_gray(small), strength)
        assert np.abs(out - expected).max() <= 0.51
        np.testing.assert_array_equal(
            out, restore(frame, layer, to_gray(small), strength=strength, radius=4)
        )
        kept.append((out, out.copy()))
    for out, copy in kept:
        np.testing.assert_array_equal(out, copy)


def test_row_strips_cover_every_row_once() -> None:
    for height, width, strip_bytes in [(1080, 1920, 1 << 20), (7, 5, 1 << 20), (100, 10, 400)]:
        strips = row_strips(height, width, strip_bytes)
        rows = np.concatenate([np.arange(height)[s] for s in strips])
        np.testing.assert_array_equal(rows, np.arange(height))
    assert len(row_strips(100, 10, 400)) == 10  # 400 bytes: 10 rows of 10 floats
    assert len(row_strips(100, 10, 40)) == 13  # never fewer than 8 rows a strip
