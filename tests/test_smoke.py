"""Smoke synthesis: determinism, value ranges, compositing identity, clip coherence, video."""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from pathlib import Path

import av
import numpy as np
import pytest

from engine.restore import composite
from tests.frames import write_video
from training.config import ConfigError, config_from_dict, load_config
from training.smoke import (
    _FIELD_BOUNDS,
    SmokeConfig,
    SmokeSynthesizer,
    bright_grey_mask,
    fbm_field,
    synthesize_video,
)


def _frame(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """A tissue-like reddish frame with some texture (uint8)."""
    rng = np.random.default_rng(seed)
    base = np.array([170, 70, 60], np.float32)
    texture = rng.normal(0, 20, (height, width, 1)).astype(np.float32)
    return np.clip(base + texture, 0, 255).astype(np.uint8)


def _write_clip(path: Path, frames: int, width: int = 64, height: int = 48) -> None:
    write_video(path, [_frame(height, width, seed=i) for i in range(frames)])


def test_fbm_field_shape_range_and_determinism() -> None:
    a = fbm_field(512, 512, np.random.default_rng(7))
    b = fbm_field(512, 512, np.random.default_rng(7))
    c = fbm_field(512, 512, np.random.default_rng(8))
    assert a.shape == (512, 512) and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert abs(float(a.mean()) - 0.5) < 0.15 and a.std() > 0.05
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.05


def test_fbm_field_is_smooth() -> None:
    # Smoke is low-frequency: neighbouring pixels differ far less than distant ones.
    field = fbm_field(256, 256, np.random.default_rng(1))
    neighbour = np.abs(np.diff(field, axis=1)).mean()
    distant = np.abs(field[:, 128:] - field[:, :128]).mean()
    assert neighbour < distant / 10


def test_fbm_offset_translates_the_field() -> None:
    # angle 0, zoom 2: the work scale is 1, so an integer shift is exact up to OpenCV 4's
    # fixed-point warpAffine (5e-3; 2e-7 in OpenCV 5). Off by half a pixel it is ~2e-2.
    shifted = fbm_field(100, 150, np.random.default_rng(3), offset=(8, 5), zoom=2.0)
    base = fbm_field(100, 150, np.random.default_rng(3), zoom=2.0)
    np.testing.assert_allclose(shifted[:-5, :-8], base[5:, 8:], atol=1e-2)


def test_fbm_time_evolves_continuously() -> None:
    fields = [fbm_field(128, 128, np.random.default_rng(2), time=t) for t in np.arange(0, 2, 0.05)]
    steps = [np.abs(b - a).mean() for a, b in zip(fields[:-1], fields[1:], strict=True)]
    far = np.abs(fields[-1] - fields[0]).mean()
    assert max(steps) < far / 4  # no jump at integer lattice times


def test_sample_is_deterministic_for_a_seed() -> None:
    frame = _frame()
    a = SmokeSynthesizer(seed=5).sample(frame)
    b = SmokeSynthesizer(seed=5).sample(frame)
    c = SmokeSynthesizer(seed=6).sample(frame)
    for name in ("smoky", "clear", "alpha", "colour"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.alpha, c.alpha)
    # An explicit generator: the result depends only on its state.
    d = SmokeSynthesizer(seed=99).sample(frame, np.random.default_rng(11))
    e = SmokeSynthesizer(seed=1).sample(frame, np.random.default_rng(11))
    np.testing.assert_array_equal(d.smoky, e.smoky)


def test_sample_ranges_and_composite_identity() -> None:
    synth = SmokeSynthesizer(seed=0)
    frame = _frame()
    for _ in range(20):
        s = synth.sample(frame)
        assert s.smoky.shape == s.clear.shape == (96, 128, 3)
        assert s.alpha.shape == (96, 128) and s.colour.shape == (3,)
        for array in (s.smoky, s.clear, s.alpha, s.colour):
            assert array.dtype == np.float32
            assert array.min() >= 0.0 and array.max() <= 1.0
        np.testing.assert_allclose(s.smoky, composite(s.clear, s.alpha, s.colour), atol=1e-5)
        # White to grey-yellow: red >= green >= blue, all fairly bright.
        r, g, b = s.colour
        assert r >= g >= b and b >= 0.4


def test_float_input_equals_uint8_input() -> None:
    frame = _frame()
    a = SmokeSynthesizer(seed=2).sample(frame)
    b = SmokeSynthesizer(seed=2).sample(frame.astype(np.float32) / 255)
    np.testing.assert_allclose(a.smoky, b.smoky, atol=1e-6)


def test_sample_512_shape_and_dtype() -> None:
    s = SmokeSynthesizer(seed=3).sample(np.zeros((512, 512, 3), np.uint8))
    assert s.smoky.shape == (512, 512, 3) and s.alpha.shape == (512, 512)
    assert s.smoky.dtype == s.alpha.dtype == np.float32


def test_density_covers_faint_haze_to_dense_plumes() -> None:
    synth = SmokeSynthesizer(seed=4)
    rng = np.random.default_rng(0)
    fields = [synth.opacity(64, 64, rng) for _ in range(80)]
    peaks = np.array([f.max() for f in fields])
    assert peaks.min() < 0.2 and peaks.max() > 0.85
    # Alpha is used over the whole range: every tenth of [0, 1] gets some pixels.
    counts, _ = np.histogram(np.concatenate([f.ravel() for f in fields]), bins=10, range=(0, 1))
    assert (counts > 100).all(), counts


def test_bad_frames_raise_clear_errors() -> None:
    synth = SmokeSynthesizer()
    with pytest.raises(ValueError, match="HxWx3"):
        synth.sample(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        synth.sample(np.zeros((10, 10, 3), np.int32))
    with pytest.raises(ValueError, match="first frame"):
        list(synth.clip([_frame(), _frame(48, 64)], seed=0))


def test_bright_grey_instrument_can_stay_clear() -> None:
    frame = _frame(128, 128)
    frame[40:60, 10:120] = (200, 200, 205)  # a bright grey instrument shaft
    mask = bright_grey_mask(frame.astype(np.float32) / 255)
    assert mask[50, 60] > 0.9 and mask[110, 60] < 0.05
    # No painted instrument here: it could cover the shaft with darker metal.
    config = SmokeConfig(
        avoid_bright_probability=1.0,
        haze_probability=0.0,
        density=(0.9, 0.95),
        instrument_probability=0.0,
    )
    synth = SmokeSynthesizer(config, seed=0)
    for _ in range(10):
        s = synth.sample(frame)
        assert s.alpha[45:56, 20:110].max() < 0.05  # the shaft stays clear
    never = SmokeSynthesizer(
        SmokeConfig(avoid_bright_probability=0.0, haze=(0.2, 0.25), haze_probability=1.0), seed=0
    )
    assert never.sample(frame).alpha[45:56, 20:110].min() >= 0.2  # smoke may cover it too


def test_clip_is_temporally_coherent() -> None:
    frames = [_frame(96, 128, seed=0)] * 12
    synth = SmokeSynthesizer(seed=0)
    for seed in range(4):
        alphas = [s.alpha for s in synth.clip(frames, seed=seed)]
        samples = list(synth.clip(frames[:1], seed=seed))
        np.testing.assert_array_equal(samples[0].alpha, alphas[0])  # deterministic
        consecutive = np.mean(
            [np.abs(b - a).mean() for a, b in zip(alphas[:-1], alphas[1:], strict=True)]
        )
        rng = np.random.default_rng(seed)
        independent = np.mean([np.abs(synth.opacity(96, 128, rng) - a).mean() for a in alphas])
        assert consecutive < independent / 4, (consecutive, independent)
    colours = {tuple(s.colour) for s in synth.clip(frames, seed=1)}
    assert len(colours) == 1  # fixed colour per clip


def test_synthesize_video_writes_readable_mp4(tmp_path: Path) -> None:
    src, dst = tmp_path / "clear.mp4", tmp_path / "smoky.mp4"
    _write_clip(src, frames=10)
    assert synthesize_video(src, dst, seed=1) == 10
    with av.open(str(dst)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 10 and frames[0].shape == (48, 64, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clear.mp4", "smoky.mp4"]


def test_synthesize_video_keeps_the_audio(tmp_path: Path) -> None:
    from tests.clips import make_index_clip

    src = make_index_clip(tmp_path / "with_audio.mp4", n_frames=10, audio=True)
    dst = tmp_path / "smoky.mp4"
    assert synthesize_video(src, dst, seed=2) == 10
    with av.open(str(dst)) as container:
        assert container.streams.audio and container.streams.audio[0].codec_context.name == "aac"


def test_synthesize_video_bad_input_leaves_nothing(tmp_path: Path) -> None:
    dst = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match="missing.mp4: no such file"):
        synthesize_video(tmp_path / "missing.mp4", dst)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    with pytest.raises(ValueError, match="garbage.mp4"):
        synthesize_video(garbage, dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.mp4"]


def test_cli_synth_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from desmoke_app.commands import synth_smoke

    parser = argparse.ArgumentParser()
    synth_smoke.add_parser(parser.add_subparsers())
    src, dst = tmp_path / "clear.mp4", tmp_path / "smoky.mp4"
    _write_clip(src, frames=4)
    args = parser.parse_args(["synth-smoke", str(src), str(dst), "--seed", "3"])
    assert args.func(args) == 0 and dst.is_file()
    assert "4 frames" in capsys.readouterr().out
    args = parser.parse_args(["synth-smoke", str(tmp_path / "nope.mp4"), str(dst)])
    assert args.func(args) == 1
    assert "nope.mp4" in capsys.readouterr().err
    args = parser.parse_args(["synth-smoke", str(src), str(dst), "--density", "0.9", "0.2"])
    assert args.func(args) == 1
    assert "--density" in capsys.readouterr().err


@pytest.mark.parametrize("seed", ["-1", "4294967296", "x"])
def test_cli_synth_smoke_names_a_bad_seed(
    seed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from desmoke_app.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["synth-smoke", str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4"), "--seed", seed])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --seed:" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_synthesize_video_rejects_text_and_missing_folder(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("just some words\n" * 50)
    with pytest.raises(ValueError, match="notes.mp4"):
        synthesize_video(text, tmp_path / "out.mp4")
    src = tmp_path / "clear.mp4"
    _write_clip(src, frames=2)
    with pytest.raises(ValueError, match="output folder .*nowhere does not exist"):
        synthesize_video(src, tmp_path / "nowhere" / "out.mp4")
    with pytest.raises(ValueError, match="is the source video"):
        synthesize_video(src, src)  # the clear clip would be lost
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clear.mp4", "notes.mp4"]


def test_config_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError, match="density"):
        SmokeConfig(density=(0.5, 1.5))
    with pytest.raises(ValueError, match="density range"):
        SmokeConfig(density=(0.9, 0.1))
    with pytest.raises(ValueError, match="haze_probability"):
        SmokeConfig(haze_probability=2.0)
    with pytest.raises(ValueError, match="speckle_cells"):
        SmokeConfig(speckle_cells=0)
    with pytest.raises(ValueError, match="tint_probability"):
        SmokeConfig(tint_probability=-0.1)
    with pytest.raises(ValueError, match="tint range"):
        SmokeConfig(tint=(0.2, 0.1))
    with pytest.raises(ValueError, match="instrument_grey range"):
        SmokeConfig(instrument_grey=(0.8, 0.2))
    with pytest.raises(ValueError, match="white_balance_probability"):
        SmokeConfig(white_balance_probability=1.5)


@pytest.mark.parametrize(
    "table, message",
    [
        ({"haze": [0.0, 1.5]}, "haze must be in [0, 1], got (0.0, 1.5)"),
        ({"haze": [-0.1, 0.2]}, "haze must be in [0, 1], got (-0.1, 0.2)"),
        ({"zoom": [0.0, 2.0]}, "zoom must be > 0, got (0.0, 2.0)"),
        ({"anisotropy": [-1.0, 3.0]}, "anisotropy must be > 0, got (-1.0, 3.0)"),
        ({"gamma": [0.0, 1.6]}, "gamma must be > 0, got (0.0, 1.6)"),
        ({"lacunarity": 1.0}, "lacunarity must be > 1, got 1.0"),
        ({"gain": -0.5}, "gain must be in [0, 1], got -0.5"),
        ({"gain": 1.5}, "gain must be in [0, 1], got 1.5"),
        ({"colour_white": [1.2, 1.0, 1.0]}, "colour_white must be in [0, 1], got (1.2, 1.0, 1.0)"),
        ({"colour_brightness": [0.5, 1.2]}, "colour_brightness must be in [0, 1]"),
        ({"tint": [0.0, 1.5]}, "tint must be in [0, 1], got (0.0, 1.5)"),
        ({"softness": [-1.0, 3.5]}, "softness must be >= 0, got (-1.0, 3.5)"),
        ({"plume_scale": [0.0, 0.7]}, "plume_scale must be > 0, got (0.0, 0.7)"),
        ({"edge_fade_width": [0.0, 0.6]}, "edge_fade_width must be in [0, 0.5]"),
        ({"speckle": [-0.1, 0.06]}, "speckle must be >= 0, got (-0.1, 0.06)"),
        ({"speckle_cells": 1_000_000}, "speckle_cells must be in [1, 4096], got 1000000"),
        ({"white_balance": [0.0, 1.25]}, "white_balance must be > 0, got (0.0, 1.25)"),
        ({"darken": [0.0, 1.0]}, "darken must be > 0, got (0.0, 1.0)"),
        ({"blur_sigma": [-1.0, 1.5]}, "blur_sigma must be in [0, 100], got (-1.0, 1.5)"),
        ({"blur_sigma": [0.5, 1e6]}, "blur_sigma must be in [0, 100], got (0.5, 1000000.0)"),
        ({"instrument_thickness": [0.0, 0.12]}, "instrument_thickness must be in (0, 1]"),
        ({"instrument_thickness": [0.5, 2.0]}, "instrument_thickness must be in (0, 1]"),
        ({"drift": [-1.0, 2.0]}, "drift must be >= 0, got (-1.0, 2.0)"),
        ({"evolution": [-0.1, 0.08]}, "evolution must be >= 0, got (-0.1, 0.08)"),
        # Every (low, high) range is in order, not only the ones checked before.
        *(
            ({name: [high, low]}, f"{name} range must be (low, high) with low <= high")
            for name, low, high in (
                ("colour_brightness", 0.7, 1.0),
                ("coverage", -1.5, 1.0),
                ("softness", 0.8, 3.5),
                ("plume_scale", 0.2, 0.7),
                ("edge_fade_width", 0.0, 0.15),
                ("speckle", 0.0, 0.06),
                ("hue_shift_deg", -10.0, 10.0),
                ("blur_sigma", 0.5, 1.5),
                ("drift", 0.3, 2.0),
                ("evolution", 0.02, 0.08),
            )
        ),
        # The finest octave's lattice grows as lacunarity ** octaves: 20 would need terabytes.
        ({"octaves": 20}, "octaves 20, lacunarity 1.84, zoom (0.4, 2.0) and anisotropy"),
        ({"anisotropy": [1e-6, 3.0]}, "octaves 6, lacunarity 1.84, zoom (0.4, 2.0) and aniso"),
    ],
)
def test_every_smoke_value_out_of_range_is_one_line_naming_the_key(
    table: dict, message: str
) -> None:
    """The old checks let these through to a NumPy error, a memory blow-up or odd smoke."""
    with pytest.raises(ConfigError) as error:
        config_from_dict({"smoke": table}, "bad.toml")
    text = str(error.value)
    assert text.startswith(f"bad.toml: smoke: {message}") and "\n" not in text


def test_every_smoke_field_has_a_bound_or_is_marked_free() -> None:
    assert list(_FIELD_BOUNDS) == [f.name for f in dataclasses.fields(SmokeConfig)]


def test_the_edges_of_every_bound_still_synthesise() -> None:
    """The checks stop at what the synthesis can do: values on the edges give smoke."""
    config = SmokeConfig(
        octaves=8,  # 928 finest cells across, under the 1024 limit
        gain=1.0,
        haze=(1.0, 1.0),
        haze_probability=1.0,
        colour_brightness=(0.0, 1.0),
        softness=(0.0, 0.0),
        coverage=(-10.0, 10.0),
        edge_fade_width=(0.5, 0.5),
        speckle_cells=4096,
        hue_shift_deg=(-720.0, 720.0),
        blur_sigma=(0.0, 100.0),
        instrument_probability=1.0,
        instrument_thickness=(1.0, 1.0),
        augment_probability=1.0,
        drift=(0.0, 0.0),
        evolution=(0.0, 0.0),
    )
    frames = [_frame(48, 64, seed=i) for i in range(2)]
    for sample in SmokeSynthesizer(config).clip(frames, seed=4):
        assert np.isfinite(sample.smoky).all() and 0.0 <= sample.smoky.min()
        assert sample.smoky.max() <= 1.0
    sample = SmokeSynthesizer(config).sample(frames[0], np.random.default_rng(2))
    assert np.isfinite(sample.alpha).all()


SHIPPED_CONFIGS = sorted((Path(__file__).parents[1] / "training" / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_smoke_table_still_loads(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESMOKE_DATA", "/data")
    smoke = load_config(path).smoke
    for key, value in tomllib.loads(path.read_text()).get("smoke", {}).items():
        assert getattr(smoke, key) == (tuple(value) if isinstance(value, list) else value)


def test_white_balance_casts_the_clear_frame_and_stays_off_by_default() -> None:
    """Channel gains change the clear target (so the pair stays exact); with the default
    probability 0 nothing is drawn, so the default samples are unchanged."""
    frame = np.full((64, 64, 3), 0.5, np.float32)
    plain = SmokeSynthesizer(SmokeConfig(), 3).sample(frame, np.random.default_rng(9))
    again = SmokeSynthesizer(SmokeConfig(white_balance=(0.5, 0.6)), 3).sample(
        frame, np.random.default_rng(9)
    )
    np.testing.assert_array_equal(plain.smoky, again.smoky)
    config = SmokeConfig(
        white_balance_probability=1.0,
        white_balance=(0.5, 0.6),
        augment_probability=0.0,
        instrument_probability=0.0,
    )
    cast = SmokeSynthesizer(config, 3).sample(frame, np.random.default_rng(9))
    assert np.all((cast.clear >= 0.24) & (cast.clear <= 0.31))  # 0.5 x 0.5-0.6
    np.testing.assert_allclose(
        cast.smoky, composite(cast.clear, cast.alpha, cast.colour), atol=1e-5
    )


def test_flat_frames_lose_their_detail_and_stay_off_by_default() -> None:
    """Flat frames keep at most flat_detail of the frame's texture (over its own smooth
    colours or one random colour), the pair stays exact, and with the default probability 0
    nothing is drawn, so the default samples are unchanged."""
    frame = _frame(96, 128)
    plain = SmokeSynthesizer(SmokeConfig(), 3).sample(frame, np.random.default_rng(9))
    again = SmokeSynthesizer(SmokeConfig(flat_detail=(0.5, 0.6)), 3).sample(
        frame, np.random.default_rng(9)
    )
    np.testing.assert_array_equal(plain.smoky, again.smoky)
    config = SmokeConfig(
        flat_probability=1.0,
        flat_detail=(0.0, 0.1),
        augment_probability=0.0,
        instrument_probability=0.0,
    )
    texture = (frame / 255.0).std(axis=(0, 1))
    colours = set()
    for seed in range(8):
        flat = SmokeSynthesizer(config, 3).sample(frame, np.random.default_rng(seed))
        assert np.all(flat.clear.std(axis=(0, 1)) <= 0.1 * texture + 0.01)
        np.testing.assert_allclose(
            flat.smoky, composite(flat.clear, flat.alpha, flat.colour), atol=1e-5
        )
        colours.add(tuple(np.round(flat.clear.mean(axis=(0, 1)), 2)))
    # Some keep the frame's reddish mean, others take random colours far from it.
    tissue = frame.reshape(-1, 3).mean(axis=0) / 255.0
    distances = [np.abs(np.array(c) - tissue).max() for c in colours]
    assert min(distances) < 0.03 and max(distances) > 0.2


def _painted_shaft(grey: tuple, thickness: tuple, seed: int) -> tuple[float, float]:
    """(covered fraction, median brightness) of the shaft painted into the clear target."""
    config = SmokeConfig(
        instrument_probability=1.0,
        instrument_grey=grey,
        instrument_thickness=thickness,
        augment_probability=0.0,
    )
    frame = np.full((120, 160, 3), (230, 150, 140), np.uint8)  # bright flat tissue
    clear = SmokeSynthesizer(config).sample(frame, np.random.default_rng(seed)).clear
    painted = np.abs(clear - frame / 255.0).max(axis=2) > 0.02
    return float(painted.mean()), float(np.median(clear[painted].mean(axis=1)))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_painted_shafts_follow_the_configured_grey_and_thickness(seed: int) -> None:
    """Same draws, other ranges: a dark, thick shaft where the config asks for one."""
    default = SmokeConfig()
    thin_area, default_shade = _painted_shaft(
        default.instrument_grey, default.instrument_thickness, seed
    )
    thick_area, dark_shade = _painted_shaft((0.05, 0.1), (0.3, 0.35), seed)
    assert thick_area > 2 * thin_area
    # The shaded cylinder spans 0.45-1 x grey (plus a narrow specular stripe).
    assert dark_shade < 0.2 < default_shade


def _colours(config: SmokeConfig, count: int = 500) -> np.ndarray:
    rng = np.random.default_rng(11)
    return np.array(
        [SmokeSynthesizer(config).sample(_frame(8, 8), rng).colour for _ in range(count)]
    )


def test_tinted_smoke_leaves_the_white_to_yellow_line_by_the_drawn_chroma() -> None:
    plain = SmokeConfig()
    on_line = _colours(plain)
    # Untinted colours are a brightness times a point between white and grey-yellow: their
    # blue/red ratio lies between the two ends', and green sits between red and blue.
    ratio = on_line[:, 2] / on_line[:, 0]
    yellow = np.asarray(plain.colour_yellow)
    assert ratio.min() >= yellow[2] / yellow[0] - 1e-6 and ratio.max() <= 1 + 1e-6
    tinted = _colours(
        SmokeConfig(
            tint_probability=1.0,
            tint=(0.1, 0.1),
            colour_white=(0.8,) * 3,
            colour_yellow=(0.8,) * 3,
            colour_brightness=(1.0, 1.0),
        )
    )
    # A grey base (0.8) moved 0.1 off the grey axis at a random hue, nothing clipped.
    chroma = np.linalg.norm(tinted - tinted.mean(axis=1, keepdims=True), axis=1)
    np.testing.assert_allclose(chroma, 0.1, atol=1e-5)
    np.testing.assert_allclose(tinted.mean(axis=1), 0.8, atol=1e-5)
    hues = np.arctan2(tinted[:, 1] - tinted[:, 2], 2 * tinted[:, 0] - tinted[:, 1] - tinted[:, 2])
    assert np.histogram(hues, bins=6, range=(-np.pi, np.pi))[0].min() > 40  # every hue drawn


def _speckle_only(height: int, width: int) -> np.ndarray:
    """alpha with speckle / without, same draws: the multiplicative speckle field."""
    config = SmokeConfig(
        speckle=(0.05, 0.05), augment_probability=1.0, density=(0.5, 0.5), haze=(0.0, 0.0)
    )
    plain = SmokeConfig(**{**config.__dict__, "speckle": (0.0, 0.0)})
    frame = _frame(height, width)
    noisy = SmokeSynthesizer(config).sample(frame, np.random.default_rng(3)).alpha
    clean = SmokeSynthesizer(plain).sample(frame, np.random.default_rng(3)).alpha
    inside = clean > 0.05
    return np.where(inside, noisy / np.where(inside, clean, 1.0), np.nan)


def test_speckle_grain_is_a_fraction_of_the_frame_not_a_pixel() -> None:
    # 64 cells across the short side: at 640 px a grain spans 10 pixels, so neighbouring
    # pixels share almost all of it, while pixels a grain apart do not.
    ratio = _speckle_only(640, 640)
    assert np.nanstd(ratio) > 0.01  # speckle is there
    neighbour = np.nanmean(np.abs(np.diff(ratio, axis=1)))
    apart = np.nanmean(np.abs(ratio[:, 20:] - ratio[:, :-20]))
    assert neighbour < apart / 5


def test_synthesize_video_keeps_each_frame_at_its_time(tmp_path: Path) -> None:
    """A variable frame rate comes out with the source's frame times, not re-timed."""
    from engine.video import FileSource
    from tests.clips import make_vfr_clip

    times = [i * 0.04 for i in range(8)] + [0.32 + i * 0.1 for i in range(8)]
    src = make_vfr_clip(tmp_path / "vfr.mp4", times)
    dst = tmp_path / "smoky.mp4"
    assert synthesize_video(src, dst, seed=3) == 16
    with FileSource(dst) as video:
        shown = [f.time for f in video.frames()]
    assert shown == pytest.approx(times, abs=0.002)


def test_synthesizing_over_grey_video_gives_no_desmoking_advice(tmp_path: Path, caplog) -> None:
    """QA: synth-smoke over a monochrome clip warned that desmoke's models 'may darken it;
    judge the result against the original pane': advice for desmoking, not for this."""
    from tests.clips import make_index_clip

    src = make_index_clip(tmp_path / "grey.mkv", n_frames=3, codec="ffv1", pix_fmt="gray")
    with caplog.at_level("WARNING"):
        assert synthesize_video(src, tmp_path / "smoky.mp4", seed=1) == 3
    assert "monochrome" not in caplog.text
