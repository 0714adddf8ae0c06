"""The model table: every desmoking method, its network, the architecture arguments that
network takes and its default working resolution, in one place, and the checks of a stored
config against it (pure functions: no files, no errors raised; engine.models.weights and
engine.models turn a problem into a WeightsError).
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from torch import nn

from engine.models.paper_unet import PaperDesmoker
from engine.models.smoke_layer_net import SmokeLayerNet

#: The working short sides the pipeline runs at (weights asking for others are refused).
#: The largest is a 4K frame's own short side: more only upsamples frames before the
#: network, at a cost without bound (25600 px asked for a 13 GiB working image of a 720p frame).
MIN_WORKING_SHORT_SIDE = 16
MAX_WORKING_SHORT_SIDE = 2160


class ArchArg(NamedTuple):
    """One architecture argument: whether a value fits it, and what it must be, in words."""

    fits: Callable[[Any], bool]
    meaning: str


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _whole(low: int, high: int) -> ArchArg:
    return ArchArg(lambda v: _is_whole(v) and low <= v <= high, f"a whole number {low}-{high}")


# The architecture bounds: what a desktop app can hold and run, at most ~220M parameters
# (0.9 GB in fp32, within a laptop's RAM and a desktop GPU's memory) and ~300 GFLOP a
# frame at the 256x448 working size, measured with torch's FlopCounterMode on the meta
# device. fast: widths 512-512-512 (the largest: 43M parameters, 282 GFLOP with the
# default unshuffle 4), 16x the shipped 32-64-128 (1M, 2.6 GFLOP) in each width. paper:
# ngf 128 (218M parameters, 96 GFLOP at 256x512), twice the paper's 64 (54M, 24 GFLOP).
# Beyond them a network is gigabytes to build and seconds a frame, not a model to run
# live (a config asking for widths 4096 or ngf 512 wanted 6 GB before it was refused).
_WIDTH = _whole(1, 512)


def _widths(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 3 and all(map(_WIDTH.fits, value))


@dataclass(frozen=True)
class ModelSpec:
    """One desmoking method."""

    network: Callable[..., nn.Module] | None  # None: a classical method, no weights
    arch: Mapping[str, ArchArg] = field(default_factory=dict)  # what `network` takes
    working_short_side: int = 256  # the default working resolution's short side, px


MODELS: dict[str, ModelSpec] = {
    # SmokeLayerNet: predicts the smoke layer (alpha, colour); restored at full resolution.
    "fast": ModelSpec(
        SmokeLayerNet,
        {
            # The pipeline always feeds RGB and the dark channel.
            "in_channels": ArchArg(lambda v: _is_whole(v) and v == 4, "4 (RGB + dark channel)"),
            "widths": ArchArg(_widths, f"a list of 3 numbers, each {_WIDTH.meaning}"),
            "unshuffle": _whole(1, 8),
        },
    ),
    # pix2pix U-Net-256 with the dark channel as a 4th input (Salazar-Colores 2020).
    "paper": ModelSpec(
        PaperDesmoker,
        {
            "use_dark_channel": ArchArg(lambda v: isinstance(v, bool), "true or false"),
            "ngf": _whole(1, 128),
        },
    ),
    # The classical dark-channel prior (He et al.): engine.models.dcp.
    "dcp": ModelSpec(None),
}
MODEL_NAMES = tuple(MODELS)
NETWORK_MODELS = tuple(name for name, spec in MODELS.items() if spec.network is not None)


def arch_problem(name: str, arch: Any) -> str:
    """Why `arch` is not a set of architecture arguments network model `name` takes ("" when
    it is); `name` must be one of NETWORK_MODELS. None stands for the defaults."""
    problem = "" if arch is None else _arguments_problem(MODELS[name].arch, arch)
    return (
        f"architecture arguments {arch!r} do not fit model '{name}': {problem}" if problem else ""
    )


def _arguments_problem(known: Mapping[str, ArchArg], arch: Any) -> str:
    if not isinstance(arch, dict):
        return "not a table of arguments"
    for key, value in arch.items():
        if key not in known:
            return f"unknown argument '{key}' (known: {', '.join(known)})"
        if not known[key].fits(value):
            return f"{key} must be {known[key].meaning}, got {reprlib.repr(value)}"
    return ""


def config_problem(config: Any) -> str:
    """Why a weights file's stored config cannot be used ("" when it can): it must name a
    network model, give it architecture arguments it takes, and a working resolution the
    pipeline runs at. What the tensors hold is checked when they are loaded."""
    if not isinstance(config, dict) or "model" not in config:
        return "its config names no model"
    name = config["model"]
    if name not in NETWORK_MODELS:
        return (
            f"its config names model {name!r}, which is not a network model "
            f"(known: {', '.join(NETWORK_MODELS)})"
        )
    problem = arch_problem(name, config.get("arch"))
    if problem:
        return f"its config's {problem}"
    side = config.get("working_short_side")
    low, high = MIN_WORKING_SHORT_SIDE, MAX_WORKING_SHORT_SIDE
    if side is not None and not (_is_whole(side) and low <= side <= high):
        return (
            f"its config's working_short_side must be a whole number of pixels, {low} to "
            f"{high}, got {side!r}"
        )
    return provenance_problem(config)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TABLE = ArchArg(lambda v: isinstance(v, dict), "a table")
_COUNT = ArchArg(lambda v: _is_whole(v) and v >= 0, "a whole number")
_NUMBER = ArchArg(_is_number, "a number")
_TEXT = ArchArg(lambda v: isinstance(v, str), "text")
_COUNTS = ArchArg(
    lambda v: isinstance(v, dict) and all(map(_COUNT.fits, v.values())),
    "a table of frame counts",
)
#: The provenance a weights config may carry that `desmoke info` and the app's About box
#: show (engine.models.weights.provenance_summary), by its keys in the config, each table
#: before what is in it; absent or null: not shown. Anything else in it is shown only as
#: the JSON it is (desmoke info --provenance).
PROVENANCE_FIELDS: dict[tuple[str, ...], ArchArg] = {
    ("version",): _COUNT,
    ("training",): _TABLE,
    ("training", "steps"): _COUNT,
    ("training", "minutes"): _NUMBER,
    ("training", "hardware"): _TEXT,
    ("training", "config_file"): _TEXT,
    ("training", "data"): _TABLE,
    ("training", "data", "frames"): _COUNTS,
    ("metrics",): _TABLE,
    ("metrics", "val"): _TABLE,
    ("metrics", "val", "psnr"): _NUMBER,
    ("metrics", "val", "psnr_identity"): _NUMBER,
}


def provenance_problem(config: dict[str, Any]) -> str:
    """Why the provenance in a weights config cannot be shown ("" when it can): a field of
    PROVENANCE_FIELDS that is not what it must be."""
    for keys, field_check in PROVENANCE_FIELDS.items():
        value = _nested(config, keys)
        if value is not None and not field_check.fits(value):
            return (
                f"its config's {'.'.join(keys)} must be {field_check.meaning}, got "
                f"{reprlib.repr(value)}"
            )
    return ""


def _nested(config: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """config[keys[0]][keys[1]]...; None where one is missing (the tables above are checked
    first, so each step is in a table or a null)."""
    value: Any = config
    for key in keys:
        value = (value or {}).get(key)
    return value
