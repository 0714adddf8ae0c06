"""Full-resolution restoration: the inversion undoes the compositing used in synthesis."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.models.dcp import estimate_smoke_layer
from engine.restore import (
    SmokeLayer,
    composite,
    guide_radius,
    guided_upsample,
    invert_compositing,
    restore,
    to_gray,
)
from tests.frames import smooth_alpha, textured_frame


@pytest.mark.parametrize("colour", [np.array([0.9, 0.88, 0.8], np.float32), None])
def test_inversion_matches_float64_formula(colour: np.ndarray | None) -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (45, 77, 3), dtype=np.uint8)
    alpha = rng.random((45, 77), dtype=np.float32) * 0.99
    if colour is None:
        colour = rng.random((45, 77, 3), dtype=np.float32)
    expected = (frame / 255.0 - colour * alpha[..., None]) / np.maximum(1 - alpha, 0.1)[..., None]
    expected = np.clip(expected * 255, 0, 255)
    out = invert_compositing(frame, alpha, colour)
    assert out.dtype == np.uint8 and out.shape == frame.shape
    assert np.abs(out - expected).max() <= 0.51  # rounding to the nearest integer only


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
