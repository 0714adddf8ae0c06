"""Network definitions, the model table, weight I/O and the working resolution.

Models (the table: engine.models.registry.MODELS):
- `fast`: SmokeLayerNet, predicts the smoke layer (alpha, colour); restored at full res.
- `paper`: pix2pix U-Net-256 with the dark channel as a 4th input (Salazar-Colores 2020).
- `dcp`: the classical dark-channel prior (He et al.), no weights (engine.models.dcp).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import torch
from torch import nn

from engine.models.registry import (
    MAX_WORKING_SHORT_SIDE,
    MIN_WORKING_SHORT_SIDE,
    MODEL_NAMES,
    MODELS,
    NETWORK_MODELS,
    ModelSpec,
    arch_problem,
)
from engine.models.weights import (
    NoShippedWeights,
    WeightsError,
    check_tensors_fit,
    default_weights,
    load_state_into,
    read_config,
    runnable_models,
    save_weights,
    shipped_weights,
    weights_digest,
)

#: The working long side is at most this many times the working short side (working_shape).
MAX_WORKING_ASPECT = 8

__all__ = [
    "MAX_WORKING_SHORT_SIDE",
    "MIN_WORKING_SHORT_SIDE",
    "MODELS",
    "MODEL_NAMES",
    "NETWORK_MODELS",
    "ModelSpec",
    "NoShippedWeights",
    "WeightsError",
    "build_network",
    "default_config",
    "default_weights",
    "load_network",
    "read_config",
    "runnable_models",
    "save_weights",
    "shipped_weights",
    "weights_digest",
    "working_interpolation",
    "working_shape",
]


def build_network(name: str, arch: dict[str, Any] | None = None) -> nn.Module:
    """A freshly initialised network for model `name` with architecture arguments `arch`."""
    spec = MODELS.get(name) if isinstance(name, str) else None
    if spec is None or spec.network is None:
        raise WeightsError(f"unknown network model '{name}' (known: {', '.join(NETWORK_MODELS)})")
    problem = arch_problem(name, arch)
    if problem:
        raise WeightsError(problem)
    return spec.network(**(arch or {}))


def default_config(name: str, arch: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config a weights file carries: model, version, architecture, working resolution."""
    return {
        "model": name,
        "version": 1,
        "arch": dict(arch or {}),
        "working_short_side": MODELS[name].working_short_side,
        "training": {},
        "metrics": {},
    }


def load_network(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Build the network a weights file's config names, load it, set eval mode. The file's
    tensors are compared with the network's first, built on the meta device (shapes, no
    memory): a small file whose config describes a huge network is refused at once."""
    config = read_config(path)
    with torch.device("meta"):
        check_tensors_fit(path, build_network(config["model"], config.get("arch")))
    network = build_network(config["model"], config.get("arch"))
    load_state_into(path, network)
    return network.eval(), config


def working_shape(height: int, width: int, short_side: int, stride: int) -> tuple[int, int]:
    """Working resolution (h, w): short side ~short_side, aspect kept, both multiples of stride.

    Resizing straight to a stride multiple avoids padding on the hot path; the aspect error
    is at most stride/2 pixels on each side. The long side is capped at about
    MAX_WORKING_ASPECT x short_side: a frame more elongated than that (a 1x4000 strip) is
    scaled down to the cap instead, aspect kept, each side still at least one stride, so
    any frame costs bounded memory (uncapped, 1x4000 asked for a 256x1024000 working image).
    Every aspect ratio up to 8:1 (16:9, 4:3, 32:9 ...) is untouched by the cap.
    """
    if height < 1 or width < 1:
        raise ValueError(f"empty frame {height}x{width}")
    longest = MAX_WORKING_ASPECT * short_side
    scale = min(short_side / min(height, width), longest / max(height, width))

    def snap(x: float) -> int:
        return max(stride, int(round(x / stride)) * stride)

    return snap(height * scale), snap(width * scale)


def working_interpolation(height: int, width: int, work_h: int, work_w: int) -> int:
    """How a height x width frame is resized to its working shape (a cv2 flag): area
    averaging where both sides shrink (no aliasing), else bilinear (a side that grows, as
    258x270 -> 256x272 does). The GPU pre-kernel (engine.cuda.kernels.resize_mode) follows
    the same rule."""
    return cv2.INTER_AREA if work_h <= height and work_w <= width else cv2.INTER_LINEAR
