"""ONNX export of the networks (what onnxruntime runs and TensorRT engines are built from)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from engine.files import write_atomically

#: Height and width are dynamic; the working resolution is chosen at run time.
INPUT_NAME = "input"


def export_onnx(
    network: nn.Module,
    path: str | Path,
    *,
    sample_shape: tuple[int, int] = (256, 448),
    fp16: bool = False,
    opset: int = 17,
) -> Path:
    """Export `network` (eval mode, CPU) to `path` with dynamic batch, height and width.

    fp16 exports a half-precision graph with half I/O (what a strongly typed TensorRT build
    wants). The file is written to a temporary name and renamed when complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    network = network.eval().cpu()
    dtype = torch.float16 if fp16 else torch.float32
    if fp16:
        network = network.half()
    sample = torch.rand(1, 4, *sample_shape, dtype=dtype)
    output_names = list(network.output_names)
    axes = {name: {0: "batch", 2: "height", 3: "width"} for name in [INPUT_NAME, *output_names]}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python ints
        torch.onnx.export(
            network,
            (sample,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=output_names,
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    if fp16:
        network.float()
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    write_atomically(path, buffer.getvalue())
    return path
