"""Weights as safetensors with the model's JSON config in the file's metadata (no pickle).

A readable copy of the config is written beside the weights (`<name>.json`); loading
needs only the .safetensors file. Mismatches between the file and the architecture its
config names are reported with the file's name and the offending tensors, before use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from engine.files import replace_together

CONFIG_KEY = "desmoke_config"


class WeightsError(ValueError):
    """A weights file that cannot be used: unreadable, no config, or not matching the model."""


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


def read_config(path: str | Path) -> dict[str, Any]:
    """The config stored in a weights file, without loading the tensors."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from exc
    if CONFIG_KEY not in metadata:
        raise WeightsError(f"{path}: no '{CONFIG_KEY}' in its metadata (not a desmoke model)")
    try:
        config = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: its config is not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or "model" not in config:
        raise WeightsError(f"{path}: its config names no model")
    return config


def load_state_into(path: str | Path, model: nn.Module) -> None:
    """Load tensors into `model`, failing with a clear message on any key or shape mismatch."""
    path = Path(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            details.append(
                f"{len(wrong)} with wrong shapes (e.g. {k}: file "
                f"{tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
            )
        raise WeightsError(
            f"{path}: does not match the architecture in its config: " + "; ".join(details)
        )
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
    were trained and how they scored on validation."""
    training = provenance.get("training") or {}
    parts = [f"format {provenance.get('version', '?')}"]
    if training.get("steps"):  # of the run that saved them (a fine-tune's last stage)
        where = training.get("hardware", "")
        parts.append(
            f"saved at step {training['steps']}, {training.get('minutes', 0):.0f} min into "
            "its training run"
            + (f" on {where}" if where else "")
            + (f" ({training['config_file']})" if training.get("config_file") else "")
        )
    frames = (training.get("data") or {}).get("frames")
    if frames:
        parts.append("frames " + ", ".join(f"{k} {v}" for k, v in frames.items()))
    val = ((provenance.get("metrics") or {}).get("val")) or {}
    if "psnr" in val:
        identity = f" (input {val['psnr_identity']:.2f})" if "psnr_identity" in val else ""
        parts.append(f"validation PSNR {val['psnr']:.2f} dB{identity}")
    return "; ".join(parts)
