"""torch-CUDA backend: the network in fp16 + channels_last on an NVIDIA GPU, CUDA graphs
once shapes are fixed, and the fused kernels of engine/cuda around it.

Two ways in:
- `run(x)`: the Backend interface (NCHW float32 in, float32 outputs), for the pipeline's
  CPU pre/post-processing. The buffers and graph of one input shape (the last) are held.
- `process_frame(frame, ...)`: the whole frame on the GPU (engine.backends.frame_path).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.backends.base import BackendUnavailable
from engine.backends.frame_path import (
    GRAPH_WARMUP_RUNS,
    FramePath,
    FramePathBackend,
    free_cached_memory,
)
from engine.cuda import kernels as K

log = logging.getLogger(__name__)


# -- the backend ----------------------------------------------------------------------
def cuda_status() -> tuple[bool, str]:
    """(True, GPU name) when torch can use a CUDA device, else (False, why)."""
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU-only build"
    try:
        if not torch.cuda.is_available():
            return False, "torch sees no CUDA device (no NVIDIA GPU or driver)"
        return True, torch.cuda.get_device_name(0)
    except Exception as exc:  # a broken driver install
        return False, f"CUDA unusable: {exc}"


@dataclass
class _Static:
    """Fixed input/output tensors of one input shape, and their graph."""

    input: torch.Tensor
    host_input: torch.Tensor
    outputs: tuple[torch.Tensor, ...] = ()
    host_outputs: tuple[torch.Tensor, ...] = ()
    runs: int = 0
    graph: Any = None
    graph_failed: bool = False


class TorchCudaBackend(FramePathBackend):
    name = "torch-cuda"
    device = "cuda"

    def __init__(self) -> None:
        self.network: nn.Module | None = None
        self.model = ""
        self.stream: Any = None
        self._static: dict[tuple[int, ...], _Static] = {}

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        available, reason = cuda_status()
        return (True, "") if available else (False, reason)

    def load(self, network: nn.Module, config: dict[str, Any]) -> None:
        available, reason = cuda_status()
        if not available:
            raise BackendUnavailable(reason)
        self.model = config.get("model", "")
        try:  # a copy: the caller's CPU network stays usable by a fallback backend
            self.network = (
                copy.deepcopy(network)
                .eval()
                .to("cuda", dtype=torch.float16)
                .to(memory_format=torch.channels_last)
            )
            self.stream = torch.cuda.Stream()
        except RuntimeError as exc:  # out of memory, a driver problem
            raise BackendUnavailable(f"could not put the network on the GPU: {exc}") from exc
        self._static.clear()
        self._frame_path = None

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode():
            outputs = self.network(x)
        return (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.network is None:
            raise BackendUnavailable("torch-cuda backend used before load()")
        x = np.ascontiguousarray(x, dtype=np.float32)
        try:
            s = self._static.get(x.shape)
            if s is None:  # one shape at a time: a new working size frees the old one's
                self._static.clear()
                free_cached_memory()
                s = self._static[x.shape] = self._new_static(x.shape)
            with torch.cuda.stream(self.stream):
                s.host_input.numpy()[...] = x
                s.input.copy_(s.host_input, non_blocking=True)
                self._run_static(s)
                for host, device in zip(s.host_outputs, s.outputs, strict=True):
                    host.copy_(device, non_blocking=True)
                self.stream.synchronize()
        except RuntimeError as exc:  # out of memory, a driver problem: the next backend
            self._static.pop(x.shape, None)
            free_cached_memory()
            raise BackendUnavailable(f"the network failed on the GPU: {exc}") from exc
        return tuple(h.numpy().copy() for h in s.host_outputs)

    def _new_static(self, shape: tuple[int, ...]) -> _Static:
        device_input = torch.empty(shape, dtype=torch.float16, device="cuda")
        return _Static(
            input=device_input.contiguous(memory_format=torch.channels_last),
            host_input=torch.empty(shape, dtype=torch.float32).pin_memory(),
        )

    def _static_work(self, s: _Static) -> None:
        outputs = tuple(o.float() for o in self._forward(s.input))
        if not s.outputs:
            s.outputs = outputs
            s.host_outputs = tuple(torch.empty_like(o, device="cpu").pin_memory() for o in outputs)
        else:
            for static, new in zip(s.outputs, outputs, strict=True):
                static.copy_(new)

    def _run_static(self, s: _Static) -> None:
        if s.graph is not None:
            s.graph.replay()
            return
        self._static_work(s)
        s.runs += 1
        if not s.graph_failed and s.runs >= GRAPH_WARMUP_RUNS:
            graph = torch.cuda.CUDAGraph()
            try:  # thread_local: see FramePath._capture
                with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                    self._static_work(s)
                s.graph = graph
            except Exception as exc:
                s.graph_failed = True
                log.warning("CUDA graph capture failed (%s); running eagerly", exc)

    # -- the fused frame path (FramePathBackend.process_frame) ---------------------------
    def _new_frame_path(self, kernels: K.KernelModule) -> FramePath:
        return FramePath(
            kernels,
            self._forward,
            model=self.model,
            device=torch.device("cuda"),
            stream=self.stream,
        )

    def describe(self) -> str:
        available, gpu = cuda_status()
        where = gpu if available else "no GPU"
        return f"torch {torch.__version__} (cuda: {where}; fp16, channels_last, CUDA graphs)"
