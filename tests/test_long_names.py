"""Outputs at the file system's limits: a name of up to 255 bytes is written (the hidden
temporary file beside it is named to fit), a longer one is refused in one line that names
the user's file; and frames wider than H.264 allows are refused saying what to do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from desmoke_app.cli import main
from engine.models import build_network, default_config, save_weights
from engine.video import Mp4Writer, VideoWriteError
from tests.clips import index_frame, make_index_clip

TOO_LONG = "File name too long"


def named(folder: Path, size: int, suffix: str = ".mp4") -> Path:
    """`folder`/a name of `size` bytes ending in `suffix`."""
    return folder / ("a" * (size - len(suffix)) + suffix)


def only_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_index_clip(tmp_path_factory.mktemp("in") / "in.mp4", n_frames=3, size=(64, 48))


@pytest.mark.parametrize("size", [249, 255])  # 249: the QA report's name
def test_a_long_legal_name_is_written(tmp_path, size: int) -> None:
    out = named(tmp_path, size)
    with Mp4Writer(out, fps=25, size=(64, 48)) as writer:
        (temp,) = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
        assert len(os.fsencode(temp.name)) <= 255 and temp.name.endswith(".partial.mp4")
        writer.write_image(index_frame(0, (64, 48)))
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.parametrize("size", [256, 300])
def test_a_name_too_long_is_refused_naming_the_users_file(tmp_path, size: int) -> None:
    out = named(tmp_path, size)
    with pytest.raises(VideoWriteError) as error:
        Mp4Writer(out, fps=25, size=(64, 48))
    assert str(error.value) == f"{out}: cannot write ({TOO_LONG})"
    assert list(tmp_path.iterdir()) == []


def test_cli_export_to_long_names(tmp_path, clip, capsys) -> None:
    legal, illegal = named(tmp_path, 250), named(tmp_path, 300)
    assert main(["export", str(clip), "-o", str(legal), "--model", "dcp"]) == 0
    capsys.readouterr()
    assert main(["export", str(clip), "-o", str(illegal), "--model", "dcp"]) == 1
    assert only_line(capsys) == f"desmoke: error: {illegal}: cannot write ({TOO_LONG})"
    assert [p.name for p in tmp_path.iterdir()] == [legal.name]


def test_cli_export_of_an_input_name_too_long_is_one_line(tmp_path, capsys) -> None:
    source = named(tmp_path, 300)
    assert main(["export", str(source), "--model", "dcp"]) == 1
    assert only_line(capsys) == f"desmoke: error: {source}: no such file"


def test_cli_synth_smoke_to_long_names(tmp_path, clip, capsys) -> None:
    legal, illegal = named(tmp_path, 255), named(tmp_path, 256)
    assert main(["synth-smoke", str(clip), str(legal)]) == 0
    capsys.readouterr()
    assert main(["synth-smoke", str(clip), str(illegal)]) == 1
    assert only_line(capsys) == f"desmoke: error: {illegal}: cannot write ({TOO_LONG})"
    assert [p.name for p in tmp_path.iterdir()] == [legal.name]


def test_cli_export_model_to_long_names(tmp_path, capsys) -> None:
    arch = {"widths": [8, 16, 32]}
    weights = save_weights(
        tmp_path / "w" / "fast.safetensors",
        build_network("fast", arch),
        default_config("fast", arch),
    )
    legal, illegal = named(tmp_path, 255, ".onnx"), named(tmp_path, 256, ".onnx")
    assert main(["export-model", str(weights), "--onnx", str(legal)]) == 0
    capsys.readouterr()
    assert main(["export-model", str(weights), "--onnx", str(illegal)]) == 1
    assert only_line(capsys) == f"desmoke: error: {illegal}: cannot write ({TOO_LONG})"
    folder = named(tmp_path, 300, "")
    assert main(["export-model", str(weights), "--onnx", str(folder / "x.onnx")]) == 1
    assert only_line(capsys) == f"desmoke: error: {folder}: output folder does not exist"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([legal.name, "w"])


def test_cli_export_wider_than_h264_allows_says_what_to_do(tmp_path, capsys) -> None:
    """As an 8K source in the 3-up layout (23040 px): here 3 x 5462 = 16386 px > 16384."""
    wide = make_index_clip(tmp_path / "wide.mp4", n_frames=1, size=(5462, 16))
    out = tmp_path / "out.mp4"
    assert main(["export", str(wide), "-o", str(out), "--model", "dcp"]) == 1
    assert only_line(capsys) == (
        f"desmoke: error: {out}: the 3up layout of 5462x16 frames is 16386x16, wider than "
        "H.264 allows (16384 px at most): use the 2up or vertical layout, or a smaller input"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["wide.mp4"]
