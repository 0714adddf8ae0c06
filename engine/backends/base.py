"""The one small interface every inference backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from torch import nn

if TYPE_CHECKING:
    from engine.backends.frame_path import FrameOutputs


class BackendUnavailable(RuntimeError):
    """A backend that cannot run here (library missing, no GPU, engine does not fit)."""


class FrameUnsupported(BackendUnavailable):
    """A fused GPU frame path that cannot run these sizes or settings (a patch past its
    kernels' limits), checked before anything runs: other sizes and settings still can."""


class Backend(ABC):
    """Runs a network on NCHW float32 input; outputs in the network's `output_names` order.

    Life cycle: `is_available()` (class method, never raises) -> `load(network, config)` ->
    `warm_up(shape)` -> `run(x)` many times. Around `run`, the pipeline pre- and
    post-processes on the CPU, so backends agree on exactly the same tensors. GPU backends
    can also take the whole frame (`process_frame`: fused pre/post kernels around the
    network, engine.backends.frame_path); the pipeline asks each backend first.
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

    def process_frame(self, frame: np.ndarray, **options: Any) -> FrameOutputs | None:
        """The whole uint8 HxWx3 frame through the backend (options: FramePath.process's),
        or None where the backend has no such path (this default): the pipeline then pre-
        and post-processes around `run`. BackendUnavailable where the path exists but cannot
        run this frame (kernels that do not compile, out of GPU memory)."""
        return None

    def warm_up(self, height: int, width: int) -> None:
        """One run at this working shape, so the first real frame is not slow."""
        self.run(np.zeros((1, 4, height, width), dtype=np.float32))

    def describe(self) -> str:
        return f"{self.name} ({self.device})"
