"""Training configs: TOML files read into dataclasses, every key and type checked.

A config has five tables: [model] (which network and its architecture), [data] (sources,
filters, splits), [train] (optimisation, crops, losses, time budget), [paper] (the
pix2pix trainer's own settings) and [smoke] (training.smoke.SmokeConfig: the synthesis of
the training and validation smoke; the test split keeps the default synthesis, so models
trained on different smoke are scored on the same test pairs). Every key has a default, so
a file names only what it changes; an unknown key or a value of the wrong type is an error
naming the file and the key, raised before any data is read. Paths in [data] sources may
use environment variables (`${DESMOKE_DATA}/clear/...`; a relative value of one that leads
the path is taken from the current folder, as the shell that set it would); other relative
paths are relative to the config file. The paths are kept as written too: a resume compares
those, so a run continues from a moved checkout or data folder, and the weights record
those (shareable_path), so that shared weights carry no folder of the machine that
trained them (a user's or a patient's name).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

from engine.models import MAX_WORKING_SHORT_SIDE, MIN_WORKING_SHORT_SIDE
from training.smoke import SmokeConfig

#: The configs that ship with the project; `--config NAME` takes one by its name.
SHIPPED_CONFIGS = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """A config file that cannot be used: unreadable, unknown key, wrong type or value."""


@dataclass
class ModelConfig:
    name: str = "fast"  # "fast" (SmokeLayerNet) or "paper" (pix2pix U-Net-256)
    arch: dict[str, Any] = field(default_factory=dict)  # engine.models.build_network arguments
    working_short_side: int = 256  # the pipeline's working resolution the model is trained for


@dataclass
class DataConfig:
    sources: list[str] = field(default_factory=list)  # videos, images or image folders
    store_short_side: int = 320  # frames are kept in memory at this short side
    scope_crop: bool = True  # crop a circular scope field to its bounding box
    frame_step: int = 1  # take every n-th video frame
    max_frames: int = 0  # per source; 0 = all
    # Quality filters: a frame failing any is skipped (and counted in the summary).
    min_sharpness: float = 10.0  # variance of the Laplacian of the grey frame (0-255 scale)
    min_brightness: float = 20.0  # mean grey level, 0-255
    max_brightness: float = 235.0
    min_colourfulness: float = 5.0  # Hasler & Suesstrunk, 0-255 scale
    # Splits, held out by source frame in contiguous blocks (neighbouring frames are
    # near-duplicates); `gap_frames` on each side of a held-out block are dropped from train.
    # A source of 2 blocks or fewer holds none out; with no val frames from any source (or
    # val_fraction 0), validation scores training frames, and training warns that it does.
    block_frames: int = 25
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    gap_frames: int = 3


@dataclass
class TrainConfig:
    seed: int = 0
    crop: int = 256  # square training crops, at the working scale
    scale_jitter: list[float] = field(default_factory=lambda: [0.8, 1.25])  # x working scale
    batch_size: int = 12
    lr: float = 5e-4
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    lr_schedule: str = "cosine"  # "cosine" over the time/step budget, or "constant"
    min_lr_fraction: float = 0.05
    max_minutes: float = 95.0  # time budget; training stops at whichever limit comes first
    max_steps: int = 0  # 0 = no step limit
    # Start from these weights (safetensors, same model and arch) instead of a random init:
    # fine-tuning. "" = random init; a relative path is relative to the config file.
    init_weights: str = ""
    clean_probability: float = 0.12  # samples with no smoke at all (alpha = 0 target)
    t_min: float = 0.1  # lower bound on 1 - alpha in the loss's inversion
    l1_weight: float = 1.0
    ssim_weight: float = 0.2
    alpha_weight: float = 1.0
    colour_weight: float = 0.2
    val_frames: int = 24  # fixed smoky samples for validation (seeded)
    # Validation and checkpoints fall due by time, by steps or both; 0 turns a trigger off
    # (both off: at the end, and a checkpoint at a stop, only).
    val_every_minutes: float = 5.0
    val_every_steps: int = 0
    checkpoint_every_minutes: float = 5.0
    checkpoint_every_steps: int = 0
    num_workers: int = 1
    threads: int = 2  # torch intra-op threads
    log_every_steps: int = 20


@dataclass
class PaperConfig:
    """The pix2pix trainer. The generator's own switches (use_dark_channel: the ablation of the
    4th input; ngf) are [model] arch keys, as they are stored with the weights."""

    ndf: int = 64  # PatchGAN width
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    gan_weight: float = 1.0
    l1_weight: float = 100.0


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    smoke: SmokeConfig = field(default_factory=SmokeConfig)
    path: str = ""  # the file it came from (not a key)
    # The path-valued keys as the file wrote them, before ${VARIABLES} and the file's folder
    # resolved them (not keys either): what a resume compares, so that a run continues from
    # a moved checkout or data folder.
    paths_as_written: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The tables, with resolved paths, and `paths_as_written`: plain types only."""
        out = dataclasses.asdict(self)
        out.pop("path")
        return out

    def shareable_dict(self) -> dict[str, Any]:
        """The tables as weights that may be shared record them: their paths as the file
        wrote them (shareable_path), never as they resolved on this machine."""
        out = self.to_dict()
        out.pop("paths_as_written")
        out["data"]["sources"] = [shareable_path(s) for s in self._sources_as_written()]
        init_weights = self.paths_as_written.get("train.init_weights", self.train.init_weights)
        out["train"]["init_weights"] = shareable_path(init_weights)
        return out

    def shareable_source(self, path: str) -> str:
        """A file a [data] source led to (the source itself, or a file in a source folder)
        named as its source was written (shareable_path); its name alone if none did."""
        for resolved, written in zip(self.data.sources, self._sources_as_written(), strict=True):
            if path == resolved:
                return shareable_path(written)
            if Path(path).parent == Path(resolved):
                return f"{shareable_path(written).rstrip('/')}/{Path(path).name}"
        return Path(path).name

    def _sources_as_written(self) -> list[str]:
        """data.sources as the file wrote them (a Config built in code: as they are)."""
        written = self.paths_as_written.get("data.sources")
        return written if written and len(written) == len(self.data.sources) else self.data.sources


_TABLES = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "paper": PaperConfig,
    "smoke": SmokeConfig,
}


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (list,):
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin in (dict,):
        return isinstance(value, dict)
    if origin in (tuple,):  # fixed length, written as a TOML array
        items = typing.get_args(hint)
        return (
            isinstance(value, list)
            and len(value) == len(items)
            and all(_type_ok(v, h) for v, h in zip(value, items, strict=True))
        )
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is float:  # TOML writes 1 for 1.0; a bool is not a number here
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _build_table(cls: type, values: Any, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
        if not _type_ok(value, hints[key]):
            name = getattr(hints[key], "__name__", str(hints[key]))
            raise ConfigError(
                f"{where}.{key}: expected {name}, got {type(value).__name__} {value!r}"
            )
        if not _finite(value):  # TOML's inf and nan: no setting means either
            raise ConfigError(f"{where}.{key}: expected a finite number, got {value!r}")
        kwargs[key] = _converted(value, hints[key])
    try:
        return cls(**kwargs)
    except ValueError as exc:  # the table's own range checks (SmokeConfig)
        raise ConfigError(f"{where}: {exc}") from exc


def _finite(value: Any) -> bool:
    """No inf or nan in a number or in the numbers of an array."""
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def _converted(value: Any, hint: Any) -> Any:
    """TOML's ints where floats are meant as floats, its arrays where tuples are as tuples."""
    if hint is float:
        return float(value)
    if typing.get_origin(hint) is tuple:
        return tuple(_converted(v, h) for v, h in zip(value, typing.get_args(hint), strict=True))
    return value


_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def shareable_path(written: str) -> str:
    """A path as weights that may be shared record it: as the config wrote it when that is
    relative (to the config's folder, or to a ${VARIABLE} such as the shared data folder),
    its name alone when written from a root, drive or home folder (~): those folders are
    the training machine's (a user's or a patient's name), not the data's."""
    if written.startswith(("/", "\\", "~")) or PureWindowsPath(written).drive:
        return PureWindowsPath(written).name  # either separator
    return written


def _resolve_source(source: str, base: Path, where: str) -> str:
    """A [data] path: variables expanded, then a relative path taken from the config's folder."""

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        text = os.environ.get(name, "")
        if not text:
            raise ConfigError(
                f"{where}: source {source!r} names an unset environment variable, {name}: set "
                "it to the folder it stands for (e.g. the shared data folder)"
            )
        # A variable leading the path was typed in the user's shell: a relative value is
        # relative to where they ran the command, not to the config file.
        return os.path.abspath(os.path.expanduser(text)) if match.start() == 0 else text

    path = Path(_VARIABLE.sub(value, os.path.expanduser(source)))
    return str(path if path.is_absolute() else (base / path))


def _jitter_ok(jitter: list[float]) -> bool:
    return len(jitter) == 2 and 0 < jitter[0] <= jitter[1]


#: A check: (the value is fine, its table.key, what it must be).
Check = tuple[bool, str, str]


def _model_checks(model: ModelConfig) -> list[Check]:
    # The pipeline's own range: weights outside it cannot be run.
    low, high = MIN_WORKING_SHORT_SIDE, MAX_WORKING_SHORT_SIDE
    return [
        (model.name in ("fast", "paper"), "model.name", "must be 'fast' or 'paper'"),
        (
            low <= model.working_short_side <= high,
            "model.working_short_side",
            f"must be {low} to {high} (the pipeline's working sizes), "
            f"got {model.working_short_side}",
        ),
    ]


def _data_checks(data: DataConfig) -> list[Check]:
    return [
        (data.store_short_side >= 16, "data.store_short_side", "must be >= 16"),
        (data.frame_step >= 1, "data.frame_step", "must be >= 1"),
        (data.max_frames >= 0, "data.max_frames", f"must be >= 0 (0 = all), got {data.max_frames}"),
        *(
            (value >= 0, f"data.{key}", f"must be >= 0 (0 = no filter), got {value}")
            for key, value in (
                ("min_sharpness", data.min_sharpness),
                ("min_colourfulness", data.min_colourfulness),
            )
        ),
        *(
            (0 <= value <= 255, f"data.{key}", f"must be in [0, 255] (grey levels), got {value}")
            for key, value in (
                ("min_brightness", data.min_brightness),
                ("max_brightness", data.max_brightness),
            )
        ),
        (
            data.min_brightness <= data.max_brightness,
            "data.min_brightness",
            f"must be <= data.max_brightness ({data.max_brightness}), got "
            f"{data.min_brightness}: every frame would be dropped",
        ),
        (data.block_frames >= 1, "data.block_frames", "must be >= 1"),
        (0 <= data.val_fraction < 0.5, "data.val_fraction", "must be in [0, 0.5)"),
        (0 <= data.test_fraction < 0.5, "data.test_fraction", "must be in [0, 0.5)"),
        (data.gap_frames >= 0, "data.gap_frames", f"must be >= 0, got {data.gap_frames}"),
    ]


def _optimiser_checks(train: TrainConfig) -> list[Check]:
    return [
        # numpy's and torch's generators take no negative seed.
        (train.seed >= 0, "train.seed", f"must be >= 0, got {train.seed}"),
        (train.batch_size >= 1, "train.batch_size", "must be >= 1"),
        (train.lr > 0, "train.lr", "must be > 0"),
        (
            train.weight_decay >= 0,
            "train.weight_decay",
            f"must be >= 0 (0 = none), got {train.weight_decay}",
        ),
        # A clip of 0 zeroes every gradient: nothing would be learnt.
        (train.grad_clip > 0, "train.grad_clip", f"must be > 0, got {train.grad_clip}"),
        (
            train.lr_schedule in ("cosine", "constant"),
            "train.lr_schedule",
            "must be 'cosine' or 'constant'",
        ),
        (
            0 <= train.min_lr_fraction <= 1,
            "train.min_lr_fraction",
            f"must be in [0, 1] (the cosine's floor, a fraction of lr), got "
            f"{train.min_lr_fraction}",
        ),
    ]


def _sample_checks(train: TrainConfig, data: DataConfig) -> list[Check]:
    return [
        (train.crop >= 16, "train.crop", "must be >= 16"),
        # A crop larger than the stored frames would be cut from upscaled pixels.
        (
            train.crop <= data.store_short_side,
            "train.crop",
            f"must be <= data.store_short_side ({data.store_short_side}), got {train.crop}",
        ),
        (
            _jitter_ok(train.scale_jitter),
            "train.scale_jitter",
            f"must be [low, high] with 0 < low <= high, got {train.scale_jitter}",
        ),
        (0 <= train.clean_probability <= 1, "train.clean_probability", "must be in [0, 1]"),
        (0 < train.t_min < 1, "train.t_min", "must be in (0, 1)"),
    ]


def _loss_weight_checks(table: str, weights: dict[str, float]) -> list[Check]:
    """Each weight >= 0 (a negative one rewards the error), and not all 0 (nothing to learn)."""
    checks = [(w >= 0, f"{table}.{k}", f"must be >= 0, got {w}") for k, w in weights.items()]
    names = ", ".join(weights)
    checks.append((any(weights.values()), f"{table}.{names}", "cannot all be 0 (no loss)"))
    return checks


def _schedule_checks(train: TrainConfig) -> list[Check]:
    return [
        (train.max_minutes >= 0, "train.max_minutes", f"must be >= 0, got {train.max_minutes}"),
        (
            train.max_steps >= 0,
            "train.max_steps",
            f"must be >= 0 (0 = no step limit), got {train.max_steps}",
        ),
        (
            train.max_minutes > 0 or train.max_steps > 0,
            "train.max_minutes",
            "and max_steps cannot both be 0 (no budget)",
        ),
        (train.val_frames >= 1, "train.val_frames", f"must be >= 1, got {train.val_frames}"),
        (
            train.val_every_minutes >= 0,
            "train.val_every_minutes",
            f"must be >= 0 (0 = by steps only), got {train.val_every_minutes}",
        ),
        (
            train.val_every_steps >= 0,
            "train.val_every_steps",
            f"must be >= 0 (0 = by time only), got {train.val_every_steps}",
        ),
        (
            train.checkpoint_every_minutes >= 0,
            "train.checkpoint_every_minutes",
            f"must be >= 0 (0 = by steps only), got {train.checkpoint_every_minutes}",
        ),
        (
            train.checkpoint_every_steps >= 0,
            "train.checkpoint_every_steps",
            f"must be >= 0 (0 = by time only), got {train.checkpoint_every_steps}",
        ),
        (
            train.log_every_steps >= 1,
            "train.log_every_steps",
            f"must be >= 1, got {train.log_every_steps}",
        ),
        (
            train.num_workers >= 0,
            "train.num_workers",
            f"must be >= 0 (0 = load in the training process), got {train.num_workers}",
        ),
        (train.threads >= 1, "train.threads", f"must be >= 1, got {train.threads}"),
    ]


# Upper bounds: what a desktop or a workstation can hold and finish. Beyond them a value is
# a typo (1e9 for 1e3) or a crafted file, which would fill the memory, spawn threads or
# processes by the hundred thousand, or run one validation for days, rather than fail.
# Counts that only pick frames (frame_step, max_frames, block_frames, gap_frames) and the
# budget and intervals cost nothing when large: they have none.

#: Frames are kept in memory at this short side: a 4K frame's own, the pipeline's largest
#: working size (MAX_WORKING_SHORT_SIDE); 250 frames of a 4K clip already take 6 GB.
MAX_STORE_SHORT_SIDE = MAX_WORKING_SHORT_SIDE
#: Samples a step: the shipped fast network takes ~18 MB a 256 px crop to train (measured
#: on CPU), so 1024 need ~18 GB, an 80 GB GPU's share with room for wider archs (shipped:
#: 12; pix2pix: 1). A billion filled 6.9 GB with the sampler's index list alone, and hung.
MAX_BATCH_SIZE = 1024
#: How far past the working scale a crop may be zoomed: 4x the largest working size is a
#: 8640 px frame, ~400 MB a sample; shipped: [0.8, 1.25].
MAX_SCALE_JITTER = 4.0
#: Validation frames, all scored at every validation (the baseline at step 0 too): 1000 at
#: the shipped 256 px take ~1 min on a 2-core CPU (0.056 s each, measured). They cycle over
#: the val split's frames (25 in the shipped data), so beyond that they add only other
#: smoke over the same frames. Shipped: 24.
MAX_VAL_FRAMES = 1000
#: torch's intra-op threads: the largest workstation CPUs have 192 hardware threads (more
#: only slow a step); 100,000 failed to start a thread. Shipped: 1-2.
MAX_THREADS = 256
#: DataLoader worker processes, each a copy of the training process, a few hundred MB once
#: running: more than a workstation's cores add only memory. Shipped: 1-2.
MAX_NUM_WORKERS = 64
#: The PatchGAN's width: twice pix2pix's 64, as engine.models bounds the generator's ngf
#: (11M parameters; 100 million asked for terabytes).
MAX_NDF = 128
#: torch.manual_seed takes a 64-bit seed; a larger one fails as the networks are built.
MAX_SEED = 2**64 - 1


def _upper_bound_checks(config: Config) -> list[Check]:
    data, train = config.data, config.train
    bounds = (
        ("data.store_short_side", data.store_short_side, MAX_STORE_SHORT_SIDE, "a 4K frame's"),
        ("train.batch_size", train.batch_size, MAX_BATCH_SIZE, "~18 GB to train at 256 px"),
        (
            "train.scale_jitter",
            max(train.scale_jitter, default=0.0),  # its length: _sample_checks
            MAX_SCALE_JITTER,
            "times the working scale",
        ),
        ("train.val_frames", train.val_frames, MAX_VAL_FRAMES, "each validation scores all"),
        ("train.threads", train.threads, MAX_THREADS, "a workstation's hardware threads"),
        ("train.num_workers", train.num_workers, MAX_NUM_WORKERS, "processes, each a copy"),
        ("paper.ndf", config.paper.ndf, MAX_NDF, "twice pix2pix's 64"),
        ("train.seed", train.seed, MAX_SEED, "torch's seeds are 64-bit"),
    )
    return [
        (value <= high, key, f"must be <= {high} ({what}), got {value}")
        for key, value, high, what in bounds
    ]


def _paper_checks(paper: PaperConfig) -> list[Check]:
    return [
        (paper.ndf >= 1, "paper.ndf", f"must be >= 1, got {paper.ndf}"),
        (paper.lr > 0, "paper.lr", f"must be > 0, got {paper.lr}"),
        # Adam's moment decays: 1 would never forget, and torch refuses it.
        *(
            (0 <= beta < 1, f"paper.{key}", f"must be in [0, 1), got {beta}")
            for key, beta in (("beta1", paper.beta1), ("beta2", paper.beta2))
        ),
    ]


def _check_values(config: Config, where: str) -> None:
    """Every [model], [data], [train] and [paper] number within its range ([smoke]: checked
    by SmokeConfig itself; init_weights and the sources when the run starts)."""
    train = config.train
    checks = [
        *_model_checks(config.model),
        *_data_checks(config.data),
        *_optimiser_checks(train),
        *_sample_checks(train, config.data),
        *_loss_weight_checks(
            "train",
            {
                "l1_weight": train.l1_weight,
                "ssim_weight": train.ssim_weight,
                "alpha_weight": train.alpha_weight,
                "colour_weight": train.colour_weight,
            },
        ),
        *_schedule_checks(train),
        *_paper_checks(config.paper),
        *_loss_weight_checks(
            "paper", {"gan_weight": config.paper.gan_weight, "l1_weight": config.paper.l1_weight}
        ),
        *_upper_bound_checks(config),
    ]
    for ok, key, message in checks:
        if not ok:
            raise ConfigError(f"{where}: {key} {message}")


def shipped_configs() -> list[str]:
    """The names of the configs that ship with the project (training/configs/NAME.toml)."""
    return sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.toml"))


def config_path(path: str | Path) -> Path:
    """A config file as given, or a shipped config by its name (`fast`, `paper`): an
    installed project has no training/configs folder in the user's working folder."""
    path = Path(path)
    shipped = SHIPPED_CONFIGS / f"{path}.toml"
    if not path.exists() and path.name == str(path) and not path.suffix and shipped.is_file():
        return shipped
    return path


def load_config(path: str | Path) -> Config:
    """Read and check a training config (a file, or a shipped config's name); errors name
    the file and the key."""
    path = config_path(path)
    text = _config_text(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}){_escape_hint(text, exc)}") from exc
    return config_from_dict(raw, path)


def _config_text(path: Path) -> str:
    """The file's text. utf-8-sig: Windows Notepad may start a UTF-8 file with a byte-order
    mark, which TOML does not take ("Invalid statement" at line 1, column 1)."""
    not_utf8 = f"{path}: the config is not UTF-8 text: save it as UTF-8"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        names = ", ".join(shipped_configs())
        raise ConfigError(
            f"{path}: config file not found (shipped configs, by name: {names})"
        ) from None
    except UnicodeDecodeError:  # UTF-16 with a byte-order mark, or a legacy code page
        raise ConfigError(not_utf8) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc})") from exc
    if "\0" in text:  # UTF-16 without a byte-order mark: NULs between the letters
        raise ConfigError(not_utf8)
    return text


#: What to do about a backslash in a double-quoted TOML string: there it starts an escape.
_WINDOWS_PATH_HINT = (
    "in double quotes a backslash starts an escape: write Windows paths in single quotes "
    "('C:\\Users\\...') or with forward slashes (\"C:/Users/...\")"
)
#: A double-quoted TOML string holding a backslash.
_QUOTED_BACKSLASH = re.compile(r'"[^"]*\\[^"]*"')


def _escape_hint(text: str, error: tomllib.TOMLDecodeError) -> str:
    """The Windows path hint, after "; ", where the line TOML refused holds a backslash in
    double quotes ("C:\\Users": an invalid \\U escape); "" otherwise."""
    where = re.search(r"at line (\d+)", str(error))  # tomllib's message (3.14: .lineno)
    lines = text.splitlines()
    number = int(where.group(1)) if where else 0
    line = lines[number - 1] if 0 < number <= len(lines) else ""
    return f"; {_WINDOWS_PATH_HINT}" if _QUOTED_BACKSLASH.search(line) else ""


def _check_path_text(paths: dict[str, Any], where: str) -> None:
    """Refuse a path holding a control character: "C:\\temp\\new.mp4" in double quotes is
    valid TOML, but reads as a tab and a new line, and the file would not be found."""
    for key, value in paths.items():
        for text in value if isinstance(value, list) else [value]:
            if any(ord(char) < 32 or ord(char) == 127 for char in text):
                raise ConfigError(
                    f"{where}: {key} {text!r} holds a control character; {_WINDOWS_PATH_HINT}"
                )


def config_from_dict(raw: dict[str, Any], path: str | Path = "<config>") -> Config:
    """A checked Config from a parsed TOML document (tests build configs this way)."""
    path = Path(path)
    tables = {}
    for key, value in raw.items():
        if key not in _TABLES:
            raise ConfigError(f"{path}: {key}: unknown table (known: {', '.join(_TABLES)})")
        tables[key] = _build_table(_TABLES[key], value, f"{path}: {key}")
    config = Config(**tables, path=str(path))
    config.paths_as_written = {
        "data.sources": list(config.data.sources),
        "train.init_weights": config.train.init_weights,
    }
    _check_path_text(config.paths_as_written, str(path))
    base = path.parent
    config.data.sources = [
        _resolve_source(s, base, f"{path}: data.sources") for s in config.data.sources
    ]
    if config.train.init_weights:
        config.train.init_weights = _resolve_source(
            config.train.init_weights, base, f"{path}: train.init_weights"
        )
    _check_values(config, str(path))
    return config


#: Keys a resumed run may change: how long it runs and how it is watched and loaded, not
#: what it learns (the budget stretches the cosine schedule, which is what extending a run
#: means), and init_weights (where a new run starts; a resume starts from its checkpoint).
#: Any other key must be the run's own.
RESUME_FREE_KEYS = frozenset(
    {
        "train.init_weights",
        "train.max_minutes",
        "train.max_steps",
        "train.val_every_minutes",
        "train.val_every_steps",
        "train.checkpoint_every_minutes",
        "train.checkpoint_every_steps",
        "train.log_every_steps",
        "train.num_workers",
        "train.threads",
    }
)


def training_differences(run_config: dict[str, Any], config: Config) -> list[str]:
    """The keys (table.key) of `config` that would train otherwise than `run_config` (a
    run's Config.to_dict()), each with both values; keys the run's config lacks (it predates
    them) count as their defaults. Paths are compared as written where both configs
    recorded them (a run's config from before paths_as_written: as resolved)."""
    defaults, now = Config().to_dict(), config.to_dict()
    run_paths = run_config.get("paths_as_written", {})
    differences = []
    for table in _TABLES:
        for key, value in now[table].items():
            name = f"{table}.{key}"
            was = run_config.get(table, {}).get(key, defaults[table][key])
            if name in run_paths and name in config.paths_as_written:
                was, value = run_paths[name], config.paths_as_written[name]
            if name not in RESUME_FREE_KEYS and was != value:
                differences.append(f"{name} {value!r} (the run's: {was!r})")
    return differences
