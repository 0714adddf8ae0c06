"""Full-reference scores and the clear-frame check over the lit scope field.

A laparoscopic frame keeps black round corners outside the scope's lit field. Where they
are near-black in output and reference alike, the whole frame's scores read them as
perfectly restored; where smoke lies over them too, its residual near black weighs heavily
in SSIM. The synthetic pairs and the clear-frame check are now scored over the lit field
too, beside the whole frame's figures (which earlier results quote)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from training import evaluate as ev
from training import metrics


def _scoped_pair(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A reference and a test frame in a round scope field: the corners black in both,
    the field differing (noise added)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 <= (size / 2) ** 2
    scene = np.clip(rng.normal((160, 90, 80), 20, (size, size, 3)), 30, 250)
    reference = np.where(inside[..., None], scene, 0).astype(np.uint8)
    noisy = reference.astype(np.float32) + rng.normal(0, 12, reference.shape)
    test = np.where(inside[..., None], np.clip(noisy, 0, 255), 0).astype(np.uint8)
    return reference, test


def _plain_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The same, without a scope surround: lit to the corners."""
    rng = np.random.default_rng(seed)
    reference = np.clip(rng.normal((160, 90, 80), 20, (48, 64, 3)), 30, 250).astype(np.uint8)
    test = np.clip(reference + rng.normal(0, 12, reference.shape), 0, 255).astype(np.uint8)
    return reference, test


def test_black_corners_inflate_the_whole_frame_scores_not_the_lit_fields() -> None:
    reference, test = _scoped_pair()
    field = ev.lit_field([reference])
    assert field is not None and 0.7 < field.mean() < 0.85  # a disc: pi/4 of its box
    whole = metrics.full_reference(reference, test)
    lit = metrics.full_reference(reference, test, field)
    assert lit["psnr"] < whole["psnr"] - 0.5
    assert lit["ssim"] < whole["ssim"]
    assert lit["ciede2000"] > whole["ciede2000"]
    # PSNR and CIEDE2000 over exactly the field's pixels.
    mse = np.mean((reference[field].astype(float) - test[field]) ** 2)
    assert lit["psnr"] == pytest.approx(10 * np.log10(255**2 / mse))


def test_lit_field_ssim_leaves_out_windows_straddling_the_fields_edge() -> None:
    """SSIM over a field is the SSIM map's mean over the pixels whose whole 7x7 window
    lies in the field: a window half over the black corners is not scene."""
    reference, test = _scoped_pair()
    field = ev.lit_field([reference])
    _, ssim_map = structural_similarity(reference, test, channel_axis=2, data_range=255, full=True)
    yy, xx = np.mgrid[:64, :64]
    inside = np.ones_like(field)
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            y, x = yy + dy, xx + dx
            within = (y >= 0) & (y < 64) & (x >= 0) & (x < 64)
            inside &= within & field[y.clip(0, 63), x.clip(0, 63)]
    assert metrics.ssim(reference, test, field) == pytest.approx(ssim_map[inside].mean())
    with pytest.raises(ValueError, match="holds no whole 7x7 SSIM window"):
        thin = np.zeros_like(field)
        thin[30:34, :] = True
        metrics.ssim(reference, test, thin)


def test_a_frame_without_dark_corners_scores_the_same_both_ways() -> None:
    reference, test = _plain_pair()
    assert ev.lit_field([reference]) is None  # lit to the corners: nothing to mask
    everything = np.ones(reference.shape[:2], bool)
    whole = metrics.full_reference(reference, test)
    assert metrics.full_reference(reference, test, everything) == pytest.approx(whole)
    pairs = [ev.TestPair(test, reference, np.zeros((48, 64), np.float32), "plain.png")]
    scores = ev.evaluate_pairs(pairs, {"identity": lambda f: f}, [None])["identity"]
    for key in ("psnr", "ssim", "ciede2000"):
        assert scores[f"lit_field_{key}"] == scores[key]


def test_lit_field_takes_in_the_box_around_the_scope_as_unlit() -> None:
    """scope_field's mask is of its box; the columns left and right of it are unlit too."""
    reference, _ = _scoped_pair()
    framed = np.zeros((64, 80, 3), np.uint8)
    framed[:, 8:72] = reference
    field = ev.lit_field([framed])
    assert field is not None and field.shape == (64, 80)
    assert not field[:, :8].any() and not field[:, 72:].any()
    np.testing.assert_array_equal(field[:, 8:72], ev.lit_field([reference]))
    assert ev.lit_field([np.zeros((16, 16, 3), np.uint8)]) is None  # nothing lit: no field


def test_one_lit_field_per_source() -> None:
    a, _ = _scoped_pair(seed=1)
    b, _ = _scoped_pair(seed=2)
    plain, _ = _plain_pair()
    frames = [("clip.mp4#0", a), ("clip.mp4#7", b), ("view.png", plain)]
    fields = ev.lit_fields(frames)
    assert fields[0] is fields[1] and fields[0] is not None  # one mask for the clip
    assert fields[2] is None
    assert ev.source_name("clip.mp4#12") == "clip.mp4"
    assert ev.source_name("a#b.png") == "a#b.png"


def test_report_gives_the_lit_field_figures_beside_the_whole_frames(tmp_path: Path) -> None:
    frames = [(f"scope.mp4#{i}", _scoped_pair(seed=i)[0]) for i in range(2)]
    darken = {"identity": lambda f: f, "darker": lambda f: (f * 0.9).astype(np.uint8)}
    clear = [("view.png", _scoped_pair(seed=5)[0])]
    report, _ = ev.evaluate(darken, frames, seed=1, clear_images=clear)
    field = ev.lit_field([frame for _, frame in frames])  # one mask for the source
    pairs = ev.synthetic_pairs(frames, seed=1)
    for key in ("psnr", "ssim", "ciede2000"):
        score = getattr(metrics, key)
        expected = np.mean([score(p.clear, p.smoky, field) for p in pairs])
        assert report.synthetic["identity"][f"lit_field_{key}"] == pytest.approx(expected)
        whole = np.mean([score(p.clear, p.smoky) for p in pairs])
        assert report.synthetic["identity"][key] == pytest.approx(whole)  # as before
    assert len(report.synthetic["darker"]["lit_field_psnr_per_frame"]) == 2
    share = report.synthetic_info["lit_field_fraction"]["scope.mp4"]
    assert 0.7 < share < 0.85
    row = next(r for r in report.clear if r["method"] == "darker")
    assert row["lit_field_mean_abs_change"] == pytest.approx(
        row["mean_abs_change"] / row["lit_field_fraction"]  # no change in the black corners
    )
    markdown = report.to_markdown()
    assert (
        "| method | PSNR dB, whole frame | SSIM, whole frame | CIEDE2000, whole frame | "
        "PSNR dB, lit field | SSIM, lit field | CIEDE2000, lit field | ms/frame |" in markdown
    )
    assert f"share of the frame: scope.mp4 {share:.1%}" in markdown
    assert "| mean abs change, whole frame | mean abs change, lit field | lit field area |" in (
        markdown
    )
    paths = ev.write_outputs(report, tmp_path, None)
    data = json.loads(paths["json"].read_text())
    assert {"psnr", "lit_field_psnr", "lit_field_ssim", "lit_field_ciede2000"} <= set(
        data["synthetic"]["darker"]
    )
