"""Export trained weights to ONNX (what onnxruntime runs and TensorRT engines are built from).

The graph itself comes from engine.models.onnx_export (opset 17, dynamic batch/height/
width, input "input", outputs = the network's output_names, the legacy TorchScript
exporter). Here it is checked: onnx.checker, then onnxruntime against torch on a random
input of a size other than the tracing sample (so the dynamic axes are exercised). The
export is checked in memory and written (whole, engine.files) only once it passes: one that
does not match is never left behind, nor replaces an existing file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.backends.onnxruntime_backend import new_session
from engine.files import same_file, write_atomically
from engine.models import load_network
from engine.models.onnx_export import INPUT_NAME, exported_onnx

#: Largest |onnxruntime - torch| accepted: fp32 graphs agree to ~1e-6 on sigmoid/[0, 1]
#: outputs; fp16 graphs carry half-precision rounding (~1e-3) through every layer.
TOLERANCE = {False: 1e-4, True: 2e-2}


class ExportError(ValueError):
    """An export that failed or does not reproduce the torch network."""


def _check_shape(network: nn.Module) -> tuple[int, int]:
    return (256, 512) if network.stride >= 256 else (224, 384)  # not exported_onnx's tracing sample


def onnx_outputs(model: bytes, x: np.ndarray) -> list[np.ndarray]:
    """Run an ONNX model (its bytes) once on the CPU with onnxruntime."""
    return new_session(model).run(None, {INPUT_NAME: x})


def compare_onnx(
    network: nn.Module, model: bytes, shape: tuple[int, int], fp16: bool = False, seed: int = 0
) -> dict[str, float]:
    """Max |onnxruntime - torch (fp32)| per output on a seeded random input of `shape`."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 4, *shape, generator=generator)
    with torch.no_grad():
        expected = network.eval()(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    feed = x.numpy().astype(np.float16 if fp16 else np.float32)
    got = onnx_outputs(model, feed)
    return {
        name: float(np.abs(g.astype(np.float32) - e.numpy()).max())
        for name, g, e in zip(network.output_names, got, expected, strict=True)
    }


def export_weights(
    weights: str | Path, onnx_path: str | Path, *, fp16: bool = False, check: bool = True
) -> dict[str, Any]:
    """weights (.safetensors with config) -> ONNX at onnx_path, checked; returns a report.
    On any failure `onnx_path` is as it was (an earlier export there is kept)."""
    onnx_path = Path(onnx_path)
    if same_file(weights, onnx_path):  # the export would replace the weights it came from
        raise ExportError(f"{onnx_path}: the output is the input (the weights); give another name")
    network, config = load_network(weights)  # WeightsError names the file (NaN too)
    if onnx_path.suffix.lower() != ".onnx":
        raise ExportError(f"{onnx_path}: the output must be a .onnx file")
    report: dict[str, Any] = {"model": config["model"], "onnx": str(onnx_path), "fp16": fp16}
    model = exported_onnx(network, fp16=fp16)  # onnx.checker runs inside
    if check:
        report.update(_checked(network, model, onnx_path, fp16))
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(onnx_path, model)
    return report


def _checked(network: nn.Module, model: bytes, onnx_path: Path, fp16: bool) -> dict[str, Any]:
    """Compare the export `model` (to be saved at onnx_path) with torch: the report's
    entries, or ExportError naming `onnx_path` (the file is then not saved)."""
    shape = _check_shape(network)
    try:
        errors = compare_onnx(network, model, shape, fp16=fp16)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(f"{onnx_path}: onnxruntime cannot run the export ({exc})") from exc
    worst = max(errors.values())
    if not worst <= TOLERANCE[fp16]:
        raise ExportError(
            f"{onnx_path}: onnxruntime differs from torch by {worst:.2e} "
            f"(> {TOLERANCE[fp16]:.0e}); not saved"
        )
    return {"max_abs_error": errors, "check_shape": list(shape)}
