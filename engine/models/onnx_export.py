"""ONNX export of the networks (what onnxruntime runs and TensorRT engines are built from)."""

from __future__ import annotations

import copy
import io
import warnings

import onnx
import torch
from torch import nn

from engine.models.registry import MODELS
from engine.models.weights import weights_digest

#: Height and width are dynamic; the working resolution is chosen at run time.
INPUT_NAME = "input"
#: What an export records of its network (ONNX metadata_props, under "desmoke.<key>"), so
#: that a TensorRT engine built from the file alone knows its weights and input stride.
PROVENANCE_KEYS = ("model", "weights_digest", "stride")


def exported_onnx(
    network: nn.Module,
    *,
    sample_shape: tuple[int, int] = (256, 448),
    fp16: bool = False,
    opset: int = 17,
) -> bytes:
    """`network` (eval mode, CPU) as a serialised ONNX model with dynamic batch, height and
    width, checked by onnx.checker; nothing is written to disk.

    fp16 exports a half-precision graph with half I/O (what a strongly typed TensorRT build
    wants) from a copy: `network`'s own weights keep their full precision. The model records
    its provenance (provenance_of: model, weights digest, stride) in its metadata.
    """
    network = network.eval().cpu()
    origin = provenance_of(network)  # of the full-precision weights, as backends load them
    dtype = torch.float16 if fp16 else torch.float32
    if fp16:
        network = copy.deepcopy(network).half()
    sample = torch.rand(1, 4, *sample_shape, dtype=dtype)
    output_names = list(network.output_names)
    axes = {name: {0: "batch", 2: "height", 3: "width"} for name in [INPUT_NAME, *output_names]}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python ints
        # The TorchScript exporter (dynamo=False) writes into a file object; the networks
        # are far below protobuf's 2 GB, so the model needs no external data files.
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
    model = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(model, {f"desmoke.{k}": v for k, v in origin.items()})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def provenance_of(network: nn.Module) -> dict[str, str]:
    """PROVENANCE_KEYS of a network: its model name, weights digest and input stride."""
    name = next((n for n, spec in MODELS.items() if spec.network is type(network)), "")
    return {"model": name, "weights_digest": weights_digest(network), "stride": str(network.stride)}


def recorded_provenance(model: onnx.ModelProto) -> dict[str, str]:
    """The PROVENANCE_KEYS an export recorded ({} for an ONNX from elsewhere or older)."""
    props = {p.key: p.value for p in model.metadata_props}
    return {k: props[f"desmoke.{k}"] for k in PROVENANCE_KEYS if props.get(f"desmoke.{k}")}
