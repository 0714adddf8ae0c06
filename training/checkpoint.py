"""Training checkpoints: model, optimiser(s), step and run state, written atomically.

torch.save of plain state dicts and numbers, read back with torch.load(weights_only=True)
(no arbitrary pickle). A checkpoint records the model name and architecture it was made
for, and the run's config: resuming into a different model, or with a config that trains
otherwise, fails with the file's name and the differing keys before training starts.

Every file of a run folder is written through `reported_as_write_error`: a full disk, a
read-only or immutable folder or a name too long raise RunWriteError, one line naming the
file and the OS's reason, whichever library did the writing.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

from engine.files import replaced_on_success
from engine.video.errors import describe
from training.config import Config, training_differences

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or made for another model."""


class RunWriteError(Exception):
    """A file (or the folder) of a training run that could not be written; `str(error)`
    names it and gives the OS's reason, e.g. "run/checkpoint.pt: cannot write (No space
    left on device)"."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: cannot write ({reason})")
        self.path, self.reason = path, reason


def _os_reason(error: Exception) -> str:
    """The OS's reason for a failed write. safetensors gives it only inside its message
    ("... I/O error: No space left on device (os error 28)"): its errno is read from there."""
    if isinstance(error, OSError):
        return describe(error)
    code = re.search(r"\(os error (\d+)\)", str(error))
    return os.strerror(int(code[1])) if code else describe(error)


@contextmanager
def reported_as_write_error(path: Path) -> Iterator[None]:
    """Within the block, a failed write (OSError, or safetensors' own error) raises
    RunWriteError naming `path`, the user's name for the file rather than a temporary's."""
    try:
        yield
    except (OSError, SafetensorError) as exc:
        raise RunWriteError(path, _os_reason(exc)) from exc


class _KeepsWriteError:
    """The file torch.save writes to, keeping the OSError of a failed write: torch.save
    turns it into a RuntimeError ("unexpected pos 400960 vs 400848") without the reason."""

    def __init__(self, handle) -> None:
        self.handle, self.error = handle, None

    def write(self, data) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` (state dicts, numbers, strings) to a temporary file, then rename;
    RunWriteError naming `path` when it cannot be written."""
    path = Path(path)
    with reported_as_write_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_on_success(path) as temp, open(temp, "wb") as handle:
            _torch_save(state, _KeepsWriteError(handle))
    return path


def _torch_save(state: dict[str, Any], file: _KeepsWriteError) -> None:
    """torch.save, raising the OSError behind a failed write rather than torch's RuntimeError."""
    try:
        torch.save(state, file)
    except RuntimeError as exc:
        if file.error is None:
            raise
        raise file.error from exc


def read_checkpoint(path: str | Path, config: Config) -> dict[str, Any]:
    """The state in `path`, checked to continue the run `config` describes: the same model
    and architecture, and (checkpoints that record it) the same training config but for
    RESUME_FREE_KEYS, its paths as written (checkpoints that record them; earlier ones: as
    resolved)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found (nothing to resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(state, dict) or "model_name" not in state or "step" not in state:
        raise CheckpointError(f"{path}: not a desmoke training checkpoint")
    model_name, arch = config.model.name, config.model.arch
    if state.get("model_name") != model_name or state.get("arch") != arch:
        raise CheckpointError(
            f"{path}: made for model '{state.get('model_name')}' with arch "
            f"{state.get('arch')}, but the config asks for '{model_name}' with arch {arch}"
        )
    if "config" in state:
        _check_same_training(path, state, config)
    return state


def _check_same_training(path: Path, state: dict[str, Any], config: Config) -> None:
    """A resume continues the run: its steps so far were trained with the run's config, and
    its weights and log will say they were; another config is another run."""
    differences = training_differences(state["config"], config)
    if differences:
        raise CheckpointError(
            f"{path}: the run was trained with {state.get('config_file', 'another config')}; "
            f"{config.path} differs in {', '.join(differences)}. Resume with the run's own "
            "config (only the budget, validation, checkpoint and logging intervals, workers, "
            "threads and init_weights may change), or fine-tune in a new run: another --out, with "
            f"train.init_weights = {path.parent / 'best.safetensors'}"
        )
    was, now = state["config"].get("data", {}).get("sources"), config.data.sources
    if was is not None and list(was) != list(now):  # the same as written: moved, or other?
        log.warning(
            "%s: the run read its data from %s; this resume reads %s (the config writes them "
            "the same way: check that they hold the same files)",
            path,
            ", ".join(map(str, was)),
            ", ".join(map(str, now)),
        )


def load_module_state(path: str | Path, module: nn.Module, state: dict[str, Any]) -> None:
    """load_state_dict with a message naming the checkpoint on any mismatch."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: does not match the network ({first})") from None
