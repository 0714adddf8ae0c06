"""Training checkpoints: model, optimiser(s), step and run state, written atomically.

torch.save of plain state dicts and numbers, read back with torch.load(weights_only=True)
(no arbitrary pickle). A checkpoint records the model name and architecture it was made
for; resuming into a different model fails with the file's name before training starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.files import replaced_on_success

CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or made for another model."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` (state dicts, numbers, strings) to a temporary file, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_on_success(path) as temp:
        torch.save(state, temp)
    return path


def read_checkpoint(path: str | Path, model_name: str, arch: dict[str, Any]) -> dict[str, Any]:
    """The state in `path`, checked to be for `model_name` with architecture `arch`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found (nothing to resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(state, dict) or "model_name" not in state or "step" not in state:
        raise CheckpointError(f"{path}: not a desmoke training checkpoint")
    if state.get("model_name") != model_name or state.get("arch") != arch:
        raise CheckpointError(
            f"{path}: made for model '{state.get('model_name')}' with arch "
            f"{state.get('arch')}, but the config asks for '{model_name}' with arch {arch}"
        )
    return state


def load_module_state(path: str | Path, module: nn.Module, state: dict[str, Any]) -> None:
    """load_state_dict with a message naming the checkpoint on any mismatch."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: does not match the network ({first})") from None
