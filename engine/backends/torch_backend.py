"""torch backend: the reference, always installed (CPU here; CUDA has its own backend)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from engine.backends.base import Backend, BackendUnavailable


class TorchBackend(Backend):
    name = "torch"
    device = "cpu"

    def __init__(self) -> None:
        self.network: nn.Module | None = None

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        return True, ""

    def load(self, network: nn.Module, config: dict[str, Any]) -> None:
        self.network = network.eval().to(self.device)

    @torch.inference_mode()
    def run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.network is None:
            raise BackendUnavailable("torch backend used before load()")
        outputs = self.network(torch.from_numpy(np.ascontiguousarray(x)).to(self.device))
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return tuple(o.float().cpu().numpy() for o in outputs)

    def describe(self) -> str:
        return f"torch {torch.__version__} (cpu, {torch.get_num_threads()} threads)"
