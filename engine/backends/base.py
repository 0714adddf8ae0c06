"""The one small interface every inference backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from torch import nn


class BackendUnavailable(RuntimeError):
    """A backend that cannot run here (library missing, no GPU, engine does not fit)."""


class Backend(ABC):
    """Runs a network on NCHW float32 input; outputs in the network's `output_names` order.

    Life cycle: `is_available()` (class method, never raises) -> `load(network, config)` ->
    `warm_up(shape)` -> `run(x)` many times. Pre- and post-processing stay in the pipeline,
    so backends agree on exactly the same tensors.
    """

    name: ClassVar[str]
    device: str = "cpu"

    @classmethod
    @abstractmethod
    def is_available(cls) -> tuple[bool, str]:
        """(True, "") or (False, one-line reason)."""

    @abstractmethod
    def load(self, network: nn.Module, config: dict[str, Any]) -> None:
        """Prepare the network (eval mode) for running on this backend."""

    @abstractmethod
    def run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """x: float32 Nx4xHxW in [0, 1]; returns float32 arrays (the network's outputs)."""

    def warm_up(self, height: int, width: int) -> None:
        """One run at this working shape, so the first real frame is not slow."""
        self.run(np.zeros((1, 4, height, width), dtype=np.float32))

    def describe(self) -> str:
        return f"{self.name} ({self.device})"
