"""Evaluation: metrics against known values, the three-method table, outputs, the CLI."""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from engine.models import build_network, default_config, save_weights
from training import evaluate as ev
from training import metrics


@pytest.fixture(autouse=True)
def model_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def fast_weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_weights(
        tmp_path / "fast.safetensors", build_network("fast"), default_config("fast")
    )


def _tissue(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.array([170, 80, 70], np.float32) + rng.normal(0, 25, (height, width, 1))
    image = np.clip(base, 0, 255).astype(np.uint8)
    image[10:16, 5:60] = (210, 210, 215)  # a bright grey instrument
    return image


def _write_video(path: Path, frames: int, width: int = 64, height: int = 48) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264" if path.suffix == ".mp4" else "mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = _tissue(height, width, seed=i)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())


# ----------------------------------------------------------------------------- metrics


def test_identical_images_score_perfectly() -> None:
    image = _tissue()
    assert metrics.psnr(image, image) == math.inf
    assert metrics.ssim(image, image) == pytest.approx(1.0)
    assert metrics.ciede2000(image, image) == pytest.approx(0.0, abs=1e-9)


def test_metrics_known_values() -> None:
    image = _tissue()
    brighter = image.copy()
    brighter[image < 255] += 1  # MSE 1 where not saturated
    mse = np.mean((brighter.astype(float) - image) ** 2)
    assert metrics.psnr(image, brighter) == pytest.approx(10 * math.log10(255**2 / mse))
    black = np.zeros((16, 16, 3), np.uint8)
    white = np.full((16, 16, 3), 255, np.uint8)
    assert metrics.ciede2000(black, white) == pytest.approx(100.0, abs=0.01)  # L* 0 -> 100
    assert metrics.ssim(image, 255 - image) < 0.1
    assert metrics.psnr(black, white) == pytest.approx(0.0)


def test_no_reference_figures_known_values() -> None:
    grey = np.full((32, 32, 3), 128, np.uint8)
    assert metrics.colourfulness(grey) == 0.0
    assert metrics.rms_contrast(grey) == 0.0
    assert metrics.mean_dark_channel(grey) == pytest.approx(128 / 255)
    halves = np.zeros((32, 32, 3), np.uint8)
    halves[:, 16:] = 255
    assert metrics.rms_contrast(halves) == pytest.approx(0.5)
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255  # rg = 255, yb = 127.5, no spread: 0.3 * hypot(255, 127.5)
    assert metrics.colourfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5))
    assert metrics.mean_dark_channel(red) == 0.0
    assert metrics.clipped_fraction(grey) == 0.0 and metrics.clipped_fraction(red) == 1.0
    quarter = grey.copy()
    quarter[:16, :16, 2] = 255  # one channel at the top of its range is enough
    assert metrics.clipped_fraction(quarter) == 0.25
    darker = grey.copy()
    darker[:8, :, 1] = 0  # a quarter driven to black from the grey level
    assert metrics.crushed_fraction(grey, darker) == pytest.approx(0.25)
    assert metrics.crushed_fraction(darker, darker) == 0.0  # black before: not crushed
    faint = np.full_like(grey, metrics.CRUSHED_FROM_LEVEL - 1)
    assert metrics.crushed_fraction(faint, np.zeros_like(grey)) == 0.0  # too dark to count
    assert set(metrics.no_reference(grey)) == {
        "dark_channel",
        "rms_contrast",
        "colourfulness",
        "clipped",
    }


def test_metrics_reject_bad_pairs() -> None:
    with pytest.raises(ValueError, match="sizes differ"):
        metrics.psnr(_tissue(48, 64), _tissue(48, 63))
    with pytest.raises(ValueError, match="uint8"):
        metrics.ssim(_tissue().astype(np.float32), _tissue().astype(np.float32))
    with pytest.raises(ValueError, match="too small"):
        metrics.ssim(_tissue(2, 64), _tissue(2, 64))


def test_temporal_error_is_change_the_clear_clip_does_not_have() -> None:
    clip = [_tissue(seed=i) // 2 + 60 for i in range(4)]  # moving content, room for offsets
    assert metrics.temporal_error(clip, clip) == 0.0
    assert metrics.temporal_error(clip, [f + 20 for f in clip]) == 0.0  # steady bias: no flicker
    flicker = [f + (5 if i % 2 else 0) for i, f in enumerate(clip)]
    assert metrics.temporal_error(clip, flicker) == pytest.approx(5.0)
    frozen = [clip[0]] * 4  # not following the clear clip's motion is an error too
    assert metrics.temporal_error(clip, frozen) > 1.0
    with pytest.raises(ValueError, match="two or more frames"):
        metrics.temporal_error(clip[:1], clip[:1])
    with pytest.raises(ValueError, match="sizes differ"):
        metrics.temporal_error(clip[:2], [_tissue(48, 63)] * 2)


# ----------------------------------------------------------------------------- evaluation


def test_synthetic_pairs_are_reproducible() -> None:
    frames = [(f"f{i}", _tissue(seed=i)) for i in range(3)]
    a = ev.synthetic_pairs(frames, seed=5)
    b = ev.synthetic_pairs(frames, seed=5)
    c = ev.synthetic_pairs(frames[1:], seed=5)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.smoky, y.smoky)
        np.testing.assert_array_equal(x.clear, y.clear)
    assert not np.array_equal(a[1].smoky, c[0].smoky)  # pair i depends on its index only
    assert all(p.smoky.dtype == np.uint8 and p.smoky.shape == (48, 64, 3) for p in a)


def test_contact_sheet_columns_line_up_across_aspect_ratios() -> None:
    wide, square = _tissue(48, 96, seed=1), _tissue(48, 48, seed=2)
    examples = [(name, f, {"dcp": f}) for name, f in (("wide", wide), ("square", square))]
    sheet = ev.contact_sheet(examples, ["identity", "dcp"], tile_width=64)
    # 3 tiles per row (input, dark channel, dcp), each 64 wide; rows 32 and 64 tall
    assert sheet.shape == (32 + 64, 3 * 64, 3)
    expected = cv2.resize(square, (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(sheet[32 + 40 :, 128:], expected[40:])  # below the label
    with pytest.raises(ValueError, match="no examples"):
        ev.contact_sheet([], ["dcp"])


def test_evaluation_table_lists_the_three_methods(fast_weights: Path, tmp_path: Path) -> None:
    methods, notes = ev.make_methods(str(fast_weights), backend="torch")
    assert list(methods) == ["identity", "dcp", "fast (fast.safetensors)"]
    # The weights by name and content: their path is the machine's, not the result's.
    digest = hashlib.sha256(fast_weights.read_bytes()).hexdigest()[:16]
    assert f"from fast.safetensors (sha256 {digest})" in notes[-1]
    assert str(fast_weights.parent) not in "".join(notes)
    frames = [(f"f{i}", _tissue(seed=i)) for i in range(4)]
    report, sheet = ev.evaluate(
        methods, frames, seed=1, clear_images=[("tool", _tissue(seed=9))], notes=notes
    )
    pairs = ev.synthetic_pairs(frames, seed=1)
    identity = report.synthetic["identity"]
    expected = np.mean([min(metrics.psnr(p.clear, p.smoky), ev.PSNR_CAP_DB) for p in pairs])
    assert identity["psnr"] == pytest.approx(expected)
    assert identity["frames"] == 4
    for result in report.synthetic.values():
        assert 0 < result["psnr"] <= ev.PSNR_CAP_DB and -1 <= result["ssim"] <= 1
        assert result["ciede2000"] >= 0
    markdown = report.to_markdown()
    for label in ("identity (smoky input)", "| dcp |", "fast (fast.safetensors)"):
        assert label in markdown
    assert {row["method"] for row in report.clear} == set(methods)
    assert sheet is not None and sheet.dtype == np.uint8 and sheet.shape[1] == 4 * 256
    paths = ev.write_outputs(report, tmp_path / "out", sheet)
    data = json.loads(paths["json"].read_text())
    assert data["methods"] == list(methods) and data["synthetic_info"]["seed"] == 1
    assert cv2.imread(str(paths["contact_sheet"])).shape == sheet.shape
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "contact_sheet.png",
        "evaluation.json",
        "evaluation.md",
    ]


def test_identity_on_clear_frames_changes_nothing() -> None:
    rows = ev.evaluate_clear([("tool", _tissue())], {"identity": lambda frame: frame})
    assert rows[0]["mean_abs_change"] == 0.0 and rows[0]["bright_grey_change"] == 0.0
    assert rows[0]["bright_grey_fraction"] > 0.05  # the instrument was found
    darken = ev.evaluate_clear([("tool", _tissue())], {"dark": lambda f: f // 2})
    assert darken[0]["bright_grey_change"] < -0.3


def test_frames_from_sources_and_bad_input(tmp_path: Path) -> None:
    video, image = tmp_path / "clip.mp4", tmp_path / "view.png"
    _write_video(video, 10)
    cv2.imwrite(str(image), _tissue(60, 80))
    frames = ev.frames_from_sources([video, image], count=5, max_side=40)
    assert len(frames) == 5 and frames[0][0] == "view.png"
    assert max(frames[0][1].shape[:2]) == 40 and frames[1][0] == "clip.mp4#0"
    with pytest.raises(ValueError, match="missing.mp4: no such file"):
        ev.frames_from_sources([tmp_path / "missing.mp4"], count=3)
    with pytest.raises(ValueError, match="notes.txt"):
        ev.frames_from_sources([tmp_path / "notes.txt"], count=3)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        ev.frames_from_sources([broken], count=1)


def test_video_frames_are_picked_while_decoding(tmp_path: Path) -> None:
    """Evenly spread picks, the frames a full read would pick, chosen as they are decoded (a
    long clip used to be decoded whole into memory first), however wrong its stated count."""
    from engine.video import FileSource

    video = tmp_path / "clip.mp4"
    _write_video(video, 30)
    with FileSource(video) as source:
        every = [frame.rgb for frame in source.frames()]
    picked = ev.read_video_frames(video, 4)
    assert len(picked) == 4
    for frame, index in zip(picked, (0, 10, 19, 29), strict=True):
        np.testing.assert_array_equal(frame, every[index])
    assert len(ev.read_video_frames(video)) == 30 == len(ev.read_video_frames(video, 99))

    class Stated:  # a source stating another frame count than it has
        def __init__(self, frame_count: int, exact: bool) -> None:
            self.frame_count, self.frame_count_exact = frame_count, exact

        def frames(self):
            yield from FileSource(video).frames()

    # Cut short (states 40, has 30), a rate-based guess far too high (an MKV or WebM of
    # variable rate: 614 for 30) or too low: always 4 frames spread over the whole clip.
    for stated in (Stated(40, True), Stated(614, False), Stated(8, False)):
        kept = ev._picked_frames(stated, 4)
        assert len(kept) == 4
        np.testing.assert_array_equal(kept[0], every[0])
        last = next(i for i in range(29, -1, -1) if np.array_equal(kept[-1], every[i]))
        assert last >= 24  # the end of the clip is sampled


def test_evaluate_takes_the_image_types_training_takes(tmp_path: Path) -> None:
    image = tmp_path / "view.webp"
    cv2.imwrite(str(image), _tissue(60, 80))
    frames = ev.frames_from_sources([image], count=1)
    assert frames[0][0] == "view.webp" and frames[0][1].shape == (60, 80, 3)


def _cli(argv: list[str]) -> int:
    from desmoke_app.commands import evaluate as command

    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["evaluate", *argv])
    return args.func(args)


def test_cli_evaluate_writes_report(
    fast_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clear, real = tmp_path / "clear", tmp_path / "real"
    clear.mkdir()
    real.mkdir()
    _write_video(clear / "clip.mp4", 6)
    cv2.imwrite(str(clear / "view.png"), _tissue(48, 64))
    _write_video(real / "smoke.avi", 4)
    out = tmp_path / "report"
    argv = ["--model", str(fast_weights), "--backend", "torch", "--frames", "3"]
    argv += ["--sources", str(clear / "clip.mp4"), str(clear / "view.png")]
    code = _cli([*argv, "--real", str(real), "--real-frames", "2", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "identity (smoky input)" in text and "smoke.avi" in text
    data = json.loads((out / "evaluation.json").read_text())
    assert [row["method"] for row in data["real"]] == data["methods"]
    assert "| crushed |" in text
    assert data["real"][0]["crushed"] == 0.0  # the input itself, unchanged
    assert (out / "contact_sheet.png").is_file()
    # A recorded report says when, where and how it was made.
    assert re.fullmatch(
        r"run \d{4}-\d\d-\d\d with desmoke \S+ \(commit (?:[0-9a-f]{7,}(?:\+dirty)?|unknown)\) "
        r"on .+ CPUs, load average [\d., ]+ as it began\), "
        r"Python .+: `desmoke.*`",
        data["notes"][-1],
    )


def test_cli_evaluate_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _cli(["--sources", str(tmp_path / "none.mp4"), "--no-real", "--out", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "none.mp4: no such file" in err and "Traceback" not in err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    image = tmp_path / "view.png"
    cv2.imwrite(str(image), _tissue())
    code = _cli(["--model", str(bad), "--sources", str(image), "--no-real", "--out", str(tmp_path)])
    assert code == 1 and "bad.safetensors" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors", "view.png"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--real-frames", "0"], "argument --real-frames: must be 1-100000, got 0"),
        (["--frames", "-3"], "argument --frames: must be 1-100000, got -3"),
        (["--frames", "two"], "argument --frames: expected a whole number, got 'two'"),
        (["--max-side", "5"], "argument --max-side: must be 64-8192, got 5"),
        (["--seed", "-1"], "argument --seed: must be 0-4294967295, got -1"),
    ],
)
def test_cli_evaluate_names_the_option_out_of_range(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from desmoke_app.cli import main

    out = tmp_path / "report"
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", "dcp", "--no-real", "--out", str(out), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_test_split_frames_are_held_out(tmp_path: Path) -> None:
    from training.config import DataConfig
    from training.data import load_frames

    video = tmp_path / "clip.mp4"
    _write_video(video, 30)
    data = DataConfig(sources=[str(video)], block_frames=5, gap_frames=1)
    frames = ev.test_split_frames(data)
    train = {f.index for f in load_frames(data, 0).splits["train"]}
    indices = {int(label.split("#")[1]) for label, _ in frames}
    assert indices and not indices & train  # no test frame is a training frame
    assert frames[0][1].shape == (48, 64, 3)  # native size kept
    assert len(ev.test_split_frames(data, count=2)) == 2
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), _tissue())
    with pytest.raises(ValueError, match="test split .* is empty"):
        ev.test_split_frames(DataConfig(sources=[str(image)]))


def test_cli_evaluate_on_a_config_test_split(
    fast_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_video(tmp_path / "clip.mp4", 30)
    config = tmp_path / "train.toml"
    config.write_text('[data]\nsources = ["clip.mp4"]\nblock_frames = 5\n')
    out = tmp_path / "report"
    argv = ["--model", str(fast_weights), "--backend", "torch", "--config", str(config)]
    assert _cli([*argv, "--no-real", "--out", str(out)]) == 0
    data = json.loads((out / "evaluation.json").read_text())
    assert data["synthetic_info"]["frames"] == 5 and data["synthetic_info"]["sources"] == [
        "clip.mp4"
    ]
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\nnonsense = 1\n")
    assert _cli([*argv[:-1], str(bad), "--no-real", "--out", str(out)]) == 1
    assert "nonsense" in capsys.readouterr().err


# ----------------------------------------------------------------------------- outputs


def _report_and_sheet(seed: int) -> tuple[ev.Report, np.ndarray]:
    """An evaluation whose every file differs with `seed`."""
    methods = {"identity": lambda frame: frame, "dark": lambda frame: frame // 2}
    frames = [(f"f{i}", _tissue(seed=i)) for i in range(2)]
    clear = [("tool", _tissue(seed=seed))]
    return ev.evaluate(methods, frames, seed=seed, clear_images=clear)


def _write(out: Path, seed: int) -> dict[str, Path]:
    report, sheet = _report_and_sheet(seed)
    return ev.write_outputs(report, out, sheet)


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_full_disk_leaves_the_earlier_results_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contact sheet did not fit: evaluation.json and .md were already the new run's."""
    out = tmp_path / "out"
    _write(out, seed=1)
    before = _contents(out)
    real_write = Path.write_bytes

    def full_at_the_png(path: Path, data: bytes) -> int:
        if data.startswith(b"\x89PNG"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(Path, "write_bytes", full_at_the_png)
    with pytest.raises(OSError, match="No space left"):
        _write(out, seed=2)
    assert _contents(out) == before and len(list(out.iterdir())) == 3  # no temporary left


def test_a_new_set_without_a_contact_sheet_removes_the_old_sheet(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write(out, seed=1)
    report, _ = _report_and_sheet(seed=2)
    paths = ev.write_outputs(report, out, None)
    assert set(paths) == {"markdown", "json"}
    assert sorted(p.name for p in out.iterdir()) == ["evaluation.json", "evaluation.md"]


@pytest.mark.parametrize("case", ["name too long", "under a file", "read-only"])
def test_cli_evaluate_checks_out_is_writable_before_evaluating(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_work(*args, **kwargs):
        raise AssertionError("evaluated before checking --out")

    monkeypatch.setattr(ev, "evaluate", no_work)
    out, reason = tmp_path / ("e" * 300), "File name too long"
    if case == "under a file":
        (tmp_path / "notes").write_text("mine")
        out, reason = tmp_path / "notes" / "report", "Not a directory"
    elif case == "read-only":  # as root, a read-only mode does not stop writes: simulated
        out, reason = tmp_path / "new" / "report", "Read-only file system"

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(tempfile, "mkstemp", read_only)
    code = _cli(["--model", "dcp", "--sources", str(tmp_path / "none.mp4"), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [f"desmoke: error: {out}: cannot write the results ({reason})"]
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        ["notes"] if case == "under a file" else []
    )


def test_cli_evaluate_leaves_no_folder_when_it_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "report"
    assert _cli(["--sources", str(tmp_path / "none.mp4"), "--no-real", "--out", str(out)]) == 1
    assert "none.mp4: no such file" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # made to check it is writable, removed again


# ----------------------------------------------------------------------------- the report says


def _scoped(frame: np.ndarray, pad: int = 20) -> np.ndarray:
    """The frame inside a black scope surround (a wider canvas, as a 16:9 camera gives)."""
    canvas = np.zeros((frame.shape[0] + 2 * pad, frame.shape[1] + 4 * pad, 3), np.uint8)
    canvas[pad:-pad, 2 * pad : -2 * pad] = frame
    return canvas


def _disc(size: int = 64, colour: tuple[int, int, int] = (128, 100, 90)) -> np.ndarray:
    """A flat lit disc whose box is the frame: its corners are the unlit surround."""
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size, 3), np.uint8)
    image[(yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 <= (size / 2) ** 2] = colour
    return image


def test_real_smoke_figures_leave_the_unlit_scope_border_out(tmp_path: Path) -> None:
    """A black surround read as contrast and as clipped pixels (37.8% clipped for every
    method on a DeSmoke-LAP frame in a scope surround): the same frame, with and without
    it, now reads the same; every method's output is scored over the input's field."""
    plain = np.clip(_tissue(48, 64), 2, 254)  # no channel at 0 or 255, none made so
    for name, image in (("plain.png", plain), ("scoped.png", _scoped(plain))):
        cv2.imwrite(str(tmp_path / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    methods = {"identity": lambda f: f, "darker": lambda f: (f * 0.8).astype(np.uint8)}
    rows, _ = ev.evaluate_real([tmp_path / "plain.png", tmp_path / "scoped.png"], methods)
    figures = ("dark_channel", "rms_contrast", "colourfulness", "clipped", "crushed")
    for alone, scoped in zip(rows[:2], rows[2:], strict=True):
        assert {k: scoped[k] for k in figures} == pytest.approx({k: alone[k] for k in figures})
        assert scoped["clipped"] == 0.0 and alone["scored_fraction"] == 1.0
    assert rows[2]["scored_fraction"] == pytest.approx(48 * 64 / (88 * 144))


def test_a_round_scope_field_is_scored_without_its_corners() -> None:
    disc = _disc()
    box, field = ev.scope_field([disc])
    assert box == (0, 64, 0, 64) and field is not None
    assert metrics.no_reference(disc, field) == pytest.approx(
        {
            "dark_channel": 90 / 255,  # no patch at the rim takes the black corners' 0
            "rms_contrast": 0.0,
            "colourfulness": 0.3 * math.hypot(28, 0.5 * 228 - 90),
            "clipped": 0.0,
        },
        abs=1e-6,  # float32 rounding of a flat field's deviation
    )
    shadow = disc.copy()
    shadow[28:36, 28:36] = 0  # a black shadow inside the field is scene: scored
    _, field = ev.scope_field([shadow])
    assert metrics.clipped_fraction(shadow, field) == pytest.approx(64 / field.sum())
    box, field = ev.scope_field([_tissue()])  # no surround: the whole frame, unmasked
    assert box == (0, 48, 0, 64) and field is None
    with pytest.raises(ValueError, match="bool mask of the image's 64x64 pixels"):
        metrics.no_reference(disc, np.ones((8, 8), bool))


@pytest.mark.skipif(
    not (Path(os.environ.get("DESMOKE_DATA", "/nonexistent")) / "real_smoke").is_dir(),
    reason="needs $DESMOKE_DATA/real_smoke",
)
def test_the_borderless_desmoke_lap_clips_are_scored_whole() -> None:
    """Their recorded figures stay as they were: no surround found, nothing masked."""
    clip = Path(os.environ["DESMOKE_DATA"]) / "real_smoke" / "desmokelap_input_9.avi"
    frames = ev.read_video_frames(clip, 10)
    assert ev.scope_field(frames) == ((0, 256, 0, 256), None)


def test_clear_images_say_which_are_training_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The clear check took $DESMOKE_DATA/clear's images, a training source of every config,
    without saying so: in-sample images are marked, against --config's sources."""
    from desmoke_app.commands import evaluate as command
    from training.config import DataConfig

    clear = tmp_path / "data" / "clear"
    clear.mkdir(parents=True)
    _write_video(clear / "clip.mp4", 30)
    cv2.imwrite(str(clear / "view.png"), _tissue(seed=3))
    cv2.imwrite(str(clear / "other.png"), _tissue(seed=4))
    monkeypatch.setenv("DESMOKE_DATA", str(tmp_path / "data"))
    config = tmp_path / "train.toml"
    config.write_text(
        '[data]\nsources = ["data/clear/clip.mp4", "data/clear/view.png"]\nblock_frames = 5\n'
    )
    out = tmp_path / "report"
    argv = ["--model", "dcp", "--config", str(config), "--frames", "2", "--no-real"]
    assert _cli([*argv, "--out", str(out)]) == 0
    assert "Images: other.png, view.png (a training source: in-sample)." in capsys.readouterr().out
    data = json.loads((out / "evaluation.json").read_text())
    assert data["clear_images"] == ["other.png", "view.png"]
    assert data["clear_in_sample"] == ["view.png"]
    # The default split is of the clear folder: its images are sources (the folder is one).
    default = DataConfig(sources=[str(clear)])
    paths = [clear / "other.png", clear / "view.png"]
    assert command._training_sources(default, paths) == {"other.png", "view.png"}
    assert command._training_sources(None, paths) == set()  # --sources: not training data


def test_report_records_each_methods_settings(tmp_path: Path) -> None:
    """--strength, --patch and --working-size reached dcp and the model but not the report."""
    methods, notes = ev.make_methods("dcp", strength=0.5, patch_size=9, working_short_side=128)
    report, _ = ev.evaluate(methods, [("f0", _tissue())], seed=1, notes=notes)
    expected = {"strength": 0.5, "patch_size": 9, "working_short_side": 128}
    assert report.settings == {"dcp": expected}  # identity has none
    assert (
        "- dcp: strength 0.5, patch 9 px at a 256 px short side, working short side 128 px"
        in report.to_markdown()
    )
    paths = ev.write_outputs(report, tmp_path, None)
    assert json.loads(paths["json"].read_text())["settings"] == {"dcp": expected}


def test_report_says_how_references_ssim_and_timing_were_made() -> None:
    report, _ = ev.evaluate({"identity": lambda f: f}, [("f0", _tissue())], seed=1)
    markdown = report.to_markdown()
    assert (
        "Clear references: the held-out frames after the synthesis's background "
        "augmentations, as in training (darken, gamma, hue shift and blur, each with p 0.5; "
        "a painted instrument with p 0.25), drawn with the smoke seed." in markdown
    )
    assert (
        "SSIM: skimage structural_similarity, 7x7 uniform window, sample covariance, "
        "mean over RGB channels." in markdown
    )
    assert "after 1 untimed warm-up frame per method" in markdown
    # The variant named is the one computed: skimage's defaults, not a Gaussian window.
    from skimage.metrics import structural_similarity

    a, b = _tissue(seed=1), _tissue(seed=2)
    assert metrics.ssim(a, b) == structural_similarity(a, b, channel_axis=2, data_range=255)
    gaussian = structural_similarity(
        a, b, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5
    )
    assert metrics.ssim(a, b) != pytest.approx(gaussian)


def test_ms_per_frame_leaves_the_first_calls_warm_up_out() -> None:
    """A 1-frame run read 70.7 ms against ~31 ms over 25 frames: the first call's set-up."""
    calls = []

    def slow_first_call(frame: np.ndarray) -> np.ndarray:
        if not calls:
            time.sleep(0.3)
        calls.append(1)
        return frame

    pairs = ev.synthetic_pairs([(f"f{i}", _tissue(seed=i)) for i in range(2)], seed=1)
    result = ev.evaluate_pairs(pairs, {"slow start": slow_first_call})
    assert result["slow start"]["ms"] < 100 and len(calls) == 3  # 1 untimed + 2 timed
    assert result["slow start"]["frames"] == 2


def test_cli_evaluate_real_given_a_file_says_it_takes_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "smoke.png"
    cv2.imwrite(str(image), _tissue())
    argv = ["--model", "dcp", "--sources", str(image), "--real", str(image)]
    assert _cli([*argv, "--out", str(tmp_path / "report")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"desmoke: error: --real {image}: is a file; --real takes a folder of clips/images"
    ]


def test_run_record_names_the_git_commit() -> None:
    """The benchmarks' headers named it; the evaluation's run note did not."""
    from desmoke_app import source_commit
    from desmoke_app.commands.evaluate import run_record

    commit = source_commit()
    assert re.fullmatch(r"[0-9a-f]{7,}(\+dirty)?|unknown", commit)
    if (Path(__file__).resolve().parents[1] / ".git").exists():
        assert commit != "unknown"
    assert f"(commit {commit})" in run_record()


def test_a_missing_real_smoke_folder_is_said_not_skipped_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """QA: without $DESMOKE_DATA/real_smoke the real-smoke part and contact sheet were
    left out without a word; now a note says so (and --no-real keeps quiet)."""
    image = tmp_path / "view.png"
    cv2.imwrite(str(image), _tissue(seed=3))
    monkeypatch.setenv("DESMOKE_DATA", str(tmp_path / "nothing"))
    argv = ["--model", "dcp", "--sources", str(image), "--frames", "1"]
    assert _cli([*argv, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "the real-smoke part and its contact sheet are left out" in err
    assert _cli([*argv, "--no-real", "--out", str(tmp_path / "b")]) == 0
    assert "real-smoke" not in capsys.readouterr().err
