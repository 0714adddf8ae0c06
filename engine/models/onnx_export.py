"""ONNX export of the networks (what onnxruntime runs and TensorRT engines are built from).

Every export records what it was made from and by (ONNX metadata_props, "desmoke.<key>"):
the model, its weights, its input stride, the exporter (torch's version and a hash of the
code that shapes the graph), and a sha256 of its graph. reuse_problem compares a file's
record with what exporting a network now would give, so that a cached export of other
weights, of older code or with damaged bytes is never run in its place.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import io
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from engine.models.registry import MODELS
from engine.models.weights import weights_digest

#: Height and width are dynamic; the working resolution is chosen at run time.
INPUT_NAME = "input"
#: RGB and the dark channel: what the pipeline feeds every network (the registry allows no
#: other number).
INPUT_CHANNELS = 4
#: What an export records of its network (ONNX metadata_props, under "desmoke.<key>"), so
#: that a TensorRT engine built from the file alone knows its weights and input stride, and
#: a cached export is used only where it is what exporting the network now would give.
PROVENANCE_KEYS = ("model", "weights_digest", "stride", "exporter")
#: The sha256 of the serialised graph (weights included), recorded beside the provenance:
#: bytes damaged after the export (a bad disk, a stray write) that still parse show here.
GRAPH_DIGEST_KEY = "desmoke.graph_sha256"
#: The sources an export's graph depends on: the networks, their blocks and this exporter.
_MODELS_PACKAGE = Path(__file__).parent


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
    its provenance (provenance_of) and its graph's sha256 in its metadata.
    """
    network = network.eval().cpu()
    origin = provenance_of(network)  # of the full-precision weights, as backends load them
    dtype = torch.float16 if fp16 else torch.float32
    if fp16:
        network = copy.deepcopy(network).half()
    sample = torch.rand(1, INPUT_CHANNELS, *sample_shape, dtype=dtype)
    output_names = list(network.output_names)
    # Outputs get size names of their own: fast's are a quarter of the input's size.
    axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    axes |= {name: {0: "batch", 2: "out_height", 3: "out_width"} for name in output_names}
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
    props = {f"desmoke.{k}": v for k, v in origin.items()}
    onnx.helper.set_model_props(model, props | {GRAPH_DIGEST_KEY: graph_digest(model)})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def provenance_of(network: nn.Module) -> dict[str, str]:
    """PROVENANCE_KEYS of a network: its model name, weights digest, input stride and the
    exporter that would export it now (exporter_identity)."""
    name = next((n for n, spec in MODELS.items() if spec.network is type(network)), "")
    return {
        "model": name,
        "weights_digest": weights_digest(network),
        "stride": str(network.stride),
        "exporter": exporter_identity(network),
    }


def exporter_identity(network: nn.Module) -> str:
    """What makes the graph of `network`'s export, besides its weights: torch's version
    (major.minor: its exporter writes the graph) and a hash of engine/models' sources (the
    networks, their blocks, this exporter) and of the forward of each module class in
    `network` (a forward replaced at run time counts too). Any change to them is a reason
    to export again."""
    digest = hashlib.sha256()
    for path in sorted(_MODELS_PACKAGE.glob("*.py")):
        digest.update(path.read_bytes())
    classes = {type(m) for m in network.modules() if not type(m).__module__.startswith("torch")}
    for cls in sorted(classes, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        digest.update(_source(cls.forward))
    torch_version = ".".join(torch.__version__.split(".")[:2])
    return f"torch {torch_version}, code {digest.hexdigest()[:16]}"


def _source(function: object) -> bytes:
    """A function's source text; its qualified name where there is none to read (a frozen
    app, a function typed at a prompt)."""
    try:
        return inspect.getsource(function).encode()  # type: ignore[arg-type]
    except (OSError, TypeError):
        return getattr(function, "__qualname__", repr(function)).encode()


def graph_digest(model: onnx.ModelProto) -> str:
    """The sha256 of `model`'s serialised graph (its nodes and weights)."""
    return hashlib.sha256(model.graph.SerializeToString()).hexdigest()


def recorded_provenance(model: onnx.ModelProto) -> dict[str, str]:
    """The PROVENANCE_KEYS an export recorded ({} for an ONNX from elsewhere or older)."""
    props = {p.key: p.value for p in model.metadata_props}
    return {k: props[f"desmoke.{k}"] for k in PROVENANCE_KEYS if props.get(f"desmoke.{k}")}


def reuse_problem(data: bytes, wanted: dict[str, str]) -> str:
    """Why the ONNX `data` is not what exporting the network of provenance `wanted`
    (provenance_of) now would give ("" when it is): it does not parse, records no or
    another provenance (older desmoke, other weights, other code), its graph is not the
    one it recorded (damaged bytes), or it does not take one float32 Nx4xHxW input."""
    if not data:  # parses, as an empty model
        return "is empty"
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and others, for truncated files
        return f"did not load ({' '.join(str(exc).split())})"
    recorded = recorded_provenance(model)
    if "exporter" not in recorded:
        return "records no exporter (made by an older desmoke, or not by desmoke)"
    props = {p.key: p.value for p in model.metadata_props}
    if props.get(GRAPH_DIGEST_KEY) != graph_digest(model):
        return "is damaged (its graph does not match the sha256 it recorded)"
    for key in PROVENANCE_KEYS:
        if recorded.get(key) != wanted[key]:
            return f"was made with another {key} ({recorded.get(key)!r}; now {wanted[key]!r})"
    return input_problem(model)


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The model's inputs, initializers aside (older exporters list those as inputs too)."""
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _dtype_name(elem_type: int) -> str:
    """float32, float16, ... (ONNX names them FLOAT, FLOAT16)."""
    name = onnx.TensorProto.DataType.Name(elem_type).lower()
    return "float32" if name == "float" else name


def input_problem(
    model: onnx.ModelProto, dtypes: tuple[int, ...] = (onnx.TensorProto.FLOAT,)
) -> str:
    """Why `model` does not take the one Nx4xHxW input of `dtypes` (onnx.TensorProto
    types) the backends feed it ("" when it does): onnxruntime's float32; a TensorRT build
    takes a float16 export too."""
    inputs = graph_inputs(model)
    if len(inputs) != 1:
        return f"takes inputs {[i.name for i in inputs]}, not one"
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type not in dtypes:
        wanted = " or ".join(_dtype_name(t) for t in dtypes)
        return f"takes a {_dtype_name(tensor.elem_type)} input, not {wanted}"
    dims = [d.dim_param or d.dim_value for d in tensor.shape.dim]
    if len(dims) != 4 or dims[1] != INPUT_CHANNELS:
        return f"takes an input of shape {dims}, not Nx{INPUT_CHANNELS}xHxW"
    return ""
