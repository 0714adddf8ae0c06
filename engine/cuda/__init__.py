"""Fused CUDA kernels of the GPU path and their loader.

- kernels.cu: the pre-kernel (frame -> network input + display mask) and the post-kernels
  (smoke-layer restoration, the paper model's output), CUDA C.
- loader.py: NVRTC compilation through cuda-python for the GPU in use, disk cache, launches
  on a given stream with raw device pointers; CudaError for every failed call.
- kernels.py: launch geometry and arguments (shared by the GPU and the host emulation).
- emulation.py + host_emulation.h: the same kernel source built for the CPU with g++, so
  tests check the kernels' maths on machines without a GPU.

Nothing here imports cuda-python at import time: it is an optional dependency
(`pip install desmoke[cuda]`).
"""

from engine.cuda.loader import CudaError, driver_status, nvrtc_status

__all__ = ["CudaError", "driver_status", "nvrtc_status"]
