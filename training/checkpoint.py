"""Training checkpoints: model, optimiser(s), step and run state, written atomically.

torch.save of plain state dicts and numbers, read back with torch.load(weights_only=True)
(no arbitrary pickle) and never otherwise: a checkpoint may come from elsewhere, and one
that needs more than tensors and plain data is refused, as is one whose fields are not
what desmoke writes (their types and ranges, and finite weights and optimiser state). A
checkpoint records the model name and architecture it was made for, and the run's config:
resuming into a different model, or with a config that trains otherwise, fails with the
file's name and the differing keys before training starts.

Every file of a run folder is written through `reported_as_write_error`: a full disk, a
read-only or immutable folder or a name too long raise RunWriteError, one line naming the
file and the OS's reason, whichever library did the writing.
"""

from __future__ import annotations

import logging
import math
import os
import re
import reprlib
import warnings
from collections import deque
from collections.abc import Callable, Iterator
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
    state = _plain_data(path)
    if not isinstance(state, dict) or "model_name" not in state or "step" not in state:
        raise CheckpointError(f"{path}: not a desmoke training checkpoint")
    _check_finite(path, state)  # first: a diverged run's checkpoint is desmoke's own
    _check_fields(path, state)
    model_name, arch = config.model.name, config.model.arch
    if state.get("model_name") != model_name or state.get("arch") != arch:
        raise CheckpointError(
            f"{path}: made for model '{state.get('model_name')}' with arch "
            f"{state.get('arch')}, but the config asks for '{model_name}' with arch {arch}"
        )
    if "config" in state:
        _check_same_training(path, state, config)
    return state


def _plain_data(path: Path) -> Any:
    """What torch.load(weights_only=True) reads from `path`: tensors and plain data only.
    Its errors are not passed on: for a file that asks for more (objects, code to run) they
    advise loading it with weights_only=False, which is what must not be done with a file
    that may come from anyone."""
    try:
        with warnings.catch_warnings():  # a plain pickle's "protocol 4" warning, before
            warnings.simplefilter("ignore")  # the one-line refusal that says it all
            return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({describe(exc)})") from exc
    except Exception as exc:  # pickle, zip, EOF and OS errors alike (a cut file: EINVAL)
        raise CheckpointError(
            f"{path}: not a checkpoint desmoke wrote, or damaged (it does not read as tensors "
            "and plain data); desmoke will not load it any other way, as that could run code "
            "hidden in it: resume a run of your own, or start a new one"
        ) from exc


#: The most steps a checkpoint may record: 10^12 is decades of training at a thousand steps
#: a second; a count beyond it is no run desmoke trained.
MAX_STEPS = 10**12


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_STEPS


def _is_finite_number(value: Any) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int past a float's range: no number of seconds or score
        return False


def _is_scores(value: Any) -> bool:
    """Validation scores as the loop keeps them: none yet ({}), or finite numbers by name,
    psnr (which picks the best) and the step they were measured at among them."""
    if value == {}:
        return True
    return (
        isinstance(value, dict)
        and all(isinstance(k, str) and _is_finite_number(v) for k, v in value.items())
        and "psnr" in value
        and ("step" not in value or _is_count(value["step"]))
    )


def _is_state_dict(value: Any) -> bool:
    """A network's state: tensors by name."""
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def _is_optimiser_state(value: Any) -> bool:
    """torch's Optimizer.state_dict(): per-parameter state and the parameter groups."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("state"), dict)
        and isinstance(value.get("param_groups"), list)
        and all(isinstance(group, dict) for group in value["param_groups"])
    )


#: The fields a checkpoint holds besides the networks' and optimisers' states: what each
#: must be, in words. Absent ones are not checked (older checkpoints lack some).
_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model_name": (lambda v: isinstance(v, str), "text"),
    "arch": (lambda v: isinstance(v, dict), "a table"),
    "config": (
        lambda v: isinstance(v, dict) and all(isinstance(t, dict) for t in v.values()),
        "a table of tables",
    ),
    "config_file": (lambda v: isinstance(v, str), "text"),
    "step": (_is_count, f"a whole number, 0 to {MAX_STEPS}"),
    "val_step": (lambda v: v is None or _is_count(v), "none or a step"),
    "val_due": (lambda v: isinstance(v, bool), "true or false"),
    "last_val": (_is_scores, "validation scores"),
    "best": (_is_scores, "validation scores"),
    "elapsed": (lambda v: _is_finite_number(v) and v >= 0, "a finite number of seconds >= 0"),
}


def _check_fields(path: Path, state: dict[str, Any]) -> None:
    """Each field of `state` of the type and range the loop writes, and each network and
    optimiser state of torch's form: a crafted or damaged one fails here, in one line, not
    with a traceback half-way into the resume."""
    checks = dict(_FIELDS)
    for key in state:
        if isinstance(key, str) and key.startswith("module_"):
            checks[key] = (_is_state_dict, "a network's state (tensors by name)")
        elif isinstance(key, str) and key.startswith("optim_"):
            checks[key] = (_is_optimiser_state, "an optimiser's state")
    for key, (fits, meaning) in checks.items():
        if key in state and not fits(state[key]):
            raise CheckpointError(
                f"{path}: not a checkpoint desmoke wrote, or damaged: its {key} must be "
                f"{meaning}, got {reprlib.repr(state[key])}"
            )
    val_step = state.get("val_step")
    if val_step is not None and val_step > state["step"]:
        raise CheckpointError(
            f"{path}: not a checkpoint desmoke wrote, or damaged: it was validated at step "
            f"{val_step}, after its own step {state['step']}"
        )


def _check_finite(path: Path, state: dict[str, Any]) -> None:
    """No NaN or inf in the networks' or optimisers' states, nor in the validation scores
    (a diverged run scores NaN): training on from them only writes weights desmoke refuses
    to load."""
    for key, value in state.items():
        if key in ("last_val", "best") or str(key).startswith(("module_", "optim_")):
            where = _first_not_finite(value)
            if where is not None:
                raise CheckpointError(
                    f"{path}: {key} holds values that are not finite (NaN or inf, at {where}): "
                    "the run diverged or the file is damaged; start a new run (with a lower "
                    "train.lr if it diverged)"
                )


def _first_not_finite(state: Any) -> str | None:
    """Where the first NaN or inf in `state` is (tensors and numbers, in nested tables and
    lists), None if there is none. A queue, not recursion: a crafted file may nest deeply."""
    pending: deque[tuple[str, Any]] = deque([("", state)])
    while pending:
        where, value = pending.popleft()
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return where
        elif isinstance(value, float) and not math.isfinite(value):
            return where
        elif isinstance(value, dict):
            pending.extend((f"{where}.{k}".lstrip("."), v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            pending.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
    return None


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
    if isinstance(was, list) and was != list(now):  # the same as written: moved, or other?
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
