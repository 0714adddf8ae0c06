"""Evaluation: a model against the identity baseline and the classical `dcp`, same frames.

1. Synthetic test pairs: clear frames with smoke from SmokeSynthesizer at a fixed seed
   (one generator per frame, so a pair never depends on which other frames are in the set).
   Full-reference PSNR / SSIM / CIEDE2000 of each method's output against the clear frame,
   over the whole frame (as earlier recorded results quote them) and over the lit scope
   field (lit_field, one per source: what the surgeon looks at; the unlit corners hold
   the synthetic smoke too, and near black SSIM punishes a residual of a few levels).
2. Real smoke (no ground truth): mean dark channel, RMS contrast, colourfulness and the
   clipped fraction before and after, per source, over the lit scope field (scope_field:
   a black surround would read as contrast and as clipped pixels).
3. Clear frames with instruments: how much each method changes a frame that has no smoke
   (over the whole frame and over its lit scope field), and how it changes bright grey
   regions (instruments, speculars) there: a model that has learned "bright and grey =
   smoke" darkens them.
4. A contact sheet: one row per real-smoke source (and clear image): input | dark channel |
   outputs.
Results: a Markdown report, a JSON file and the contact sheet, replaced together: an
error leaves an earlier evaluation's set whole, never part old and part new.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.dark_channel import dark_channel
from engine.files import file_sha256, replace_together
from training import metrics
from training.data import (
    IMAGE_SUFFIXES,
    SCOPE_BLACK_LEVEL,
    VIDEO_SUFFIXES,
    read_image,
    scope_box,
)
from training.smoke import SmokeConfig, SmokeSynthesizer, bright_grey_mask

log = logging.getLogger(__name__)

#: Seed of the synthetic test pairs (the training code draws from other seeds).
EVAL_SEED = 20_240_605
#: Per-frame PSNR of identical images is infinite; averages cap it here (a faint-haze pair's
#: identity baseline can be lossless after uint8 rounding).
PSNR_CAP_DB = 100.0
IDENTITY = "identity"
#: The full-reference scores, and the prefix of a figure's key over the lit scope field.
FULL_REFERENCE = ("psnr", "ssim", "ciede2000")
LIT_FIELD = "lit_field_"
#: The files of one evaluation, by write_outputs' keys (in the order it returns them).
OUTPUT_NAMES = {
    "markdown": "evaluation.md",
    "json": "evaluation.json",
    "contact_sheet": "contact_sheet.png",
}

#: A method maps a smoky uint8 HxWx3 RGB frame to its restored uint8 HxWx3 frame.
Method = Callable[[np.ndarray], np.ndarray]


@dataclass
class TestPair:
    """A synthetic test pair: the smoky input, its clear ground truth, where it came from."""

    smoky: np.ndarray  # uint8 HxWx3
    clear: np.ndarray  # uint8 HxWx3
    alpha: np.ndarray  # float32 HxW, the smoke's true opacity
    source: str


@dataclass
class Report:
    """Everything `desmoke evaluate` measured; `to_json` / `to_markdown` render it."""

    methods: list[str]
    synthetic: dict[str, dict[str, float]] = field(default_factory=dict)
    synthetic_info: dict[str, Any] = field(default_factory=dict)
    real: list[dict[str, Any]] = field(default_factory=list)
    clear: list[dict[str, Any]] = field(default_factory=list)
    #: The clear images of the "should stay unchanged" check, in order, and those of them
    #: that are training sources (a check on them is in-sample).
    clear_images: list[str] = field(default_factory=list)
    clear_in_sample: list[str] = field(default_factory=list)
    #: {method: {setting: value}} for the methods that take settings (not identity).
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=_json_default)

    def to_markdown(self) -> str:
        return "\n".join(_markdown(self)) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ----------------------------------------------------------------------------- frames


def read_video_frames(path: Path, count: int | None = None) -> list[np.ndarray]:
    """`count` frames evenly spaced over a video (all frames when None), uint8 RGB.

    Only the picked frames are kept while decoding: a long clip is never held whole."""
    from engine.video import FileSource, VideoError

    try:
        with FileSource(path) as source:
            for notice in source.notices:  # several video streams, no colour
                log.warning("%s", notice)
            frames = _picked_frames(source, count)
    except VideoError as exc:
        raise ValueError(str(exc)) from None
    if not frames:
        raise ValueError(f"{path}: no decodable video frames")
    return frames


def _picked_frames(source: Any, count: int | None) -> list[np.ndarray]:
    """`count` frames evenly spread over the source (all when None), kept as they decode.

    Picks come from the frame count where the container states it; where it is only
    duration x rate (MKV, WebM: wrong for a variable rate) or the file ends before it, every
    k-th frame is kept and k doubles whenever more than 2 x count are held, so memory stays
    bounded either way."""
    if count is None:
        return [frame.rgb for frame in source.frames()]
    if source.frame_count_exact:
        total = source.frame_count
        picks = set(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist())
        picked = [frame.rgb for index, frame in enumerate(source.frames()) if index in picks]
        if len(picked) == len(picks):
            return picked
        # Cut short: it ends before the frames it states; spread the picks over what decodes.
    kept, step = [], 1
    for index, frame in enumerate(source.frames()):
        if index % step == 0:
            kept.append(frame.rgb)
            if len(kept) > 2 * count:
                kept, step = kept[::2], step * 2
    if len(kept) <= count:
        return kept
    return [kept[i] for i in np.linspace(0, len(kept) - 1, count).round().astype(int)]


def frames_from_sources(
    sources: Sequence[Path], count: int, max_side: int | None = None
) -> list[tuple[str, np.ndarray]]:
    """About `count` frames spread over video and image files: (label, uint8 RGB frame)."""
    if not sources:
        raise ValueError("no test sources given")
    if count < 1:
        raise ValueError(f"frame count must be positive, got {count}")
    videos = [Path(p) for p in sources if Path(p).suffix.lower() in VIDEO_SUFFIXES]
    images = [Path(p) for p in sources if Path(p).suffix.lower() in IMAGE_SUFFIXES]
    unknown = [str(p) for p in sources if Path(p) not in videos + images]
    if unknown:
        raise ValueError(f"{unknown[0]}: not a video or image file type this reads")
    for path in videos + images:
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
    frames = [(f"{p.name}", read_image(p)) for p in images]
    per_video = max(1, math.ceil((count - len(frames)) / max(1, len(videos))))
    for path in videos:
        picked = read_video_frames(path, per_video)
        frames += [(f"{path.name}#{i}", frame) for i, frame in enumerate(picked)]
    return [(label, limit_size(frame, max_side)) for label, frame in frames[:count]]


def test_split_frames(
    data: Any, count: int | None = None, store_short_side: int = 0
) -> list[tuple[str, np.ndarray]]:
    """The held-out test split of a training data config (training.data.load_frames).

    data: a training.config.DataConfig; store_short_side 0 keeps the (scope-cropped) native
    resolution, so the pipeline is scored as a surgeon would see it. count: evenly spaced
    test frames (None: all of them).
    """
    from training.data import load_frames

    frames = load_frames(data, store_short_side).splits["test"]
    if not frames:
        sources = ", ".join(map(str, data.sources))
        raise ValueError(f"the test split of {sources} is empty (sources too short to hold out)")
    if count is not None and count < len(frames):
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, count).round().astype(int)]
    return [(f"{Path(f.source).name}#{f.index}", f.image) for f in frames]


def limit_size(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (area) so the longer side is at most max_side; None keeps the frame."""
    if max_side is None or max(frame.shape[:2]) <= max_side:
        return frame
    scale = max_side / max(frame.shape[:2])
    size = (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def synthetic_pairs(
    frames: Iterable[tuple[str, np.ndarray]],
    seed: int = EVAL_SEED,
    config: SmokeConfig | None = None,
) -> list[TestPair]:
    """Smoky/clear uint8 pairs; pair i uses its own generator (seed, i): reproducible."""
    synth = SmokeSynthesizer(config or SmokeConfig(), seed)
    pairs = []
    for index, (label, frame) in enumerate(frames):
        sample = synth.sample(frame, np.random.default_rng((seed, index)))
        pairs.append(
            TestPair(
                smoky=to_uint8(sample.smoky),
                clear=to_uint8(sample.clear),
                alpha=sample.alpha,
                source=label,
            )
        )
    if not pairs:
        raise ValueError("no frames to make test pairs from")
    return pairs


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as uint8, rounded."""
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


# ----------------------------------------------------------------------------- methods


def make_methods(
    model: str = "fast",
    *,
    weights: str | Path | None = None,
    backend: str = "auto",
    working_short_side: int | None = None,
    patch_size: int | None = None,
    strength: float = 1.0,
) -> tuple[dict[str, Method], list[str]]:
    """{label: method} for identity, dcp and the model (its label names the model), notes.

    The model raises WeightsError where no weights exist for it (none is swapped for
    dcp); a notice of its Desmoker (a backend handed over) is returned among the notes.
    """
    from engine.pipeline import Desmoker

    notes: list[str] = []
    options = {"working_short_side": working_short_side, "patch_size": patch_size}
    dcp = Desmoker("dcp", **options, strength=strength)
    methods: dict[str, Method] = {IDENTITY: lambda frame: frame, "dcp": DesmokerMethod(dcp)}
    desmoker = Desmoker(model, backend, weights=weights, **options, strength=strength)
    if desmoker.notice:
        notes.append(desmoker.notice)
    notes.append(desmoker.describe(weights_label(desmoker.weights_path)))
    if desmoker.model_name != "dcp":
        label = desmoker.model_name
        if desmoker.weights_path is not None:
            label = f"{label} ({desmoker.weights_path.name})"
        methods[label] = DesmokerMethod(desmoker)
    return methods, notes


def weights_label(path: Path | None) -> str | None:
    """Weights as a report names them: file name and sha256 (its path is the machine's)."""
    return None if path is None else f"{path.name} (sha256 {file_sha256(path)[:16]})"


@dataclass(frozen=True)
class DesmokerMethod:
    """A Method running an engine Desmoker; it also says the settings it runs with."""

    desmoker: Any  # engine.pipeline.Desmoker

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.desmoker.process(frame).desmoked

    def settings(self) -> dict[str, Any]:
        """The --strength, --patch and --working-size in effect (defaults resolved)."""
        return {
            "strength": self.desmoker.strength,
            "patch_size": self.desmoker.reference_patch,
            "working_short_side": self.desmoker.working_short_side,
        }


def method_settings(methods: dict[str, Method]) -> dict[str, dict[str, Any]]:
    """{label: settings} of the methods that have settings (identity has none)."""
    return {
        name: method.settings()
        for name, method in methods.items()
        if isinstance(method, DesmokerMethod)
    }


def _timed(method: Method, frame: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = method(frame)
    return out, (time.perf_counter() - start) * 1000.0


# ----------------------------------------------------------------------------- measures


#: Untimed frames each method runs before its timed ones: the first call pays one-off costs
#: (allocations, a backend's graph set-up, caches) that no later frame does.
WARMUP_FRAMES = 1


def evaluate_pairs(
    pairs: Sequence[TestPair],
    methods: dict[str, Method],
    fields: Sequence[np.ndarray | None] | None = None,
) -> dict[str, dict]:
    """Mean PSNR (capped at PSNR_CAP_DB per frame), SSIM, CIEDE2000 and ms/frame per method.

    fields: per pair, its lit scope field (lit_fields; None: every pixel is lit); given,
    the scores over it are added as lit_field_psnr, lit_field_ssim, lit_field_ciede2000
    (and lit_field_psnr_per_frame) beside the whole frame's.
    ms/frame is timed after WARMUP_FRAMES untimed runs on the first pair."""
    if fields is not None and len(fields) != len(pairs):
        raise ValueError(f"{len(fields)} fields for {len(pairs)} test pairs")
    prefixes = ("",) if fields is None else ("", LIT_FIELD)
    keys = [prefix + key for prefix in prefixes for key in FULL_REFERENCE] + ["ms"]
    results = {}
    for name, method in methods.items():
        for _ in range(WARMUP_FRAMES):
            method(pairs[0].smoky)
        rows = []
        for index, pair in enumerate(pairs):
            out, ms = _timed(method, pair.smoky)
            row = {**_full_reference(pair.clear, out), "ms": ms}
            if fields is not None:
                field = fields[index]  # None: the lit field is the frame, scored already
                lit = row if field is None else _full_reference(pair.clear, out, field)
                row.update({LIT_FIELD + key: lit[key] for key in FULL_REFERENCE})
            rows.append(row)
        results[name] = {key: float(np.mean([row[key] for row in rows])) for key in keys}
        results[name]["frames"] = len(rows)
        for prefix in prefixes:
            per_frame = [round(row[prefix + "psnr"], 3) for row in rows]
            results[name][prefix + "psnr_per_frame"] = per_frame
    return results


def _full_reference(
    clear: np.ndarray, restored: np.ndarray, field: np.ndarray | None = None
) -> dict[str, float]:
    """metrics.full_reference over the field, PSNR capped at PSNR_CAP_DB."""
    scores = metrics.full_reference(clear, restored, field)
    scores["psnr"] = min(scores["psnr"], PSNR_CAP_DB)
    return scores


def source_name(label: str) -> str:
    """The source file a test frame's label names: "clip.mp4#12" -> "clip.mp4"; an image's
    label is its file name."""
    name, _, index = label.rpartition("#")
    return name if name and index.isdigit() else label


def lit_fields(frames: Sequence[tuple[str, np.ndarray]]) -> list[np.ndarray | None]:
    """Per (label, frame), the lit field of its source: lit_field over all the frames of
    that source (by label and size), one mask per source, as for the real footage."""
    by_source: dict[tuple[str, tuple[int, ...]], list[int]] = {}
    for index, (label, frame) in enumerate(frames):
        by_source.setdefault((source_name(label), frame.shape), []).append(index)
    fields: list[np.ndarray | None] = [None] * len(frames)
    for indices in by_source.values():
        field = lit_field([frames[i][1] for i in indices])
        for index in indices:
            fields[index] = field
    return fields


def lit_field(frames: Sequence[np.ndarray]) -> np.ndarray | None:
    """scope_field as a bool mask of the whole frame (the pixels outside its box are unlit
    too), for frames of one source; None where every pixel is lit, or none is (a black
    frame has no field to score apart from the frame)."""
    (top, bottom, left, right), field = scope_field(frames)
    height, width = frames[0].shape[:2]
    mask = np.zeros((height, width), bool)
    mask[top:bottom, left:right] = True if field is None else field
    return None if mask.all() or not mask.any() else mask


def scope_field(
    frames: Sequence[np.ndarray],
) -> tuple[tuple[int, int, int, int], np.ndarray | None]:
    """Where these frames (of one source) show the scene: training.data.scope_box's box (top,
    bottom, left, right), and inside it the mask of the pixels outside the unlit surround
    (None: all of them).

    A round scope field leaves unlit corners in its box; they are found by the box's own
    rule (mean over the frames of the max over RGB at or below SCOPE_BLACK_LEVEL), keeping
    only unlit regions that touch the box's edge: a dark shadow inside the field is scene.
    A frame without a black surround keeps the whole frame and None (figures unchanged)."""
    top, bottom, left, right = scope_box(frames)
    level = np.mean([frame[top:bottom, left:right].max(axis=2) for frame in frames], axis=0)
    unlit = (level <= SCOPE_BLACK_LEVEL).astype(np.uint8)
    _, labels = cv2.connectedComponents(unlit, connectivity=8)  # 0: the lit pixels
    edges = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    surround = np.isin(labels, edges[edges > 0])
    return (top, bottom, left, right), (~surround if surround.any() else None)


def _mean_figures(frames: Sequence[np.ndarray], field: np.ndarray | None) -> dict[str, float]:
    figures = [metrics.no_reference(frame, field) for frame in frames]
    return {key: float(np.mean([f[key] for f in figures])) for key in figures[0]}


def _in_box(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = box
    return frame[top:bottom, left:right]


def _real_row(
    frames: Sequence[np.ndarray],
    restored: Sequence[np.ndarray],
    box: tuple[int, int, int, int],
    field: np.ndarray | None,
) -> dict[str, Any]:
    """The figures of one method's outputs over the field, and its crushed fraction."""
    crushed = [
        metrics.crushed_fraction(_in_box(a, box), _in_box(b, box), field)
        for a, b in zip(frames, restored, strict=True)
    ]
    top, bottom, left, right = box
    scored = (bottom - top) * (right - left) if field is None else int(field.sum())
    return {
        "frames": len(frames),
        "scored_fraction": scored / (frames[0].shape[0] * frames[0].shape[1]),
        **_mean_figures([_in_box(frame, box) for frame in restored], field),
        "crushed": float(np.mean(crushed)),
    }


def evaluate_real(
    sources: Sequence[Path], methods: dict[str, Method], frames_per_clip: int = 10
) -> tuple[list[dict[str, Any]], list[tuple[str, np.ndarray, dict[str, np.ndarray]]]]:
    """No-reference figures per real-smoke source and method ("identity" = the input).

    The methods run on whole frames; every method's outputs are scored over the one field
    the source's input frames show (scope_field), the unlit surround left out
    (scored_fraction: the part of the frame scored). Returns the table rows and, per
    source, its middle frame with each method's output (for the contact sheet).
    """
    rows, examples = [], []
    for path in sources:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            frames = [read_image(path)]
        else:
            frames = read_video_frames(path, frames_per_clip)
        box, field = scope_field(frames)
        outputs = {}
        for name, method in methods.items():
            restored = [method(frame) for frame in frames]
            row = _real_row(frames, restored, box, field)
            rows.append({"source": path.name, "method": name, **row})
            outputs[name] = restored[len(frames) // 2]
        examples.append((path.name, frames[len(frames) // 2], outputs))
    return rows, examples


def evaluate_clear(
    images: Sequence[tuple[str, np.ndarray]], methods: dict[str, Method]
) -> list[dict[str, Any]]:
    """On frames without smoke: mean |change| and the change of bright grey regions.

    mean_abs_change over the whole frame, lit_field_mean_abs_change over the image's lit
    scope field (lit_field; lit_field_fraction: its share of the frame): a black surround
    that stays black dilutes the whole frame's figure.
    bright_grey_change: the grey level change (0-1 scale) averaged over the bright grey
    mask; clearly negative means the method darkens instruments and speculars (the black
    surround is never bright grey: this figure needs no field).
    """
    rows = []
    for label, frame in images:
        mask = bright_grey_mask(frame.astype(np.float32) / 255.0)
        grey_in = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        field = lit_field([frame])
        for name, method in methods.items():
            out = method(frame)
            grey_out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
            bright = float(((grey_out - grey_in) * mask).sum() / max(mask.sum(), 1e-6))
            rows.append(
                {
                    "image": label,
                    "method": name,
                    "mean_abs_change": metrics.mean_abs_change(frame, out),
                    LIT_FIELD + "mean_abs_change": metrics.mean_abs_change(frame, out, field),
                    LIT_FIELD + "fraction": _fraction(field),
                    "bright_grey_change": bright,
                    "bright_grey_fraction": float(mask.mean()),
                }
            )
    return rows


def _fraction(field: np.ndarray | None) -> float:
    """The share of the frame a lit field covers (None: all of it)."""
    return 1.0 if field is None else float(field.mean())


# ----------------------------------------------------------------------------- contact sheet


def contact_sheet(
    examples: Sequence[tuple[str, np.ndarray, dict[str, np.ndarray]]],
    methods: Sequence[str],
    tile_width: int = 256,
) -> np.ndarray:
    """Rows of input | dark channel | each method's output (identity skipped), labelled.

    Every tile is tile_width wide and each row as tall as its frames' aspect ratio asks, so
    the columns line up without black bars whatever the sources' shapes.
    """
    from engine.video.layout import draw_label

    if not examples:
        raise ValueError("no examples for the contact sheet")
    outputs = [m for m in methods if m != IDENTITY]
    rows = []
    for name, frame, restored in examples:
        height = max(1, round(frame.shape[0] * tile_width / frame.shape[1]))
        dark = dark_channel(frame)
        tiles = [("input: " + name, frame), ("dark channel", np.dstack([dark] * 3))]
        tiles += [(m, restored[m]) for m in outputs]
        row = []
        for label, image in tiles:
            tile = cv2.resize(image, (tile_width, height), interpolation=cv2.INTER_AREA)
            draw_label(tile, label)
            row.append(tile)
        rows.append(np.hstack(row))
    return np.vstack(rows)


# ----------------------------------------------------------------------------- report


def _fmt(value: float, digits: int) -> str:
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _markdown(report: Report) -> list[str]:
    lines = ["# Evaluation", ""]
    lines += [f"- {note}" for note in report.notes] + [""]
    lines += _settings_lines(report.settings)
    if report.synthetic:
        lines += _synthetic_lines(report)
    if report.real:
        lines += _real_lines(report.real)
    if report.clear:
        lines += _clear_lines(report)
    return lines


def _settings_lines(settings: dict[str, dict[str, Any]]) -> list[str]:
    if not settings:
        return []
    lines = ["Settings (`--strength`, `--patch`, `--working-size`; identity has none):", ""]
    lines += [
        f"- {name}: strength {s['strength']:g}, patch {s['patch_size']} px at a 256 px "
        f"short side, working short side {s['working_short_side']} px"
        for name, s in settings.items()
    ]
    return [*lines, ""]


def _synthetic_lines(report: Report) -> list[str]:
    info = report.synthetic_info
    smoke = info.get("smoke_config") or asdict(SmokeConfig())
    lines = [
        f"## Synthetic test pairs ({info.get('frames')} frames, seed {info.get('seed')})",
        "",
        f"Sources: {', '.join(info.get('sources', []))}. Frame size: {info.get('size')}. "
        "Clear references: the held-out frames after the synthesis's background "
        "augmentations, as in training (darken, gamma, hue shift and blur, each with "
        f"p {smoke['augment_probability']:g}; a painted instrument with "
        f"p {smoke['instrument_probability']:g}), drawn with the smoke seed. "
        f"PSNR per frame capped at {PSNR_CAP_DB:.0f} dB before averaging. "
        f"SSIM: {info.get('ssim', metrics.SSIM_VARIANT)}. ms/frame: the mean over the timed "
        f"frames, after {info.get('warmup_frames', WARMUP_FRAMES)} untimed warm-up frame "
        "per method.",
        "",
    ]
    lit = all(LIT_FIELD + "psnr" in r for r in report.synthetic.values())
    if lit:
        lines += [_lit_field_note(info.get("lit_field_fraction", {})), ""]
        lines += [
            "| method | PSNR dB, whole frame | SSIM, whole frame | CIEDE2000, whole frame "
            "| PSNR dB, lit field | SSIM, lit field | CIEDE2000, lit field | ms/frame |",
            "|---|---|---|---|---|---|---|---|",
        ]
    else:
        lines += ["| method | PSNR dB | SSIM | CIEDE2000 | ms/frame |", "|---|---|---|---|---|"]
    for name, r in report.synthetic.items():
        label = "identity (smoky input)" if name == IDENTITY else name
        prefixes = ("", LIT_FIELD) if lit else ("",)
        scores = " | ".join(
            f"{_fmt(r[p + 'psnr'], 2)} | {_fmt(r[p + 'ssim'], 4)} | {_fmt(r[p + 'ciede2000'], 2)}"
            for p in prefixes
        )
        lines.append(f"| {label} | {scores} | {r['ms']:.1f} |")
    return [*lines, ""]


def _lit_field_note(fractions: dict[str, float]) -> str:
    shares = ", ".join(f"{name} {share:.1%}" for name, share in fractions.items())
    return (
        "Whole frame: every pixel, the scope's unlit corners included (earlier recorded "
        "results quote these). Lit field: only the lit scope field, found per source on its clear frames "
        f"as for the real smoke (share of the frame: {shares or 'all'}); PSNR and CIEDE2000 "
        "over its pixels, SSIM the mean of the SSIM map over its pixels whose whole window "
        "lies in the field."
    )


def _real_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Real smoke, no reference (mean over frames; identity = the input)",
        "",
        "Over the lit scope field: the unlit (black) border around it is excluded, the same "
        "region for every method's output of a source, found on its input frames. "
        "Lower dark channel = less smoke; higher RMS contrast and colourfulness = "
        "less washed out; clipped = pixels with a channel at 0 or 255 (well above the "
        "input's: over-corrected); crushed = pixels with a channel driven to 0 from "
        f"{metrics.CRUSHED_FROM_LEVEL} or more (detail lost to black).",
        "",
        "| source | method | frames | dark channel | RMS contrast | colourfulness | clipped "
        "| crushed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['source']} | {r['method']} | {r['frames']} | {r['dark_channel']:.4f} | "
        f"{r['rms_contrast']:.4f} | {r['colourfulness']:.1f} | {r['clipped']:.3f} | "
        f"{r['crushed']:.4f} |"
        for r in rows
    ]
    return [*lines, ""]


def _clear_lines(report: Report) -> list[str]:
    images = [
        f"{label} (a training source: in-sample)" if label in report.clear_in_sample else label
        for label in report.clear_images
    ]
    lines = [
        "## Clear frames (no smoke: should stay unchanged)",
        "",
        f"Images: {', '.join(images)}. "
        "mean abs change: over the whole frame (as earlier recorded results quote it) and "
        "over the image's lit scope field (lit field area: its share of the frame; a "
        "black surround left black dilutes the whole frame's figure). "
        "bright grey change: mean grey-level change over bright low-saturation regions "
        "(instruments, speculars); clearly negative = it darkens them.",
        "",
        "| image | method | mean abs change, whole frame | mean abs change, lit field "
        "| lit field area | bright grey change | bright grey area |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['image']} | {r['method']} | {r['mean_abs_change']:.4f} | "
        f"{r[LIT_FIELD + 'mean_abs_change']:.4f} | {r[LIT_FIELD + 'fraction']:.3f} | "
        f"{r['bright_grey_change']:+.4f} | {r['bright_grey_fraction']:.3f} |"
        for r in report.clear
        if r["method"] != IDENTITY
    ]
    return [*lines, ""]


def check_out_dir(out_dir: Path) -> None:
    """Raise the OSError that writing results into out_dir would (read-only, no permission,
    a name too long), before minutes of evaluation rather than after: a file is created
    and removed there; folders made for it are removed again, so a later error leaves none."""
    made = [folder for folder in (out_dir, *out_dir.parents) if not folder.exists()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".probe-", dir=out_dir)
        os.close(handle)
        os.unlink(probe)
    finally:
        for folder in made:  # the deepest first
            with suppress(OSError):
                folder.rmdir()


def write_outputs(
    report: Report, out_dir: Path, sheet: np.ndarray | None = None
) -> dict[str, Path]:
    """evaluation.md, evaluation.json (and contact_sheet.png) in out_dir, replacing an
    earlier evaluation's set as one (a sheet it had and this one has not goes too); returns
    the paths written."""
    contents = {
        "markdown": report.to_markdown().encode(),
        "json": report.to_json().encode(),
        "contact_sheet": None if sheet is None else _png(sheet),  # encoded before any write
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    replace_together({out_dir / OUTPUT_NAMES[key]: data for key, data in contents.items()})
    return {key: out_dir / OUTPUT_NAMES[key] for key, data in contents.items() if data is not None}


def _png(image: np.ndarray) -> bytes:
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode the contact sheet as PNG")
    return png.tobytes()


def evaluate(
    methods: dict[str, Method],
    test_frames: Sequence[tuple[str, np.ndarray]],
    *,
    seed: int = EVAL_SEED,
    real_sources: Sequence[Path] = (),
    clear_images: Sequence[tuple[str, np.ndarray]] = (),
    clear_in_sample: Collection[str] = (),
    frames_per_clip: int = 10,
    notes: Sequence[str] = (),
    config: SmokeConfig | None = None,
) -> tuple[Report, np.ndarray | None]:
    """Run the whole evaluation; returns the report and the contact sheet (None if no rows).

    clear_in_sample: the labels of clear_images that are training sources of the model."""
    config = config or SmokeConfig()
    report = Report(methods=list(methods), notes=list(notes), settings=method_settings(methods))
    pairs = synthetic_pairs(test_frames, seed, config)
    sizes = sorted({f"{p.clear.shape[1]}x{p.clear.shape[0]}" for p in pairs})
    fields = lit_fields(test_frames)  # on the frames the smoke went over, unaugmented
    report.synthetic_info = {
        "frames": len(pairs),
        "seed": seed,
        "sources": sorted({source_name(p.source) for p in pairs}),
        "lit_field_fraction": dict(
            sorted(
                (source_name(label), _fraction(field))
                for (label, _), field in zip(test_frames, fields, strict=True)
            )
        ),
        "size": ", ".join(sizes),
        "mean_alpha": float(np.mean([p.alpha.mean() for p in pairs])),
        "smoke_config": asdict(config),
        "ssim": metrics.SSIM_VARIANT,
        "warmup_frames": WARMUP_FRAMES,
    }
    report.synthetic = evaluate_pairs(pairs, methods, fields)
    examples = []
    if real_sources:
        report.real, examples = evaluate_real(real_sources, methods, frames_per_clip)
    if clear_images:
        report.clear = evaluate_clear(clear_images, methods)
        report.clear_images = [label for label, _ in clear_images]
        report.clear_in_sample = [
            label for label in report.clear_images if label in clear_in_sample
        ]
        examples += [
            (f"{label} (clear)", frame, {m: methods[m](frame) for m in methods})
            for label, frame in clear_images
        ]
    sheet = contact_sheet(examples, list(methods)) if examples else None
    return report, sheet
