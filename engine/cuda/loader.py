"""Compile kernels.cu with NVRTC for the GPU in use, cache the binary, launch kernels.

NVRTC and the driver API come from cuda-python (`cuda.bindings`), so users need no CUDA
toolkit: `pip install desmoke[cuda]` (cuda-python + the nvidia-cuda-nvrtc wheel). The
binary is a CUBIN for the device's exact architecture when this NVRTC knows it, else PTX
for the newest architecture it knows (the driver finishes it); either way it is cached on
disk by a hash of the source, the options, the NVRTC version and the target, under
$DESMOKE_CACHE/cuda or desmoke/cuda in the platform's cache folder (engine.files.cache_root),
with its sha256 beside it (a damaged image that would still load is compiled again); a
cache folder that is another user's or that others may write in is not used.
Kernels are launched on a stream the caller gives (torch's current stream, TensorRT's
stream) with raw device pointers, in the primary context (the one PyTorch and the CUDA
runtime use). Every call's status is checked and turned into a CudaError with the call,
the error's name and its description.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from engine.files import cache_file, cache_root, usable_cache_folder

log = logging.getLogger(__name__)

KERNEL_SOURCE = Path(__file__).with_name("kernels.cu")
KERNEL_NAMES = (
    "pre_pass_one",
    "pre_pass_two",
    "restore_smoke_layer",
    "restore_paper",
)
#: No FMA contraction: the kernels then round like NumPy does, operation by operation.
COMPILE_OPTIONS = ("--std=c++17", "--fmad=false")


class CudaError(RuntimeError):
    """A CUDA, NVRTC or driver failure, with the call that failed and why."""


def cache_dir() -> Path:
    return cache_root() / "cuda"


def _bindings() -> tuple[Any, Any]:
    """cuda-python's driver and nvrtc modules, or a CudaError saying what to install."""
    try:
        from cuda.bindings import driver, nvrtc
    except ImportError:
        try:  # cuda-python < 12.6 spelled it `from cuda import cuda, nvrtc`
            from cuda import cuda as driver
            from cuda import nvrtc
        except ImportError as exc:
            raise CudaError(
                "cuda-python is not installed (pip install 'desmoke[cuda]'): " + str(exc)
            ) from exc
    return driver, nvrtc


# -- status checking ------------------------------------------------------------------
def _driver_message(driver: Any, err: Any) -> str:
    name = driver.cuGetErrorName(err)
    text = driver.cuGetErrorString(err)
    name = name[1].decode() if name[0] == driver.CUresult.CUDA_SUCCESS else str(err)
    text = text[1].decode() if text[0] == driver.CUresult.CUDA_SUCCESS else ""
    return f"{name}: {text}" if text else name


def check_driver(result: Any, call: str) -> Any:
    """The value(s) a cuda.bindings.driver call returned, or a CudaError."""
    driver, _ = _bindings()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != driver.CUresult.CUDA_SUCCESS:
        raise CudaError(f"{call} failed: {_driver_message(driver, err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def check_nvrtc(result: Any, call: str) -> Any:
    _, nvrtc = _bindings()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        status, text = nvrtc.nvrtcGetErrorString(err)
        raise CudaError(f"{call} failed: {text.decode() if status == 0 else err}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


# -- NVRTC ----------------------------------------------------------------------------
def nvrtc_version() -> tuple[int, int]:
    _, nvrtc = _bindings()
    try:
        return tuple(check_nvrtc(nvrtc.nvrtcVersion(), "nvrtcVersion"))
    except CudaError:
        raise
    except Exception as exc:  # the bindings import, but libnvrtc.so is not found
        raise CudaError(
            f"NVRTC library not found ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "install the nvidia-cuda-nvrtc wheel (pip install 'desmoke[cuda]')"
        ) from exc


def nvrtc_status() -> tuple[bool, str]:
    """(True, "NVRTC x.y") when kernels can be compiled here, else (False, why); no raise."""
    try:
        major, minor = nvrtc_version()
    except CudaError as exc:
        return False, str(exc)
    return True, f"NVRTC {major}.{minor}"


def supported_architectures() -> list[int]:
    nvrtc_version()  # a missing libnvrtc: the CudaError that says so, not the loader's own
    _, nvrtc = _bindings()
    return sorted(check_nvrtc(nvrtc.nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs"))


def pick_target(capability: tuple[int, int], supported: Sequence[int]) -> str:
    """`sm_XY` (a CUBIN) when NVRTC knows the device's architecture, else `compute_XY` (PTX
    for the newest architecture it knows below the device's, which the driver JIT-compiles)."""
    arch = capability[0] * 10 + capability[1]
    if arch in supported:
        return f"sm_{arch}"
    older = [a for a in supported if a < arch]
    if not older:
        raise CudaError(
            f"this NVRTC cannot compile for compute capability {capability[0]}.{capability[1]} "
            f"(it knows {', '.join(map(str, supported))})"
        )
    return f"compute_{max(older)}"


def compile_source(
    source: str | bytes,
    target: str,
    *,
    name: str = "kernels.cu",
    options: Sequence[str] = COMPILE_OPTIONS,
) -> bytes:
    """Compile CUDA C++ with NVRTC: CUBIN for `sm_XY`, NUL-terminated PTX for `compute_XY`."""
    _, nvrtc = _bindings()
    nvrtc_version()  # a clear message when libnvrtc is missing
    src = source.encode() if isinstance(source, str) else source
    program = check_nvrtc(
        nvrtc.nvrtcCreateProgram(src, name.encode(), 0, [], []), "nvrtcCreateProgram"
    )
    try:
        flags = [f"--gpu-architecture={target}".encode(), *(o.encode() for o in options)]
        status = nvrtc.nvrtcCompileProgram(program, len(flags), flags)
        if status[0] != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise CudaError(f"NVRTC could not compile {name} for {target}:\n{_log(program)}")
        if target.startswith("sm_"):
            size = check_nvrtc(nvrtc.nvrtcGetCUBINSize(program), "nvrtcGetCUBINSize")
            image = b" " * size
            check_nvrtc(nvrtc.nvrtcGetCUBIN(program, image), "nvrtcGetCUBIN")
        else:
            size = check_nvrtc(nvrtc.nvrtcGetPTXSize(program), "nvrtcGetPTXSize")
            image = b" " * size
            check_nvrtc(nvrtc.nvrtcGetPTX(program, image), "nvrtcGetPTX")
        return image
    finally:
        nvrtc.nvrtcDestroyProgram(program)


def _log(program: Any) -> str:
    _, nvrtc = _bindings()
    size = check_nvrtc(nvrtc.nvrtcGetProgramLogSize(program), "nvrtcGetProgramLogSize")
    text = b" " * size
    check_nvrtc(nvrtc.nvrtcGetProgramLog(program, text), "nvrtcGetProgramLog")
    return text.rstrip(b"\0 ").decode(errors="replace")


def cache_key(source: bytes, target: str, options: Sequence[str], version: tuple[int, int]) -> str:
    digest = hashlib.sha256()
    for part in (source, target.encode(), " ".join(options).encode(), repr(version).encode()):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()[:24]


class KernelImage(NamedTuple):
    """A compiled kernel binary, where it is cached, and whether it was read from there."""

    image: bytes
    path: Path
    from_cache: bool


def compiled_image(
    target: str, *, source_path: Path = KERNEL_SOURCE, fresh: bool = False
) -> KernelImage:
    """The kernels compiled for `target`, from the disk cache or freshly (then cached with
    their sha256 beside them: image_digest_path); fresh: compile even where a cached image
    exists (it did not load: it is replaced). A cached image whose bytes do not match the
    sha256 recorded beside it (damaged, or written by something else) is compiled again,
    with a warning; a cache folder that may not be trusted (engine.files.
    usable_cache_folder) is neither read nor written."""
    source = source_path.read_bytes()
    key = cache_key(source, target, COMPILE_OPTIONS, nvrtc_version())
    suffix = "cubin" if target.startswith("sm_") else "ptx"
    path = cache_dir() / f"{source_path.stem}-{key}-{target}.{suffix}"
    usable = usable_cache_folder(path.parent)
    if usable and not fresh:
        cached = _cached_image(path)
        if cached is not None:
            return KernelImage(cached, path, from_cache=True)
    image = compile_source(source, target, name=source_path.name)
    # Unsaved (a read-only or full cache): the kernels run all the same. The image first:
    # a digest written without it is never taken for that of another image.
    if usable and cache_file(path, image):
        cache_file(image_digest_path(path), _sha256(image).encode())
    return KernelImage(image, path, from_cache=False)


def image_digest_path(path: Path) -> Path:
    """Where the sha256 of the cached kernel image `path` is kept: `<image>.sha256`."""
    return path.with_name(path.name + ".sha256")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cached_image(path: Path) -> bytes | None:
    """The image cached at `path` where its bytes match the sha256 recorded beside it;
    None where none is cached, or one that does not match is (warned: it is compiled again)."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        image = path.read_bytes()
        recorded = image_digest_path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):  # no digest: cached by an older desmoke
        image, recorded = b"", ""
    if recorded and _sha256(image) == recorded:
        return image
    log.warning(
        "cached kernels %s do not match the sha256 recorded beside them (damaged, or cached "
        "by an older desmoke); compiling again",
        path,
    )
    return None


# -- the driver -----------------------------------------------------------------------
class LaunchArgs:
    """A kernel's arguments as cuLaunchKernel wants them: an array of pointers to values.

    Keeps the ctypes values alive for as long as the object lives (the launch copies them).
    """

    def __init__(self, values: Sequence[ctypes._SimpleCData]) -> None:
        self.values = list(values)
        self.pointers = (ctypes.c_void_p * max(1, len(self.values)))(
            *[ctypes.addressof(v) for v in self.values]
        )

    @property
    def address(self) -> int:
        return ctypes.addressof(self.pointers)

    def __len__(self) -> int:
        return len(self.values)


class CudaModule:
    """kernels.cu loaded on one device's primary context; `launch` by kernel name."""

    def __init__(self, device_index: int = 0, *, source_path: Path = KERNEL_SOURCE) -> None:
        driver, _ = _bindings()
        self._driver = driver
        self._local = threading.local()
        check_driver(driver.cuInit(0), "cuInit")
        self.device = check_driver(driver.cuDeviceGet(device_index), "cuDeviceGet")
        self.module: Any = None
        self._released = False
        self.context = check_driver(
            driver.cuDevicePrimaryCtxRetain(self.device), "cuDevicePrimaryCtxRetain"
        )
        try:
            self._load_on_context(source_path)
        except BaseException:  # kernels that do not load: the context is not kept either
            with contextlib.suppress(CudaError):  # the error to report is the first one
                self.close()
            raise

    def _load_on_context(self, source_path: Path) -> None:
        driver = self._driver
        self.make_current()
        attr = driver.CUdevice_attribute
        self.capability = (
            check_driver(
                driver.cuDeviceGetAttribute(
                    attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self.device
                ),
                "cuDeviceGetAttribute",
            ),
            check_driver(
                driver.cuDeviceGetAttribute(
                    attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self.device
                ),
                "cuDeviceGetAttribute",
            ),
        )
        self.target = pick_target(self.capability, supported_architectures())
        self.module, self.image_path = self._load_kernels(source_path)
        self.functions = {
            name: check_driver(
                driver.cuModuleGetFunction(self.module, name.encode()),
                f"cuModuleGetFunction({name})",
            )
            for name in KERNEL_NAMES
        }

    def _load_kernels(self, source_path: Path) -> tuple[Any, Path]:
        """The kernels' module and the path of their image. A cached image that does not
        load (a damaged file) is compiled afresh, once; a fresh one that does not load
        raises: compiling it again would fail the same way."""
        kernels = compiled_image(self.target, source_path=source_path)
        try:
            return self._load(kernels.image), kernels.path
        except CudaError as exc:
            if not kernels.from_cache:
                raise
            log.warning("cached kernels %s did not load (%s); recompiling", kernels.path, exc)
        # Not read from the cache again, which may be read-only: the new image replaces the
        # damaged one where it can.
        kernels = compiled_image(self.target, source_path=source_path, fresh=True)
        return self._load(kernels.image), kernels.path

    def _load(self, image: bytes) -> Any:
        try:
            return check_driver(self._driver.cuModuleLoadData(image), "cuModuleLoadData")
        except CudaError as exc:
            driver_version = check_driver(self._driver.cuDriverGetVersion(), "cuDriverGetVersion")
            raise CudaError(
                f"{exc} (kernels built for {self.target} by NVRTC "
                f"{'.'.join(map(str, nvrtc_version()))}; the driver supports CUDA "
                f"{driver_version // 1000}.{driver_version % 1000 // 10}: an NVRTC newer than "
                "the driver needs a matching nvidia-cuda-nvrtc wheel)"
            ) from exc

    def make_current(self) -> None:
        """Make the primary context current on this thread (once per thread)."""
        if getattr(self._local, "current", False):
            return
        check_driver(self._driver.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
        self._local.current = True

    def launch(
        self,
        name: str,
        grid: tuple[int, int, int],
        block: tuple[int, int, int],
        shared: int,
        args: Sequence[ctypes._SimpleCData],
        stream: int = 0,
    ) -> None:
        self.make_current()
        packed = LaunchArgs(args)
        check_driver(
            self._driver.cuLaunchKernel(
                self.functions[name], *grid, *block, shared, stream, packed.address, 0
            ),
            f"cuLaunchKernel({name})",
        )

    def describe(self) -> str:
        major, minor = self.capability
        return f"kernels for {self.target} (compute {major}.{minor}) from {self.image_path}"

    def close(self) -> None:
        """Unload the kernels and release the device's primary context; once."""
        if self._released:
            return
        self._released = True
        try:
            if self.module is not None:
                self.make_current()  # the context is still there to make current
                check_driver(self._driver.cuModuleUnload(self.module), "cuModuleUnload")
        finally:
            self.module = None
            self.context = None
            check_driver(
                self._driver.cuDevicePrimaryCtxRelease(self.device), "cuDevicePrimaryCtxRelease"
            )


def driver_status() -> tuple[bool, str]:
    """(True, "GPU name, compute X.Y, CUDA driver A.B") or (False, why); never raises."""
    try:
        driver, _ = _bindings()
        check_driver(driver.cuInit(0), "cuInit")
        count = check_driver(driver.cuDeviceGetCount(), "cuDeviceGetCount")
        if count < 1:
            return False, "no CUDA device"
        device = check_driver(driver.cuDeviceGet(0), "cuDeviceGet")
        name = check_driver(driver.cuDeviceGetName(256, device), "cuDeviceGetName")
        version = check_driver(driver.cuDriverGetVersion(), "cuDriverGetVersion")
    except CudaError as exc:
        return False, str(exc)
    except Exception as exc:  # libcuda.so missing: the bindings raise their own errors
        return False, f"no NVIDIA driver ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    label = name.split(b"\0")[0].decode(errors="replace")
    return True, f"{label}, CUDA driver {version // 1000}.{version % 1000 // 10}"
