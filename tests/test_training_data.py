"""Training data: sources, scope crop, quality filters, splits, on-the-fly smoke; bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.clips import make_index_clip, make_zero_frame_clip
from tests.frames import tissue, write_video
from training.config import DataConfig
from training.data import (
    DataError,
    SmokeDataset,
    StreamSampler,
    load_frames,
    scope_box,
    split_of_frames,
)


def write_image(path: Path, image: np.ndarray) -> Path:
    """As read_image reads: bytes through numpy (cv2.imwrite fails on Windows for a path
    outside the ANSI code page, e.g. a temporary folder under an accented user name)."""
    ok, png = cv2.imencode(path.suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    png.tofile(path)
    return path


@pytest.fixture
def windows_opencv_paths(monkeypatch) -> None:
    """cv2.imread and cv2.imwrite as on Windows: a path outside the ANSI code page (an
    accented user name) is not found, and they give None / False without a word."""
    imread, imwrite = cv2.imread, cv2.imwrite

    def ansi_imread(path, *args):
        return imread(path, *args) if str(path).isascii() else None

    def ansi_imwrite(path, *args):
        return imwrite(path, *args) if str(path).isascii() else False

    monkeypatch.setattr(cv2, "imread", ansi_imread)
    monkeypatch.setattr(cv2, "imwrite", ansi_imwrite)


def data_config(*sources: Path, **overrides) -> DataConfig:
    values = {"sources": [str(s) for s in sources], "store_short_side": 64, "block_frames": 5}
    values.update(overrides)
    return DataConfig(**values)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    return write_video(folder / "tissue.mp4", [tissue(i, scope=True) for i in range(40)])


# ----------------------------------------------------------------------------- splits


def test_splits_are_contiguous_disjoint_blocks_with_gaps() -> None:
    config = DataConfig(block_frames=25, val_fraction=0.1, test_fraction=0.1, gap_frames=3)
    labels = split_of_frames(250, config)
    test = [i for i, s in enumerate(labels) if s == "test"]
    val = [i for i, s in enumerate(labels) if s == "val"]
    assert len(test) == 25 and len(val) == 25
    assert test == list(range(test[0], test[0] + 25))  # one contiguous block
    assert val == list(range(val[0], val[0] + 25))
    assert 0 < test[0] and val[-1] < 249  # neither end of the clip is held out
    for block in (test, val):  # gap frames either side are in no split
        for i in (block[0] - 1, block[0] - 3, block[-1] + 1, block[-1] + 3):
            assert labels[i] is None
    assert labels[block[0] - 4] == "train"


def test_short_sources_go_to_training_only() -> None:
    assert split_of_frames(1, DataConfig()) == ["train"]
    assert split_of_frames(40, DataConfig(block_frames=25)) == ["train"] * 40


def test_too_many_held_out_blocks_is_an_error() -> None:
    with pytest.raises(DataError, match="too few"):
        split_of_frames(30, DataConfig(block_frames=10, val_fraction=0.4, test_fraction=0.4))


def test_a_source_too_short_to_split_is_named(clip: Path) -> None:
    config = data_config(clip, block_frames=10, val_fraction=0.4, test_fraction=0.4)
    with pytest.raises(DataError, match=r"tissue\.mp4: 40 frames make 4 blocks of 10: too few"):
        load_frames(config)


def test_load_frames_splits_by_source_frame(clip: Path, tmp_path: Path) -> None:
    image = write_image(tmp_path / "still.png", tissue(99, (80, 60)))
    frames = load_frames(data_config(clip, image))
    indices = {name: {(f.source, f.index) for f in frames.splits[name]} for name in frames.splits}
    assert indices["train"] and indices["val"] and indices["test"]
    assert not indices["train"] & indices["val"]
    assert not indices["train"] & indices["test"]
    assert not indices["val"] & indices["test"]
    assert (str(image), 0) in indices["train"]  # a single image is training data
    summary = frames.summary()
    assert summary["frames"] == {name: len(indices[name]) for name in indices}
    assert summary["sources"][0]["frames"] == 40


def test_scope_crop_removes_the_black_surround(clip: Path) -> None:
    frames = load_frames(data_config(clip, store_short_side=0))
    image = frames.splits["train"][0].image
    # The circle (diameter 64 in a 96x64 frame) is the box: 64 wide, not 96.
    assert abs(image.shape[1] - 64) <= 3 and image.shape[0] >= 62
    assert scope_box([tissue(0)]) == (0, 64, 0, 96)  # no surround: the whole frame


def test_quality_filters_reject_flat_dark_and_grey_frames(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_image(folder / "a_good.png", tissue(1))
    write_image(folder / "b_dark.png", tissue(2) // 12)
    write_image(folder / "c_flat.png", np.full((64, 96, 3), (180, 90, 80), np.uint8))
    grey = cv2.cvtColor(cv2.cvtColor(tissue(3), cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    write_image(folder / "d_grey.png", grey)
    frames = load_frames(data_config(folder, scope_crop=False))
    assert [f.index for f in frames.splits["train"]] == [0]
    assert frames.sources[0]["rejected_by_filters"] == 3


# ----------------------------------------------------------------------------- dataset


def test_training_samples_are_reproducible_and_in_range(clip: Path) -> None:
    frames = load_frames(data_config(clip))
    dataset = SmokeDataset(frames.splits["train"], train=True, crop=32, working_short_side=48)
    a, b, c = dataset[7], dataset[7], dataset[8]
    assert a["input"].shape == (4, 32, 32) and a["clear"].shape == (3, 32, 32)
    assert a["alpha"].shape == (1, 32, 32) and a["colour"].shape == (3,)
    for key in a:
        assert np.array_equal(a[key].numpy(), b[key].numpy())
        assert float(a[key].min()) >= 0.0 and float(a[key].max()) <= 1.0
    assert not np.array_equal(a["input"].numpy(), c["input"].numpy())
    # The 4th channel is the dark channel of the smoky RGB at the crop's default patch.
    from engine.dark_channel import dark_channel

    rgb = a["input"][:3].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(a["input"][3].numpy(), dark_channel(np.ascontiguousarray(rgb)))


def test_some_training_samples_have_no_smoke(clip: Path) -> None:
    frames = load_frames(data_config(clip))
    dataset = SmokeDataset(
        frames.splits["train"], train=True, crop=32, working_short_side=48, clean_probability=0.5
    )
    clean = [dataset[i] for i in range(20)]
    clean = [s for s in clean if float(s["alpha"].max()) == 0.0]
    assert 3 <= len(clean) <= 17
    for sample in clean:  # no smoke: the input is the clear frame itself
        assert np.array_equal(sample["input"][:3].numpy(), sample["clear"].numpy())


def test_validation_samples_are_whole_frames_at_the_working_resolution(clip: Path) -> None:
    frames = load_frames(data_config(clip))
    val = SmokeDataset(
        frames.splits["val"], train=False, working_short_side=32, stride=16, split="val"
    )
    test = SmokeDataset(
        frames.splits["test"], train=False, working_short_side=32, stride=16, split="test"
    )
    assert len(val) == len(frames.splits["val"])
    sample = val[0]
    assert sample["input"].shape[1] == 32 and sample["input"].shape[2] % 16 == 0
    assert np.array_equal(sample["input"].numpy(), val[0]["input"].numpy())
    assert float(sample["alpha"].max()) > 0  # validation always carries smoke
    assert test[0]["input"].shape[1] == 32


def test_stream_sampler_resumes_and_interleaves_ranks() -> None:
    def first(sampler: StreamSampler, n: int) -> list[int]:
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    assert first(StreamSampler(), 4) == [0, 1, 2, 3]
    assert first(StreamSampler(start=10), 2) == [10, 11]
    assert first(StreamSampler(0, rank=1, world_size=2), 3) == [1, 3, 5]


# ----------------------------------------------------------------------------- bad input


def test_missing_source_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothing\.mp4: data source not found"):
        load_frames(data_config(tmp_path / "nothing.mp4"))


def test_empty_folder_is_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="empty: folder has no images or videos"):
        load_frames(data_config(empty))


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    write_image(folder / "a.png", tissue(1))
    (folder / "b.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"b\.png: not a readable image"):
        load_frames(data_config(folder))


@pytest.mark.usefixtures("windows_opencv_paths")
def test_images_under_a_non_ascii_folder_are_read(tmp_path: Path) -> None:
    """QA: on Windows cv2.imread gave None under "C:/Users/José" or "OneDrive - Hôpital",
    and every image there was "not a readable image" (desmoke evaluate, training)."""
    from training.data import read_image

    folder = tmp_path / "OneDrive - Hôpital" / "José"
    folder.mkdir(parents=True)
    image = tissue(1)
    path = write_image(folder / "vue_opérée.png", image)
    assert np.array_equal(read_image(path), image)
    frames = load_frames(data_config(folder, scope_crop=False))
    assert frames.sources[0]["frames"] == 1


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.png", None, r"missing\.png: cannot read the image \(No such file"),
        ("empty.png", b"", r"empty\.png: not a readable image"),
    ],
)
def test_a_missing_or_empty_image_is_one_line(tmp_path: Path, name, content, message) -> None:
    from training.data import read_image

    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_image(path)


def test_images_of_mixed_sizes_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_image(folder / "a.png", tissue(1, (96, 64)))
    write_image(folder / "b.png", tissue(2, (80, 64)))
    with pytest.raises(DataError, match=r"b\.png: image is 80x64, but a\.png .* mixed sizes"):
        load_frames(data_config(folder))


def test_video_without_frames_is_named(tmp_path: Path) -> None:
    clip = make_zero_frame_clip(tmp_path / "empty.mkv")
    with pytest.raises(DataError, match=r"empty\.mkv: the video stream has no decodable frame"):
        load_frames(data_config(clip))
    with pytest.raises(DataError, match=r"empty\.mkv: the video stream has no decodable frame"):
        load_frames(data_config(clip, scope_crop=False))


def test_garbage_video_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(DataError, match=r"garbage\.mp4: not a readable video \(Invalid data"):
        load_frames(data_config(bad))


def test_no_sources_is_an_error() -> None:
    with pytest.raises(DataError, match="no data sources"):
        load_frames(DataConfig())


def test_rotated_training_video_is_read_upright(tmp_path: Path) -> None:
    """Frames for training come as the app shows them: a portrait phone clip stays portrait."""
    from tests.clips import read_index
    from training.data import _video_frames

    clip = make_index_clip(tmp_path / "portrait.mp4", n_frames=4, size=(96, 160), rotation=-90)
    frames = list(_video_frames(clip, step=1))
    assert [f.shape for f in frames] == [(160, 96, 3)] * 4  # 96 wide, 160 tall, upright
    assert [read_index(f) for f in frames] == [0, 1, 2, 3]


def test_training_frames_of_anamorphic_video_have_square_pixels(tmp_path) -> None:
    """As the app shows them: a 64:45 clip (720x576 PAL widescreen style) is stretched to
    its display width, not learnt squeezed."""
    from fractions import Fraction

    from training.data import _video_frames

    path = make_index_clip(
        tmp_path / "wide.mp4", n_frames=2, size=(90, 48), sample_aspect_ratio=Fraction(64, 45)
    )
    frames = list(_video_frames(path, step=1))
    assert [frame.shape for frame in frames] == [(48, 128, 3)] * 2


def all_frames_pass(*sources: Path, **overrides) -> DataConfig:
    """A config whose quality filters keep every frame (index clips are grey and flat)."""
    filters = dict(min_sharpness=0.0, min_brightness=0.0, max_brightness=255.0)
    filters.update(min_colourfulness=0.0, scope_crop=False)
    return data_config(*sources, **{**filters, **overrides})


def test_frame_step_and_max_frames_pick_the_frames_read(tmp_path: Path) -> None:
    from tests.clips import read_index

    clip = make_index_clip(tmp_path / "index.mp4", n_frames=30, size=(96, 64))
    frames = load_frames(all_frames_pass(clip, frame_step=3, max_frames=5, store_short_side=0))
    train = sorted(frames.splits["train"], key=lambda f: f.index)
    assert [f.index for f in train] == [0, 3, 6, 9, 12]  # 5 frames: too few to hold any out
    assert [read_index(f.image) for f in train] == [0, 3, 6, 9, 12]


def test_a_cut_short_video_is_read_up_to_the_cut_with_one_warning(tmp_path: Path, caplog) -> None:
    """QA: half an mp4 (`head -c`) was refused ("cannot decode ... avcodec_send_packet()"),
    while export and synth-smoke use it up to the cut with a warning."""
    from engine.video import FileSource
    from tests.clips import corrupt_clip

    whole = make_index_clip(tmp_path / "whole.mp4", n_frames=100, size=(96, 64))
    cut = corrupt_clip(whole, tmp_path / "cut.mp4", keep=0.5, flips=0)  # states 4 s
    with FileSource(cut) as source:
        decodable = sum(1 for _ in source.frames())
    assert 0 < decodable < 100
    with caplog.at_level("WARNING"):
        frames = load_frames(all_frames_pass(cut, scope_crop=True))  # read twice: the scope
    assert frames.sources[0]["frames"] == decodable
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("cut.mp4: the video ends at")
    assert "cut short" in warnings[0]
    caplog.clear()
    with caplog.at_level("WARNING"):  # frames before the cut only: no end, no warning
        load_frames(all_frames_pass(cut, max_frames=decodable // 2))
    assert not caplog.records


def test_a_source_smaller_than_the_training_size_is_said_once(tmp_path: Path, caplog) -> None:
    """QA: a 64x48 source was upscaled to the training size without a word."""
    tiny = write_video(tmp_path / "tiny.mp4", [tissue(i, (64, 48)) for i in range(12)])
    big = write_video(tmp_path / "big.mp4", [tissue(i, (128, 96)) for i in range(12)])
    with caplog.at_level("WARNING"):
        load_frames(data_config(tiny, big, store_short_side=64, block_frames=25))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"{tiny}: 64x48 frames are upscaled") and "64 px" in warnings[0]
    caplog.clear()
    with caplog.at_level("WARNING"):  # kept at their own size: nothing upscaled
        load_frames(data_config(tiny, store_short_side=0, block_frames=25))
    assert not caplog.records
