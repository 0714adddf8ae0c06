"""Stand-ins for GPU failures, patched onto a CPU backend's methods: they cannot happen on
a machine without a GPU, while the code that must survive them (the Desmoker's fallbacks,
the GUI and CLI that report them) is the real one."""

from __future__ import annotations

from engine.backends.base import BackendUnavailable


def lost_device(self, x):
    """For Backend.run: the device went away (or the engine does not fit the input)."""
    raise BackendUnavailable("simulated lost device")


def out_of_gpu_memory(self, frame, **kwargs):
    """For process_frame: the fused frame path cannot allocate for this frame size."""
    raise BackendUnavailable(f"out of GPU memory for {frame.shape[1]}x{frame.shape[0]} frames")
