"""Run kernels.cu on the CPU: g++ builds it against host_emulation.h into a shared library.

For tests and development on machines without a GPU. `EmulatedModule` has the same
`launch` as the driver-backed CudaModule, and pointers are host addresses (NumPy arrays'
`ctypes.data`, CPU tensors' `data_ptr()`), so the launch code in engine.cuda.kernels and
the GPU frame path run unchanged against it. Slow (a thread per CUDA thread): small
frames only.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from engine.cuda.kernels import SHARED_LIMIT
from engine.cuda.loader import KERNEL_NAMES, KERNEL_SOURCE, CudaError, LaunchArgs
from engine.files import replaced_on_success

HEADER = Path(__file__).with_name("host_emulation.h")
CXX_FLAGS = ("-std=c++20", "-O1", "-fPIC", "-shared", "-pthread", "-ffp-contract=off")


def compiler() -> str | None:
    """The C++ compiler to use ($CXX, else g++), or None when there is none."""
    return shutil.which(os.environ.get("CXX", "g++"))


def build_library(directory: Path, source_path: Path = KERNEL_SOURCE) -> Path:
    """Compile the kernels for the host into `directory`; reuses an identical earlier build."""
    cxx = compiler()
    if cxx is None:
        raise CudaError("no C++ compiler (g++) to build the host emulation of the kernels")
    exports = "\n".join(f"EMU_EXPORT({name})" for name in KERNEL_NAMES)
    unit = f'#include "{HEADER}"\n#include "{source_path.resolve()}"\n{exports}\n'
    digest = hashlib.sha256(
        unit.encode() + HEADER.read_bytes() + source_path.read_bytes()
    ).hexdigest()[:16]
    library = directory / f"kernels-emulated-{digest}.so"
    if library.is_file():
        return library
    directory.mkdir(parents=True, exist_ok=True)
    cpp = directory / f"kernels-emulated-{digest}.cpp"
    cpp.write_text(unit)
    with replaced_on_success(library) as temp:
        result = subprocess.run(
            [cxx, *CXX_FLAGS, str(cpp), "-o", str(temp)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise CudaError(f"host build of {source_path.name} failed:\n{result.stderr[-4000:]}")
    return library


class EmulatedModule:
    """kernels.cu built for the CPU, launched like engine.cuda.loader.CudaModule."""

    target = "host emulation"

    def __init__(self, library: Path) -> None:
        self.library = ctypes.CDLL(str(library))
        self.functions = {}
        for name in KERNEL_NAMES:
            function = getattr(self.library, f"emu_launch_{name}")
            function.restype = ctypes.c_int
            function.argtypes = [
                ctypes.c_int,
                *[ctypes.c_uint] * 6,
                ctypes.c_size_t,
                ctypes.c_void_p,
            ]
            self.functions[name] = function

    def launch(
        self,
        name: str,
        grid: tuple[int, int, int],
        block: tuple[int, int, int],
        shared: int,
        args: Sequence[ctypes._SimpleCData],
        stream: int = 0,
    ) -> None:
        if min(*grid, *block) < 1:
            raise CudaError(f"{name}: empty launch grid {grid} x block {block}")
        if block[0] * block[1] * block[2] > 1024:
            raise CudaError(f"{name}: {block} is more than 1024 threads a block")
        if shared > SHARED_LIMIT:
            raise CudaError(f"{name}: {shared} bytes of shared memory is over {SHARED_LIMIT}")
        packed = LaunchArgs(args)
        status = self.functions[name](len(packed), *grid, *block, shared, packed.address)
        if status != 0:
            raise CudaError(f"{name}: wrong number of kernel arguments ({len(packed)})")

    def describe(self) -> str:
        return f"host emulation of the kernels ({self.library._name})"
