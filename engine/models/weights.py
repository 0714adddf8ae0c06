"""Weights as safetensors with the model's JSON config in the file's metadata (no pickle).

A readable copy of the config is written beside the weights (`<name>.json`); loading
needs only the .safetensors file. A stored config that names no network model, or gives
it arguments it does not take, and mismatches between the file and the architecture its
config names are reported with the file's name (and the offending tensors), before use.
A weights file may come from anyone: its header is read only up to MAX_HEADER_BYTES, and
its tensors' names and shapes are compared from the header before any is loaded.

Which models run as they are named is decided here too: dcp needs no weights, a network
needs weights given or shipped in assets/ (NoShippedWeights where none are).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from engine.files import not_a_file_reason, replace_together
from engine.models.registry import MODELS, NETWORK_MODELS, config_problem

CONFIG_KEY = "desmoke_config"
#: The trained weights that ship with desmoke: <model>.safetensors.
ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"


class WeightsError(ValueError):
    """A weights file that cannot be used: unreadable, no config, or not matching the model."""


class NoShippedWeights(WeightsError):
    """A network model named without weights, where none ship for it: never run as dcp (a
    comparison would compare dcp with itself). The message is the API's; a front end words
    its own advice from `.model`."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"no '{model}' weights are shipped: pass weights=W.safetensors (train them "
            f"with desmoke train --config training/configs/{model}.toml)"
        )
        self.model = model


def shipped_weights(model: str) -> Path | None:
    """The weights shipped in assets/ for network model `model`, if any."""
    if model not in NETWORK_MODELS:  # nor a name that leads out of assets/
        return None
    path = ASSETS_DIR / f"{model}.safetensors"
    return path if path.is_file() else None


def default_weights(model: str) -> Path:
    """The weights network model `model` runs with when none are given: the shipped ones
    (NoShippedWeights where none are)."""
    path = shipped_weights(model)
    if path is None:
        raise NoShippedWeights(model)
    return path


def runnable_models() -> tuple[str, ...]:
    """The model names that run as they are, with no weights given: the classical methods
    and the networks whose weights ship (in MODEL_NAMES order)."""
    return tuple(
        name for name, spec in MODELS.items() if spec.network is None or shipped_weights(name)
    )


def weights_digest(network: nn.Module) -> str:
    """A short hash of a network's tensors: names the ONNX and TensorRT files made from them."""
    digest = hashlib.sha256()
    for key, tensor in network.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def save_weights(path: str | Path, model: nn.Module, config: dict[str, Any]) -> Path:
    """Write model's state (fp32, contiguous) and config; also `<path>.json` for people."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: v.detach().float().contiguous().cpu()
        if v.is_floating_point()
        else v.detach().contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    weights = save(tensors, metadata={CONFIG_KEY: json.dumps(config, sort_keys=True)})
    readable = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    # Replaced as a pair: a full disk or a refused rename leaves the old pair, not new
    # weights beside the old weights' description.
    replace_together({path: weights, path.with_suffix(".json"): readable})
    return path


#: Files made from weights, or beside them, that are not weights: what to give instead.
NOT_WEIGHTS = {
    ".onnx": "an ONNX export; give the .safetensors weights it was made from",
    ".engine": "a TensorRT engine; give the .safetensors weights it was built from",
    ".pt": "a training checkpoint (never loaded: it is a pickle); give best.safetensors "
    "or last.safetensors from the same run",
}


def not_weights_reason(path: str | Path) -> str:
    """Why `path` is not a weights file, from its suffix ("" when it may be one)."""
    kind = NOT_WEIGHTS.get(Path(path).suffix.lower())
    return f"{path}: is {kind}" if kind else ""


def _unreadable(path: Path, exc: Exception) -> WeightsError:
    return WeightsError(
        not_weights_reason(path) or f"{path}: not a readable safetensors file ({exc})"
    )


#: The largest safetensors header read (its JSON: the tensors' names, types and shapes,
#: and the config): a desmoke model's is a few KB (fast's 6.8 KB, its training config
#: included), so 1 MiB leaves room for any real one, while safetensors itself parses up
#: to 100 MB, which took 4 s and 0.7 GB for 800,000 empty tensors before any check.
MAX_HEADER_BYTES = 1 << 20


def read_config(path: str | Path) -> dict[str, Any]:
    """The config stored in a weights file, checked (engine.models.registry.config_problem),
    without loading the tensors."""
    path = Path(path)
    metadata = _header_metadata(path)
    if CONFIG_KEY not in metadata:
        raise WeightsError(f"{path}: no '{CONFIG_KEY}' in its metadata (not a desmoke model)")
    try:
        config = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: its config is not valid JSON ({exc})") from exc
    except RecursionError as exc:  # "[[[[..." nested past Python's stack: no config is so
        raise WeightsError(
            f"{path}: its config is nested too deeply to be a desmoke config"
        ) from exc
    problem = config_problem(config)
    if problem:
        raise WeightsError(f"{path}: {problem}")
    return config


def _header_metadata(path: Path) -> dict[str, str]:
    """The metadata in a weights file's header, or WeightsError saying why it cannot be
    read: not a regular file, a header larger than MAX_HEADER_BYTES, not safetensors."""
    problem = not_a_file_reason(path)
    if problem == "not found":
        raise WeightsError(f"{path}: weights file not found")
    if problem:
        raise WeightsError(f"{path}: {problem}; give a .safetensors weights file")
    try:
        size = _header_size(path)
        if size <= MAX_HEADER_BYTES:
            with safe_open(str(path), framework="pt") as handle:
                return handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from exc
    raise WeightsError(
        not_weights_reason(path)
        or f"{path}: its header claims {size:,} bytes, far more than a desmoke model's "
        "(damaged, or not desmoke weights)"
    )


def _header_size(path: Path) -> int:
    """The header length a safetensors file states in its first 8 bytes (0 where it is
    shorter: safe_open then says what is wrong)."""
    with open(path, "rb") as handle:
        prefix = handle.read(8)
    return int.from_bytes(prefix, "little") if len(prefix) == 8 else 0


def stored_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape in a weights file, by name, from its header alone (nothing loaded)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(Path(path), exc) from exc


def check_tensors_fit(path: str | Path, model: nn.Module) -> None:
    """WeightsError naming the file and the offending tensors where the tensors it holds
    (names and shapes, from its header: nothing is loaded) are not `model`'s. `model` may be
    on the meta device: only its shapes are read, so a config describing a huge network
    costs nothing before its file is found not to hold it."""
    stored = stored_shapes(path)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong = sorted(k for k in set(stored) & set(expected) if stored[k] != expected[k])
    if not (missing or unexpected or wrong):
        return
    details = []
    if missing:
        details.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
    if unexpected:
        details.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        details.append(
            f"{len(wrong)} with wrong shapes (e.g. {k}: file {stored[k]}, model {expected[k]})"
        )
    raise WeightsError(
        f"{path}: does not match the architecture in its config: " + "; ".join(details)
    )


def load_state_into(path: str | Path, model: nn.Module) -> None:
    """Load tensors into `model`, failing with a clear message on any name or shape
    mismatch, found from the file's header before any tensor is read (check_tensors_fit)."""
    path = Path(path)
    check_tensors_fit(path, model)
    try:  # now no bigger than `model` itself: the file holds its tensors and no others
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from exc
    diverged = next((k for k, t in state.items() if not _finite(t)), None)
    if diverged:  # otherwise black or NaN frames in the app, a NaN difference in a check
        raise WeightsError(
            f"{path}: the weights are not finite (NaN/inf in {diverged}): a diverged training run?"
        )
    with torch.no_grad():
        model.load_state_dict(state, strict=True)


def _finite(tensor: torch.Tensor) -> bool:
    return not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())


def provenance_summary(provenance: dict[str, Any]) -> str:
    """One line from a weights config's version, training and metrics: how the weights
    were trained and how they scored on validation. The fields shown are the ones
    read_config checked (engine.models.registry.PROVENANCE_FIELDS); a null is not shown."""
    training = provenance.get("training") or {}
    version = provenance.get("version")
    parts = [f"format {'?' if version is None else version}"]
    if training.get("steps"):  # of the run that saved them (a fine-tune's last stage)
        where = training.get("hardware") or ""
        parts.append(
            f"saved at step {training['steps']}, {training.get('minutes') or 0:.0f} min into "
            "its training run"
            + (f" on {where}" if where else "")
            + (f" ({training['config_file']})" if training.get("config_file") else "")
        )
    frames = (training.get("data") or {}).get("frames")
    if frames:
        parts.append("frames " + ", ".join(f"{k} {v}" for k, v in frames.items()))
    val = ((provenance.get("metrics") or {}).get("val")) or {}
    if val.get("psnr") is not None:
        identity = val.get("psnr_identity")
        shown = f" (input {identity:.2f})" if identity is not None else ""
        parts.append(f"validation PSNR {val['psnr']:.2f} dB{shown}")
    return "; ".join(parts)
