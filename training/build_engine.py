"""Build a TensorRT engine from a model's ONNX export (or from its .safetensors weights).

TensorRT 10 and 11 Python API (NOT YET RUN ON HARDWARE: TensorRT cannot be installed on
the machines this was written on; the shape, precision and sidecar logic is unit-tested):
- TensorRT 11 networks are always strongly typed: precision comes from the ONNX, so fp16
  needs an fp16 ONNX (a .safetensors input is exported in fp16 when --fp16 is asked).
- TensorRT 10: an fp16 ONNX builds strongly typed; an fp32 ONNX with --fp16 sets the FP16
  builder flag (weak typing, TensorRT picks fp16 kernels where it likes).
- A timing cache (read if present, written back) makes rebuilds fast.
- Fixed shapes (--shape HxW: the working resolution, fastest) or one optimisation profile
  covering the usual working sizes.
- A JSON sidecar (`<engine>.json`) records what the TensorRT backend checks before use:
  the ONNX's sha256, the weights' digest, TensorRT version, GPU name and compute
  capability, precision, I/O names and shapes, the engine file's sha256.
- The weights (digest, model, input stride) come from the .safetensors, or from what
  `desmoke export-model` records in the ONNX; an ONNX that names none needs --weights
  (an engine the backend cannot match to weights would never be used).
- An engine file is trusted like a program: TensorRT runs what it holds when it loads it,
  so load only engines you built. The default output, the engine cache, is refused where
  it is another user's or others may write in it (engine.files.usable_cache_folder).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from torch import nn

from engine.backends.tensorrt_backend import (
    SIDECAR_FORMAT,
    engine_dir,
    sidecar_path,
)
from engine.files import (
    not_a_file_reason,
    replace_together,
    usable_cache_folder,
    write_atomically,
)
from engine.models.onnx_export import (
    INPUT_CHANNELS,
    exported_onnx,
    graph_inputs,
    input_problem,
    recorded_provenance,
)
from engine.models.weights import weights_digest

#: Default profile (no --shape): short sides 128..512 around the default 256 working size.
DEFAULT_OPT = (256, 448)
WORKSPACE_BYTES = 2 << 30


class BuildError(ValueError):
    """An engine that cannot be built: one clear line (plus the parser's errors)."""


@dataclass(frozen=True)
class OnnxInfo:
    input_name: str
    input_dtype: str  # "float16" or "float32"
    channels: int
    output_names: tuple[str, ...]
    sha256: str
    provenance: dict[str, str] = field(default_factory=dict)  # recorded_provenance


@dataclass(frozen=True)
class Origin:
    """The weights an engine computes: what the TensorRT backend matches it by."""

    model: str
    weights_digest: str
    stride: int


def parse_shape(text: str) -> tuple[int, int]:
    """'256x448' -> (256, 448); BuildError on anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise BuildError(f"shape must look like HEIGHTxWIDTH (e.g. 256x448), got '{text}'")
    return int(match[1]), int(match[2])


def profile_shapes(
    shape: tuple[int, int] | None, stride: int = 16, channels: int = 4
) -> dict[str, tuple[int, int, int, int]]:
    """min/opt/max input shapes: all equal for a fixed shape, else a profile around 256.

    Every size is a multiple of the network's stride (16 for `fast`, 256 for `paper`).
    """

    def snap(x: int) -> int:
        return max(stride, -(-x // stride) * stride)

    if shape is not None:
        h, w = shape
        if h % stride or w % stride:
            raise BuildError(
                f"shape {h}x{w} must be a multiple of the network's stride {stride} "
                f"(e.g. {snap(h)}x{snap(w)})"
            )
        fixed = (1, channels, h, w)
        return {"min": fixed, "opt": fixed, "max": fixed}
    opt_h, opt_w = DEFAULT_OPT
    return {
        "min": (1, channels, snap(128), snap(128)),
        "opt": (1, channels, snap(opt_h), snap(opt_w)),
        "max": (1, channels, snap(512), snap(1024)),
    }


def onnx_info(data: bytes, name: str) -> OnnxInfo:
    """Check an ONNX model (onnx.checker) and read what the build needs from it; `name`
    says which model in messages (its file)."""
    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises several kinds for corrupt files
        raise BuildError(f"{name}: not a valid ONNX model ({exc})") from exc
    dtypes = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}
    problem = input_problem(model, tuple(dtypes))
    if problem:
        raise BuildError(f"{name}: {problem} (RGB + dark channel, float32 or float16)")
    source = graph_inputs(model)[0]
    return OnnxInfo(
        input_name=source.name,
        input_dtype=dtypes[source.type.tensor_type.elem_type],
        channels=INPUT_CHANNELS,
        output_names=tuple(o.name for o in model.graph.output),
        sha256=hashlib.sha256(data).hexdigest(),
        provenance=recorded_provenance(model),
    )


def engine_origin(
    info: OnnxInfo, name: str, weights: tuple[nn.Module, dict[str, Any], Path] | None = None
) -> Origin:
    """The weights the engine will compute: `weights` (network, config, file) when given,
    which the ONNX's recorded ones must then be; else those the ONNX records. BuildError
    when neither names any, before minutes of building an engine no backend would use."""
    recorded = info.provenance
    if weights is not None:
        network, config, path = weights
        origin = Origin(config["model"], weights_digest(network), network.stride)
        if recorded.get("weights_digest", origin.weights_digest) != origin.weights_digest:
            raise BuildError(f"{name}: exported from other weights than {path}")
        return origin
    if "weights_digest" not in recorded or not recorded.get("stride", "").isdigit():
        raise BuildError(
            f"{name}: names no weights (not exported by `desmoke export-model`): give the "
            "weights it came from with --weights W.safetensors, or export it again"
        )
    return Origin(recorded.get("model", ""), recorded["weights_digest"], int(recorded["stride"]))


def precision_plan(trt_major: int, onnx_dtype: str, fp16: bool) -> tuple[bool, bool, str]:
    """(strongly_typed, fp16_flag, precision) for a TensorRT major version and ONNX type."""
    if onnx_dtype == "float16":
        return True, False, "fp16"
    if trt_major >= 11:
        if fp16:
            raise BuildError(
                "TensorRT 11 takes precision from the ONNX: give an fp16 ONNX, or the "
                ".safetensors weights (exported in fp16 with --fp16)"
            )
        return True, False, "fp32"
    return False, fp16, "fp16" if fp16 else "fp32"


def gpu_identity() -> dict[str, Any]:
    """The GPU this engine is built on: name and compute capability."""
    import torch

    if not torch.cuda.is_available():
        raise BuildError("building a TensorRT engine needs an NVIDIA GPU (torch sees none)")
    index = torch.cuda.current_device()
    return {
        "name": torch.cuda.get_device_name(index),
        "compute_capability": list(torch.cuda.get_device_capability(index)),
    }


def make_sidecar(
    *,
    info: OnnxInfo,
    shapes: dict[str, tuple[int, ...]],
    tensorrt_version: str,
    gpu: dict[str, Any],
    precision: str,
    strongly_typed: bool,
    engine_sha256: str,
    weights_digest: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    return {
        "format": SIDECAR_FORMAT,
        "model": model,
        "weights_digest": weights_digest,
        "onnx_sha256": info.sha256,
        "tensorrt_version": tensorrt_version,
        "gpu": gpu,
        "precision": precision,
        "strongly_typed": strongly_typed,
        "inputs": {
            info.input_name: {"dtype": info.input_dtype, **{k: list(v) for k, v in shapes.items()}}
        },
        "outputs": list(info.output_names),
        "engine_sha256": engine_sha256,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# -- TensorRT -------------------------------------------------------------------------
def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BuildError(
            f"TensorRT is not installed (pip install 'desmoke[tensorrt]'): {exc}"
        ) from exc
    return trt


def build_serialized(
    trt: Any,
    onnx_bytes: bytes,
    *,
    input_name: str,
    shapes: dict[str, tuple[int, ...]],
    strongly_typed: bool,
    fp16_flag: bool,
    timing_cache: bytes = b"",
) -> tuple[bytes, bytes]:
    """(serialized engine, serialized timing cache) with the TensorRT 10/11 builder API."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    flag_enum = trt.NetworkDefinitionCreationFlag
    if strongly_typed and hasattr(flag_enum, "STRONGLY_TYPED"):  # ignored (always on) in 11
        flags |= 1 << int(flag_enum.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuildError(f"TensorRT's ONNX parser rejected the model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16_flag:  # TensorRT 10 only (precision_plan never asks for it on 11)
        config.set_flag(trt.BuilderFlag.FP16)
    # set_timing_cache reports (False) a cache made on another GPU; get_timing_cache would
    # then be None after the build, so refuse before building and serialize `cache` itself.
    cache = config.create_timing_cache(timing_cache)
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise BuildError(
            "TensorRT cannot use this timing cache (made on another GPU or TensorRT?): "
            "delete it or give another --timing-cache"
        )
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError("TensorRT could not build the engine (its log above says why)")
    return bytes(serialized), bytes(cache.serialize())


def build_engine(
    source: str | Path,
    output: str | Path | None = None,
    *,
    fp16: bool = False,
    timing_cache: str | Path | None = None,
    shape: tuple[int, int] | None = None,
    weights: str | Path | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Build an engine from an ONNX file or a .safetensors weights file; returns the
    engine's path and its sidecar. Nothing is left at `output` when the build fails.
    `weights`: the .safetensors an ONNX came from, where the ONNX does not record it."""
    from engine.models import load_network

    source = Path(source)
    problem = not_a_file_reason(source)
    if problem:
        raise BuildError(f"{source}: {'file not found' if problem == 'not found' else problem}")
    weights_file = source if source.suffix == ".safetensors" else weights
    if output is None and weights_file is None:  # refused before minutes of building
        raise BuildError("give -o ENGINE (or build from .safetensors weights)")
    trt = import_tensorrt()
    gpu = gpu_identity()
    weights_given = None
    if weights_file is not None:
        network, config = load_network(weights_file)
        weights_given = (network, config, Path(weights_file))
    if source.suffix == ".safetensors":  # exported in memory: no ONNX file is kept
        onnx_bytes, onnx_name = exported_onnx(network, fp16=fp16), f"{source} (as ONNX)"
    else:
        onnx_bytes, onnx_name = source.read_bytes(), str(source)
    info = onnx_info(onnx_bytes, onnx_name)
    origin = engine_origin(info, onnx_name, weights_given)
    strongly_typed, fp16_flag, precision = precision_plan(
        int(trt.__version__.split(".")[0]), info.input_dtype, fp16
    )
    shapes = profile_shapes(shape, origin.stride, info.channels)
    if output is None:
        cc = "".join(map(str, gpu["compute_capability"]))
        name = f"{origin.model}-{origin.weights_digest[:12]}-sm{cc}-trt{trt.__version__}"
        output = engine_dir() / f"{name}.engine"
        if not usable_cache_folder(output.parent):  # warned: why, and what to do
            raise BuildError(f"{output.parent}: the engine cache may not be used; give -o ENGINE")
    cache_path = Path(timing_cache) if timing_cache else None
    cache = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    engine, new_cache = build_serialized(
        trt,
        onnx_bytes,
        input_name=info.input_name,
        shapes=shapes,
        strongly_typed=strongly_typed,
        fp16_flag=fp16_flag,
        timing_cache=cache,
    )
    output = Path(output)
    sidecar = make_sidecar(
        info=info,
        shapes=shapes,
        tensorrt_version=trt.__version__,
        gpu=gpu,
        precision=precision,
        strongly_typed=strongly_typed,
        engine_sha256=hashlib.sha256(engine).hexdigest(),
        weights_digest=origin.weights_digest,
        model=origin.model,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    sidecar_text = json.dumps(sidecar, indent=2) + "\n"
    replace_together({output: engine, sidecar_path(output): sidecar_text.encode()})
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(cache_path, new_cache)
    return output, sidecar
