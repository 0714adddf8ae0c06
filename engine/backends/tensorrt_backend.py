"""TensorRT backend: a serialized engine (built by `desmoke build-engine`) run with the
TensorRT 10/11 Python API (`set_tensor_address` + `execute_async_v3` on a non-default
stream), torch-owned device buffers, and the fused kernels of engine/cuda around it.

NOT YET RUN ON HARDWARE: TensorRT cannot be installed on the machines this was written
on; the code follows the documented API and its sidecar/shape logic is unit-tested.

An engine only runs on the GPU architecture and the TensorRT version it was built with,
so every engine has a JSON sidecar (`<engine>.json`, written by the build): the model and
weights it came from, the TensorRT version, the GPU and compute capability, the I/O
shapes. `load` checks the sidecar against the running GPU and TensorRT and raises
BackendUnavailable with the reason when it does not fit; `auto` then falls back to the
next backend.

Which engine: $DESMOKE_TRT_ENGINE when set, else the engine in $DESMOKE_CACHE/tensorrt
(engine.files.cache_root) whose sidecar names these weights and fits this GPU and TensorRT
(`desmoke build-engine WEIGHTS.safetensors` puts one there). Never one a weights file
names: an engine file is trusted like a program (TensorRT runs what it holds, plugins
included: load only engines you built), so its path comes from the user alone, and the
engine cache is not searched where it is another user's or others may write in it
(engine.files.usable_cache_folder). The sidecar's checks are against accidents (another
GPU, TensorRT or weights, a damaged copy), not against an engine made to harm.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.backends.base import BackendUnavailable
from engine.backends.frame_path import FramePath, FramePathBackend, free_cached_memory
from engine.cuda import kernels as K
from engine.files import cache_root, file_sha256, usable_cache_folder
from engine.models.weights import weights_digest

log = logging.getLogger(__name__)

SIDECAR_FORMAT = 1
#: torch dtypes of the TensorRT DataType names a desmoke engine can have at its I/O.
TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16}


def engine_dir() -> Path:
    return cache_root() / "tensorrt"


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


# -- the sidecar ----------------------------------------------------------------------
def read_sidecar(engine_path: str | Path) -> dict[str, Any]:
    """The engine's sidecar, or BackendUnavailable saying what is wrong with it."""
    path = sidecar_path(engine_path)
    if not Path(engine_path).is_file():
        raise BackendUnavailable(f"{engine_path}: TensorRT engine not found")
    if not path.is_file():
        raise BackendUnavailable(
            f"{engine_path}: no sidecar {path.name} (rebuild with `desmoke build-engine`)"
        )
    try:
        sidecar = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BackendUnavailable(f"{path}: unreadable engine sidecar ({exc})") from exc
    required = ("format", "tensorrt_version", "gpu", "inputs", "outputs", "engine_sha256")
    missing = [key for key in required if key not in sidecar]
    if missing or sidecar.get("format") != SIDECAR_FORMAT:
        raise BackendUnavailable(f"{path}: not a desmoke engine sidecar (missing {missing})")
    return sidecar


def sidecar_problems(
    sidecar: dict[str, Any],
    *,
    tensorrt_version: str,
    capability: tuple[int, int],
    weights_digest: str | None = None,
    output_names: tuple[str, ...] | None = None,
) -> list[str]:
    """Why an engine cannot run here (empty: it fits). GPU names may differ within one
    compute capability (a warning at most); the TensorRT version must match exactly."""
    problems = []
    built_with = sidecar["tensorrt_version"]
    if built_with != tensorrt_version:
        problems.append(f"built with TensorRT {built_with}, running {tensorrt_version}")
    built_cc = tuple(sidecar["gpu"].get("compute_capability", ()))
    if built_cc != tuple(capability):
        problems.append(
            f"built for compute capability {'.'.join(map(str, built_cc))} "
            f"({sidecar['gpu'].get('name', '?')}), this GPU is {'.'.join(map(str, capability))}"
        )
    built_digest = sidecar.get("weights_digest")
    if weights_digest is not None and built_digest != weights_digest:
        problems.append(
            "built from other weights" if built_digest else "its sidecar names no weights"
        )
    if output_names is not None and tuple(sidecar["outputs"]) != tuple(output_names):
        problems.append(f"outputs {sidecar['outputs']}, the model has {list(output_names)}")
    return problems


def shape_fits(sidecar: dict[str, Any], shape: tuple[int, ...]) -> bool:
    """Whether an input shape lies in the engine's optimisation profile."""
    (spec,) = sidecar["inputs"].values()
    low, high = spec["min"], spec["max"]
    if len(shape) != len(low):
        return False
    return all(a <= s <= b for a, s, b in zip(low, shape, high, strict=True))


def find_engine(weights_digest: str, tensorrt_version: str, capability: tuple[int, int]) -> Path:
    """The engine to use for these weights here, or BackendUnavailable saying why none:
    $DESMOKE_TRT_ENGINE, else the one in the engine cache (engine_dir) that fits. Never
    from the weights' own config: an engine runs code, so the user alone says which."""
    explicit = os.environ.get("DESMOKE_TRT_ENGINE")
    if explicit:
        return Path(explicit)
    folder = engine_dir()
    if not usable_cache_folder(folder):  # warned: an engine planted there would run
        raise BackendUnavailable(
            f"the engine cache {folder} is not safe to load engines from (see the warning); "
            "give the engine in DESMOKE_TRT_ENGINE"
        )
    rejected = []
    for engine in sorted(folder.glob("*.engine")):
        try:
            sidecar = read_sidecar(engine)
        except BackendUnavailable as exc:
            rejected.append(str(exc))
            continue
        problems = sidecar_problems(
            sidecar,
            tensorrt_version=tensorrt_version,
            capability=capability,
            weights_digest=weights_digest,
        )
        if not problems:
            return engine
        if sidecar.get("weights_digest") == weights_digest:
            rejected.append(f"{engine.name}: {'; '.join(problems)}")
    hint = f" ({'; '.join(rejected)})" if rejected else ""
    raise BackendUnavailable(
        f"no TensorRT engine for these weights in {folder}{hint}: build one with "
        "`desmoke build-engine WEIGHTS.safetensors --fp16`"
    )


# -- the backend ----------------------------------------------------------------------
def tensorrt_status() -> tuple[bool, str]:
    try:
        import tensorrt as trt
    except ImportError as exc:
        return False, f"TensorRT is not installed (pip install 'desmoke[tensorrt]'): {exc}"
    from engine.backends.torch_cuda import cuda_status

    available, reason = cuda_status()
    if not available:
        return False, reason
    return True, f"TensorRT {trt.__version__}"


class TensorRTBackend(FramePathBackend):
    name = "tensorrt"
    device = "cuda"

    def __init__(self) -> None:
        self.engine_path: Path | None = None
        self.sidecar: dict[str, Any] = {}
        self.model = ""
        self.stream: Any = None
        self._engine = None
        self._context = None
        self._outputs: dict[tuple[int, ...], tuple[torch.Tensor, ...]] = {}

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        available, reason = tensorrt_status()
        return (True, "") if available else (False, reason)

    def load(self, network: nn.Module, config: dict[str, Any]) -> None:
        available, reason = tensorrt_status()
        if not available:
            raise BackendUnavailable(reason)
        import tensorrt as trt

        capability = torch.cuda.get_device_capability()
        digest = weights_digest(network)
        path = find_engine(digest, trt.__version__, capability)
        sidecar = read_sidecar(path)
        output_names = tuple(getattr(network, "output_names", ()))
        problems = sidecar_problems(
            sidecar,
            tensorrt_version=trt.__version__,
            capability=capability,
            weights_digest=digest,
            output_names=output_names or None,
        )
        if file_sha256(path) != sidecar["engine_sha256"]:
            problems.append("the engine file does not match its sidecar (damaged or replaced)")
        if problems:
            raise BackendUnavailable(f"{path}: cannot run here: {'; '.join(problems)}")
        self._deserialize(trt, path)
        self.engine_path, self.sidecar, self.model = path, sidecar, config.get("model", "")
        self.output_names = output_names or tuple(sidecar["outputs"])
        self.stream = torch.cuda.Stream()  # TensorRT wants a non-default stream

    def _deserialize(self, trt: Any, path: Path) -> None:
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise BackendUnavailable(f"{path}: TensorRT could not deserialize the engine")
        context = engine.create_execution_context()
        if context is None:
            raise BackendUnavailable(f"{path}: no execution context (out of GPU memory?)")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.input_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(self.input_names) != 1:
            raise BackendUnavailable(f"{path}: expected one input, found {self.input_names}")
        self.dtypes = {}
        for name in names:
            kind = engine.get_tensor_dtype(name).name
            if kind not in TORCH_DTYPES:
                raise BackendUnavailable(f"{path}: tensor {name} has unsupported type {kind}")
            self.dtypes[name] = TORCH_DTYPES[kind]
        self._runtime, self._engine, self._context = runtime, engine, context

    @property
    def input_dtype(self) -> torch.dtype:
        return self.dtypes[self.input_names[0]]

    def run_device(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The engine on a device tensor (1x4xhxw, the engine's input dtype, contiguous),
        enqueued on torch's current stream; outputs in the network's order."""
        if self._context is None:
            raise BackendUnavailable("tensorrt backend used before load()")
        shape = tuple(x.shape)
        if not shape_fits(self.sidecar, shape):
            (spec,) = self.sidecar["inputs"].values()
            raise BackendUnavailable(
                f"input {shape} is outside the engine's shapes {spec['min']}..{spec['max']}: "
                "rebuild it with `desmoke build-engine --shape HxW` for this working size"
            )
        context = self._context
        if not context.set_input_shape(self.input_names[0], shape):
            raise BackendUnavailable(f"TensorRT refused input shape {shape}")
        outputs = self._outputs.get(shape)
        if outputs is None:  # one shape's at a time: a new working size frees the old one's
            self._outputs.clear()
            outputs = tuple(
                torch.empty(
                    tuple(context.get_tensor_shape(name)), dtype=self.dtypes[name], device=x.device
                )
                for name in self.output_names
            )
            self._outputs[shape] = outputs
        context.set_tensor_address(self.input_names[0], x.data_ptr())
        for name, tensor in zip(self.output_names, outputs, strict=True):
            context.set_tensor_address(name, tensor.data_ptr())
        if not context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise BackendUnavailable("TensorRT execute_async_v3 failed (see the TensorRT log)")
        return outputs

    def run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        if self._context is None:
            raise BackendUnavailable("tensorrt backend used before load()")
        try:
            with torch.cuda.stream(self.stream):
                device_x = torch.from_numpy(np.ascontiguousarray(x)).to(
                    "cuda", dtype=self.input_dtype, non_blocking=False
                )
                outputs = [o.float() for o in self.run_device(device_x)]
                self.stream.synchronize()
            return tuple(o.cpu().numpy() for o in outputs)
        except BackendUnavailable:
            raise
        except RuntimeError as exc:  # out of memory, a driver problem: the next backend
            self._outputs.clear()
            free_cached_memory()
            raise BackendUnavailable(f"the engine failed on the GPU: {exc}") from exc

    # -- the fused frame path (FramePathBackend.process_frame) ---------------------------
    def _new_frame_path(self, kernels: K.KernelModule) -> FramePath:
        return FramePath(
            kernels,
            self.run_device,
            model=self.model,
            device=torch.device("cuda"),
            input_dtype=self.input_dtype,
            channels_last=False,
            use_graphs=False,
            stream=self.stream,
        )

    def describe(self) -> str:
        try:
            import tensorrt as trt

            version = trt.__version__
        except ImportError:
            version = "?"
        engine = self.engine_path.name if self.engine_path else "no engine"
        return f"TensorRT {version} ({engine}; {self.sidecar.get('precision', '?')})"
