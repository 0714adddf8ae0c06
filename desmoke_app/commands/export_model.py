"""`desmoke export-model WEIGHTS --onnx OUT.onnx [--fp16]`: ONNX for onnxruntime/TensorRT."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from desmoke_app.commands.common import Subcommands, fail, os_error_message, visible


def add_parser(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "export-model",
        help="export trained weights (.safetensors) to ONNX, checked against torch",
        description="Export a desmoke weights file to ONNX (opset 17, dynamic height and "
        "width), run onnx.checker and compare onnxruntime with torch on a random input.",
    )
    parser.add_argument(
        "weights",
        type=Path,
        metavar="WEIGHTS",
        help="a .safetensors file, or a model name (fast) for its shipped weights",
    )
    parser.add_argument("--onnx", required=True, type=Path, metavar="OUT", help="ONNX to write")
    parser.add_argument("--fp16", action="store_true", help="half-precision graph and I/O")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.models import WeightsError
    from training.export import ExportError, export_weights

    folder = args.onnx.parent
    if not os.path.isdir(folder):  # Path.is_dir raises on a name too long (3.11)
        problem = "is a file, not a folder" if os.path.exists(folder) else "does not exist"
        return fail(f"{folder}: output folder {problem}")
    try:
        weights = _weights_file(args.weights)
        report = export_weights(weights, args.onnx, fp16=args.fp16)
    except (WeightsError, ExportError, ValueError) as exc:
        return fail(str(exc))
    except OSError as exc:  # an unwritable folder, a full disk
        return fail(os_error_message(exc, "write", args.onnx))
    errors = ", ".join(f"{k} {v:.1e}" for k, v in report["max_abs_error"].items())
    precision = "fp16" if args.fp16 else "fp32"
    output = visible(str(args.onnx))
    print(f"wrote {output} ({report['model']}, {precision}); onnxruntime vs torch: {errors}")
    return 0


def _weights_file(weights: Path) -> Path:
    """The file to export: `weights`, or for a model name the weights shipped for it, as
    `desmoke export --model fast` runs them (ValueError saying what to give otherwise)."""
    from engine.models import MODEL_NAMES, NETWORK_MODELS, shipped_weights

    if os.path.exists(weights):  # a file called "fast" is that file
        return weights
    shipped = shipped_weights(str(weights)) if str(weights) in NETWORK_MODELS else None
    if shipped is not None:
        return shipped
    names = [name for name in NETWORK_MODELS if shipped_weights(name)]
    or_shipped = f", or {' or '.join(names)} for the shipped weights" if names else ""
    if str(weights) in MODEL_NAMES and str(weights) not in NETWORK_MODELS:
        raise ValueError(
            f"{weights} has no network to export (a classical method); give a .safetensors "
            f"file{or_shipped}"
        )
    raise ValueError(f"{weights}: weights file not found; give a .safetensors file{or_shipped}")
