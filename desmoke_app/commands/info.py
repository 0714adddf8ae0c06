"""`desmoke info`: versions, backends (and why any cannot run), devices, the model's provenance."""

from __future__ import annotations

import argparse
import json
import platform

from desmoke_app.commands.common import (
    Subcommands,
    add_model_arguments,
    fail,
    make_desmoker,
    visible,
)
from engine.backends import BACKENDS, BackendUnavailable, backend_status
from engine.files import cache_root
from engine.models import WeightsError
from engine.models.weights import provenance_summary


def add_parser(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser("info", help="backends, devices, and the model's provenance")
    add_model_arguments(parser)
    parser.add_argument(
        "--provenance",
        action="store_true",
        help="print the weights' whole provenance as JSON (training configuration, data)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import av
    import cv2
    import torch

    print(f"python {platform.python_version()} on {platform.platform()}")
    print(f"torch {torch.__version__}, PyAV {av.__version__}, OpenCV {cv2.__version__}")
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"CUDA device: {cuda}")
    print(
        f"cache: {visible(str(cache_root()))} (ONNX exports, compiled kernels, TensorRT engines; safe to "
        "delete: made again when needed, engines by desmoke build-engine)"
    )
    print("backends:")
    for name in BACKENDS:
        available, reason = backend_status(name)
        print(f"  {name:12s} {'available' if available else 'unavailable: ' + reason}")
    try:
        desmoker = make_desmoker(args)
    except (WeightsError, BackendUnavailable, ValueError) as exc:
        return fail(str(exc))
    print(visible(desmoker.describe()))  # "model fast from ...; backend ..."
    if desmoker.config:
        provenance = {k: desmoker.config.get(k) for k in ("version", "training", "metrics")}
        if args.provenance:
            print(json.dumps(provenance, indent=2, sort_keys=True))
        else:
            print(f"weights: {visible(provenance_summary(provenance))} (all of it: --provenance)")
    return 0
