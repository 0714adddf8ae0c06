"""Training data: clear frames from videos and images, split by source frame, smoke on the fly.

Loading (`load_frames`) decodes every source once, crops a circular scope field to its
bounding box, keeps the frames in memory at a modest resolution, drops frames that fail
the quality filters and assigns each source frame to exactly one split. Splits are
contiguous blocks of frames (neighbouring video frames are near-duplicates, so a random
per-frame split would leak the test set into training); the held-out blocks are spread
through the interior of each video and `gap_frames` either side of them are dropped. A
source too short for three blocks (a single image) goes to training only.

`SmokeDataset` composites synthetic smoke (training.smoke) over crops as they are drawn:
nothing is pre-rendered. Training samples are random (crop, scale, flips, smoke) but a
pure function of (seed, index), so a resumed run sees the same stream; validation and
test samples are whole frames at the pipeline's working resolution with fixed seeds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from engine.dark_channel import dark_channel, default_patch_size
from engine.models import working_interpolation, working_shape
from engine.video import frame_size_problem, stated_image_size
from training.config import DataConfig
from training.metrics import colourfulness
from training.smoke import SmokeConfig, SmokeSynthesizer

log = logging.getLogger(__name__)

#: The files data sources and test sources take, by suffix (both read the same kinds).
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
SPLITS = ("train", "val", "test")
#: Pixels darker than this (max over RGB, 0-255, averaged over frames) are outside the scope.
SCOPE_BLACK_LEVEL = 16
#: Seed offsets so val and test never draw the same smoke as each other or as training.
_SPLIT_SEED = {"train": 0, "val": 1, "test": 2}


class DataError(ValueError):
    """Training data that cannot be used; the message names the file or folder."""


@dataclass
class Frame:
    source: str  # file it came from
    index: int  # frame number within the source (0 for an image)
    image: np.ndarray  # uint8 HxWx3 RGB, scope-cropped and resized


@dataclass
class FrameSet:
    """Frames per split, and what was read (for the model card)."""

    splits: dict[str, list[Frame]]
    sources: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "sources": self.sources,
            "frames": {name: len(frames) for name, frames in self.splits.items()},
        }


# ----------------------------------------------------------------------------- reading


def _list_sources(paths: Sequence[str]) -> list[Path]:
    """Files to read, checked before any decoding: missing paths and empty folders fail."""
    if not paths:
        raise DataError("no data sources given ([data] sources is empty)")
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            try:
                inside = sorted(
                    p
                    for p in path.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
                )
            except OSError as exc:
                raise DataError(f"{path}: cannot read the folder ({exc.strerror})") from None
            if not inside:
                raise DataError(f"{path}: folder has no images or videos")
            videos = [p for p in inside if p.suffix.lower() in VIDEO_SUFFIXES]
            images = [p for p in inside if p.suffix.lower() in IMAGE_SUFFIXES]
            files.extend(videos)
            if images:
                files.append(path)  # a folder of images is one source (a sequence)
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                raise DataError(f"{path}: not a known image or video type")
            files.append(path)
        else:
            raise DataError(f"{path}: data source not found")
    return files


def read_image(path: Path) -> np.ndarray:
    """An image file as uint8 RGB HxWx3; a clear error when it cannot be read, or is larger
    than desmoke handles (engine.video.MAX_FRAME_SIDE, as video frames).

    numpy reads the bytes and OpenCV decodes them: on Windows cv2.imread cannot open a
    path outside the ANSI code page (an accented user name, "OneDrive - Hôpital") and
    gives None, which would read as a broken image.
    """
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the image ({exc.strerror or exc})") from None
    # The size the header states, before decoding: a small file can state a huge image
    # (OpenCV decodes up to a gigapixel). Where stated_image_size finds none (a TIFF whose
    # directory comes after 1 MB of pixels, a format it does not read), once decoded.
    _check_image_size(path, stated_image_size(data))
    try:  # imdecode refuses an empty buffer (an empty file) by raising
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:
        image = None
    if image is None:
        raise DataError(f"{path}: not a readable image")
    _check_image_size(path, (image.shape[1], image.shape[0]))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _check_image_size(path: Path, size: tuple[int, int] | None) -> None:
    problem = frame_size_problem(*size) if size else ""
    if problem:
        raise DataError(f"{path}: {problem}")


def _image_frames(path: Path) -> Iterator[np.ndarray]:
    """One image, or the images of a folder in name order (all of one size)."""
    if path.is_file():
        yield read_image(path)
        return
    size = None
    for file in sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        image = read_image(file)
        if size is None:
            size, first = image.shape[:2], file
        elif image.shape[:2] != size:
            raise DataError(
                f"{file}: image is {image.shape[1]}x{image.shape[0]}, but {first.name} in the "
                f"same folder is {size[1]}x{size[0]} (images of mixed sizes)"
            )
        yield image


def _video_frames(path: Path, step: int, warn: bool = True) -> Iterator[np.ndarray]:
    """Every `step`-th frame of a video, as the app shows it (square pixels, upright),
    through the engine's reader: a file cut short (an interrupted copy) gives its frames up
    to the cut, with a warning (`warn`) once they have all been read."""
    from engine.video import FileSource, VideoError, cut_short_warning

    try:
        with FileSource(path) as source:
            for notice in source.notices if warn else ():  # several video streams, no colour
                log.warning("%s", notice)
            for index, frame in enumerate(source.frames()):
                if index % step == 0:
                    yield frame.rgb
            warning = cut_short_warning(path, source.end_time or 0.0, source.video_duration)
    except VideoError as exc:  # FileSource's line names the file and says why
        raise DataError(str(exc)) from None
    if warning and warn:
        log.warning("%s", warning)


def _frames_of(path: Path, config: DataConfig, warn: bool = True) -> Iterator[np.ndarray]:
    """The frames of a source, up to data.max_frames; `warn`: say what is wrong with them
    (reading a source twice, say it once)."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        frames = _video_frames(path, config.frame_step, warn)
    else:
        frames = _image_frames(path)
    for count, frame in enumerate(frames):
        if config.max_frames and count >= config.max_frames:
            return
        yield frame


def scope_box(frames: Sequence[np.ndarray] | Iterator[np.ndarray]) -> tuple[int, int, int, int]:
    """Bounding box (top, bottom, left, right) of the lit field: the scope circle's box.

    The mean over frames of the per-pixel max over RGB is thresholded; rows and columns
    with a few lit pixels bound the field. Without a dark surround it is the whole frame.
    """
    total = None
    count = 0
    for frame in frames:
        value = frame.max(axis=2).astype(np.float32)
        total = value if total is None else total + value
        count += 1
    if total is None:
        raise ValueError("no frames")
    lit = (total / count) > SCOPE_BLACK_LEVEL
    rows = np.flatnonzero(lit.mean(axis=1) > 0.02)
    cols = np.flatnonzero(lit.mean(axis=0) > 0.02)
    height, width = lit.shape
    if rows.size == 0 or cols.size == 0:
        return 0, height, 0, width
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _resize_short(image: np.ndarray, short_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    if short_side <= 0 or min(height, width) == short_side:
        return image
    scale = short_side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def quality(image: np.ndarray) -> dict[str, float]:
    """Sharpness (Laplacian variance), brightness (mean grey) and colourfulness, 0-255 scale."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return {
        "sharpness": float(cv2.Laplacian(grey, cv2.CV_64F).var()),
        "brightness": float(grey.mean()),
        "colourfulness": colourfulness(image),
    }


def _passes(image: np.ndarray, config: DataConfig) -> bool:
    q = quality(image)
    return (
        q["sharpness"] >= config.min_sharpness
        and config.min_brightness <= q["brightness"] <= config.max_brightness
        and q["colourfulness"] >= config.min_colourfulness
    )


# ----------------------------------------------------------------------------- splits


def split_of_frames(count: int, config: DataConfig) -> list[str | None]:
    """Split name for each of `count` consecutive frames of one source (None: dropped gap).

    Blocks of `block_frames` frames; the held-out blocks (test, val alternating) are spread
    evenly over the interior blocks, so neither end of a clip is held out wholesale.
    """
    blocks = math.ceil(count / config.block_frames)
    labels: list[str | None] = ["train"] * count
    if blocks < 3:
        return labels
    n_test = max(1, round(blocks * config.test_fraction)) if config.test_fraction > 0 else 0
    n_val = max(1, round(blocks * config.val_fraction)) if config.val_fraction > 0 else 0
    held = n_test + n_val
    interior = blocks - 2
    if held > interior:
        raise DataError(
            f"{count} frames make {blocks} blocks of {config.block_frames}: too few to hold out "
            f"{n_test} test and {n_val} val blocks (lower data.block_frames)"
        )
    order: list[str] = []
    while len(order) < held:  # test, val, test, val, ... until both counts are met
        if order.count("test") < n_test:
            order.append("test")
        if order.count("val") < n_val:
            order.append("val")
    positions = [1 + int((j + 0.5) * interior / held) for j in range(held)]
    for name, block in zip(order, positions, strict=True):
        start = block * config.block_frames
        stop = min(count, start + config.block_frames)
        for i in range(max(0, start - config.gap_frames), min(count, stop + config.gap_frames)):
            if labels[i] == "train":
                labels[i] = None
        for i in range(start, stop):
            labels[i] = name
    return labels


def _scope_box_of(path: Path, config: DataConfig) -> tuple[int, int, int, int]:
    try:
        return scope_box(_frames_of(path, config, warn=False))  # said as they are stored
    except DataError:
        raise
    except ValueError:  # scope_box saw no frames
        raise DataError(f"{path}: no decodable frames") from None


def _stored_frames(
    path: Path, config: DataConfig, box: tuple[int, int, int, int] | None, short: int
) -> list[np.ndarray]:
    """The frames of a source as training keeps them: the scope cropped, resized to a short
    side of `short` px; a source smaller than that is said to be upscaled."""
    raw = []
    for image in _frames_of(path, config):
        if not raw:
            _warn_if_upscaled(path, image, box, short)
        if box is not None:
            top, bottom, left, right = box
            image = image[top:bottom, left:right]
        raw.append(np.ascontiguousarray(_resize_short(image, short)))
    if not raw:
        raise DataError(f"{path}: no decodable frames")
    return raw


def _warn_if_upscaled(
    path: Path, image: np.ndarray, box: tuple[int, int, int, int] | None, short: int
) -> None:
    """A source whose frames (scope) are smaller than the stored size is upscaled: the
    network would learn from interpolated detail, which real footage does not have."""
    height, width = image.shape[:2]
    size = f"{width}x{height} frames"
    if box is not None and (box[1] - box[0], box[3] - box[2]) != (height, width):
        height, width = box[1] - box[0], box[3] - box[2]
        size += f" (their scope: {width}x{height})"
    if 0 < min(height, width) < short:
        log.warning(
            "%s: %s are upscaled to a short side of %d px (data.store_short_side) for "
            "training: the network learns from detail blurred by the upscaling",
            path,
            size,
            short,
        )


def load_frames(config: DataConfig, store_short_side: int | None = None) -> FrameSet:
    """Read every source, crop the scope, filter, split; errors name the file.

    store_short_side: override of config.store_short_side (0 keeps the native size).
    """
    short = config.store_short_side if store_short_side is None else store_short_side
    files = _list_sources(config.sources)
    splits: dict[str, list[Frame]] = {name: [] for name in SPLITS}
    described = []
    for path in files:
        box = _scope_box_of(path, config) if config.scope_crop else None
        raw = _stored_frames(path, config, box, short)
        try:
            labels = split_of_frames(len(raw), config)
        except DataError as exc:  # the split's own words: which source is too short
            raise DataError(f"{path}: {exc}") from None
        kept = {name: 0 for name in SPLITS}
        rejected = 0
        for index, (image, label) in enumerate(zip(raw, labels, strict=True)):
            if label is None:
                continue
            if not _passes(image, config):
                rejected += 1
                continue
            splits[label].append(Frame(str(path), index * config.frame_step, image))
            kept[label] += 1
        described.append(
            {
                "path": str(path),
                "frames": len(raw),
                "size": [int(raw[0].shape[1]), int(raw[0].shape[0])],
                "scope_box": list(box) if box is not None else None,
                "rejected_by_filters": rejected,
                "kept": kept,
            }
        )
    if not splits["train"]:
        raise DataError(
            f"no training frames left from {', '.join(map(str, files))} "
            "(all rejected by the quality filters?)"
        )
    return FrameSet(splits, described)


# ----------------------------------------------------------------------------- dataset


def network_input(smoky: np.ndarray) -> np.ndarray:
    """4xHxW float32: RGB + dark channel (default patch for the size), as the pipeline does."""
    patch = default_patch_size(*smoky.shape[:2])
    dark = dark_channel(smoky, patch)
    return np.concatenate([smoky.transpose(2, 0, 1), dark[None]], axis=0)


def _to_item(smoky: np.ndarray, clear: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> dict:
    return {
        "input": torch.from_numpy(np.ascontiguousarray(network_input(smoky))),
        "clear": torch.from_numpy(np.ascontiguousarray(clear.transpose(2, 0, 1))),
        "alpha": torch.from_numpy(np.ascontiguousarray(alpha[None])),
        "colour": torch.from_numpy(np.asarray(colour, dtype=np.float32)),
    }


class SmokeDataset(Dataset):
    """Smoky/clear pairs composited on the fly.

    train=True: index i -> a random frame, scale (working scale x scale_jitter), square
    crop, flips and smoke, all drawn from a generator seeded by (seed, i): any index is
    reproducible, so the stream resumes exactly. `clean_probability` of the samples carry
    no smoke at all (alpha = 0): the network must learn to leave clear tissue and bright
    metal alone. train=False: sample i is frame i mod n, whole, resized to the working
    resolution (a multiple of `stride`), with smoke seeded by (seed, split, i).
    """

    def __init__(
        self,
        frames: Sequence[Frame],
        *,
        train: bool,
        crop: int = 256,
        working_short_side: int = 256,
        stride: int = 16,
        scale_jitter: Sequence[float] = (0.8, 1.25),
        clean_probability: float = 0.1,
        length: int | None = None,
        seed: int = 0,
        split: str = "train",
        smoke: SmokeConfig | None = None,
    ) -> None:
        if not frames:
            raise DataError(f"the {split} split has no frames")
        self.frames = list(frames)
        self.train = train
        self.crop = crop
        self.working_short_side = working_short_side
        self.stride = stride
        self.scale_jitter = tuple(scale_jitter)
        self.clean_probability = clean_probability
        self.length = length if length is not None else (2**62 if train else len(self.frames))
        self.seed = seed
        self.split = split
        self.synth = SmokeSynthesizer(smoke or SmokeConfig(), seed)
        self.weights = self._source_weights()

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, _SPLIT_SEED[self.split], index))

    def _source_weights(self) -> np.ndarray:
        """Per-frame sampling probability: a source weighs sqrt(its frame count), so a single
        image (e.g. the one with a large instrument) is not drowned by a 250-frame clip."""
        counts: dict[str, int] = {}
        for frame in self.frames:
            counts[frame.source] = counts.get(frame.source, 0) + 1
        weights = np.array([1.0 / math.sqrt(counts[f.source]) for f in self.frames])
        return weights / weights.sum()

    def _train_crop(self, rng: np.random.Generator) -> np.ndarray:
        image = self.frames[int(rng.choice(len(self.frames), p=self.weights))].image
        height, width = image.shape[:2]
        scale = self.working_short_side / min(height, width) * rng.uniform(*self.scale_jitter)
        scale = max(scale, self.crop / min(height, width))  # the crop must fit
        size = (max(self.crop, round(width * scale)), max(self.crop, round(height * scale)))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, size, interpolation=interpolation)
        top = int(rng.integers(image.shape[0] - self.crop + 1))
        left = int(rng.integers(image.shape[1] - self.crop + 1))
        image = image[top : top + self.crop, left : left + self.crop]
        if rng.random() < 0.5:
            image = image[:, ::-1]
        if rng.random() < 0.5:
            image = image[::-1]
        return np.ascontiguousarray(image)

    def _eval_frame(self, index: int) -> np.ndarray:
        image = self.frames[index % len(self.frames)].image
        height, width = working_shape(*image.shape[:2], self.working_short_side, self.stride)
        interpolation = working_interpolation(*image.shape[:2], height, width)
        return cv2.resize(image, (width, height), interpolation=interpolation)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = self._rng(index)
        image = self._train_crop(rng) if self.train else self._eval_frame(index)
        sample = self.synth.sample(image, rng)
        if self.train and rng.random() < self.clean_probability:
            alpha = np.zeros_like(sample.alpha)
            return _to_item(sample.clear, sample.clear, alpha, sample.colour)
        return _to_item(sample.smoky, sample.clear, sample.alpha, sample.colour)


class StreamSampler(Sampler[int]):
    """Indices start, start + stride, ... (a resumable stream; one rank's share under DDP)."""

    def __init__(self, start: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.start, self.rank, self.world_size = start, rank, world_size

    def __iter__(self) -> Iterator[int]:
        index = self.start * self.world_size + self.rank
        while True:
            yield index
            index += self.world_size
