"""The fused CUDA kernels (engine/cuda): compiled, and checked against the CPU reference.

Without a GPU: the kernels compile to PTX/CUBIN with NVRTC (cuda-python + the
nvidia-cuda-nvrtc wheel; nvcc as a fallback), and the *same kernel source* runs on the CPU
through its host emulation (g++ + host_emulation.h), launched by the same Python code as
on a GPU, on poisoned output buffers, and must equal the pipeline's NumPy/OpenCV maths.
With a GPU (marker `gpu`): the real kernels against the same reference.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess

import cv2
import numpy as np
import pytest
import torch

from engine.backends import frame_path
from engine.backends.base import BackendUnavailable
from engine.backends.frame_path import (
    FramePath,
    FramePathBackend,
    cuda_kernels,
    guided_coefficients,
)
from engine.cuda import kernels as K
from engine.cuda.emulation import EmulatedModule, build_library, compiler
from engine.cuda.loader import (
    KERNEL_NAMES,
    KERNEL_SOURCE,
    CudaError,
    cache_key,
    compile_source,
    compiled_image,
    image_digest_path,
    nvrtc_status,
    pick_target,
)
from engine.dark_channel import dark_channel, default_patch_size
from engine.models import build_network, default_config, save_weights, working_interpolation
from engine.pipeline import Desmoker
from engine.restore import (
    DEFAULT_T_MIN,
    SmokeLayer,
    guided_filter_coefficients,
    restore,
    to_gray,
)

NVRTC_OK, NVRTC_REASON = nvrtc_status()
ONE_LEVEL = 1 / 255 + 1e-6


# -- helpers --------------------------------------------------------------------------
def textured(height: int, width: int, seed: int) -> np.ndarray:
    """Random but smooth-ish RGB frame: structure at several scales, full 0..255 range."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX)


def reference_small(frame: np.ndarray, work_h: int, work_w: int) -> np.ndarray:
    """engine.pipeline.Desmoker.process's small_f."""
    interpolation = working_interpolation(*frame.shape[:2], work_h, work_w)
    small = cv2.resize(frame, (work_w, work_h), interpolation=interpolation)
    return small.astype(np.float32) * np.float32(1 / 255)


def assert_close_levels(
    actual: np.ndarray, expected: np.ndarray, *, max_levels: int, max_fraction: float
) -> None:
    """At most `max_levels` apart anywhere, and differing at most in `max_fraction` of values."""
    assert np.isfinite(actual).all(), "unwritten (poisoned) outputs"
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    assert diff.max() <= max_levels + 1e-6, f"max difference {diff.max()}"
    fraction = float((diff > 1e-6).mean())
    assert fraction <= max_fraction, f"{fraction:.2%} of values differ"


@pytest.fixture(scope="session")
def emulated(tmp_path_factory) -> EmulatedModule:
    if compiler() is None:
        pytest.skip("no C++ compiler (g++) for the kernels' host emulation")
    return EmulatedModule(build_library(tmp_path_factory.mktemp("cuda-emulation")))


# -- compilation ----------------------------------------------------------------------
@pytest.mark.parametrize("arch", [80, 90])
def test_kernels_compile_to_ptx(arch: int, tmp_path) -> None:
    if NVRTC_OK:
        ptx = compile_source(KERNEL_SOURCE.read_text(), f"compute_{arch}").decode()
    elif shutil.which("nvcc"):
        out = tmp_path / "kernels.ptx"
        subprocess.run(
            [
                "nvcc",
                "-ptx",
                f"-arch=sm_{arch}",
                "--fmad=false",
                "-o",
                str(out),
                str(KERNEL_SOURCE),
            ],
            check=True,
            capture_output=True,
        )
        ptx = out.read_text()
    else:
        pytest.skip(f"neither NVRTC ({NVRTC_REASON}) nor nvcc available to compile the kernels")
    assert f".target sm_{arch}" in ptx
    for name in KERNEL_NAMES:
        assert f".entry {name}(" in ptx, f"kernel {name} missing from the PTX"
    # The device's layout of each job struct is the size ctypes packs.
    for kernel, jobs in {
        "pre_pass_one": (K.InputRgbJob, K.MaskRowsJob),
        "pre_pass_two": (K.InputDarkJob, K.MaskColsJob),
    }.items():
        for index, job in enumerate(jobs, start=1):
            size = ctypes.sizeof(job)
            assert f".b8 {kernel}_param_{index}[{size}]" in ptx, (kernel, job.__name__)


@pytest.mark.skipif(not NVRTC_OK, reason=f"NVRTC not usable: {NVRTC_REASON}")
def test_nvrtc_builds_a_cubin_for_the_exact_architecture() -> None:
    cubin = compile_source(KERNEL_SOURCE.read_text(), "sm_90")
    assert cubin[:4] == b"\x7fELF"


@pytest.mark.skipif(not NVRTC_OK, reason=f"NVRTC not usable: {NVRTC_REASON}")
def test_compile_error_is_a_clear_cuda_error() -> None:
    broken = 'extern "C" __global__ void k(float* x) { x[0] = undefined_thing; }'
    with pytest.raises(
        CudaError, match=r"could not compile broken\.cu for compute_90:\n.*undefined"
    ):
        compile_source(broken, "compute_90", name="broken.cu")


@pytest.mark.skipif(not NVRTC_OK, reason=f"NVRTC not usable: {NVRTC_REASON}")
def test_compiled_kernels_are_cached_on_disk(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path))
    image, path, from_cache = compiled_image("compute_80")
    assert path.parent == tmp_path / "cuda" and path.read_bytes() == image and not from_cache
    path.write_bytes(b"cached marker")  # a second call must read the file, not recompile
    image_digest_path(path).write_text(hashlib.sha256(b"cached marker").hexdigest())
    assert compiled_image("compute_80") == (b"cached marker", path, True)
    # A cached image that did not load: compiled afresh, replacing it (never read again).
    assert compiled_image("compute_80", fresh=True) == (image, path, False)
    assert path.read_bytes() == image


@pytest.mark.skipif(not NVRTC_OK, reason=f"NVRTC not usable: {NVRTC_REASON}")
def test_an_unwritable_cache_still_gives_the_kernels(tmp_path, monkeypatch) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder would go")
    monkeypatch.setenv("DESMOKE_CACHE", str(not_a_folder))
    image, path, from_cache = compiled_image("compute_80")
    assert image and not path.exists() and not from_cache


def test_a_missing_nvrtc_library_is_a_cuda_error(monkeypatch) -> None:
    """cuda-bindings imports, but libnvrtc cannot be loaded (its loader's RuntimeError)."""
    from engine.cuda import loader

    class NoLibrary:
        def __getattr__(self, name):
            def call(*args):
                raise RuntimeError(f"{name}: libnvrtc.so.13 not found")

            return call

    monkeypatch.setattr(loader, "_bindings", lambda: (None, NoLibrary()))
    with pytest.raises(CudaError, match="NVRTC library not found"):
        loader.supported_architectures()


class FakeDriver:
    """The driver calls CudaModule makes, on a pretend device of compute capability 9.0
    that loads only the image `loadable` (any other: CUDA_ERROR_INVALID_IMAGE)."""

    class CUresult:
        CUDA_SUCCESS = 0

    class CUdevice_attribute:
        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = "major"
        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = "minor"

    def __init__(self, loadable: bytes) -> None:
        self.loadable = loadable
        self.loaded: list[bytes] = []  # every image cuModuleLoadData was given
        self.contexts_held = 0  # primary context retains not yet released
        self.unloaded: list[str] = []

    def cuInit(self, flags):
        return (0,)

    def cuDeviceGet(self, index):
        return 0, index

    def cuDevicePrimaryCtxRetain(self, device):
        self.contexts_held += 1
        return 0, "context"

    def cuDevicePrimaryCtxRelease(self, device):
        self.contexts_held -= 1
        return (0,)

    def cuModuleUnload(self, module):
        self.unloaded.append(module)
        return (0,)

    def cuCtxSetCurrent(self, context):
        return (0,)

    def cuDeviceGetAttribute(self, attribute, device):
        return 0, 9 if attribute == "major" else 0

    def cuModuleLoadData(self, image):
        self.loaded.append(image)
        return (0, "module") if image == self.loadable else (200, None)

    def cuDriverGetVersion(self):
        return 0, 13000

    def cuGetErrorName(self, err):
        return 0, b"CUDA_ERROR_INVALID_IMAGE"

    def cuGetErrorString(self, err):
        return 0, b"device kernel image is invalid"

    def cuModuleGetFunction(self, module, name):
        return 0, name


@pytest.fixture
def fake_cuda(tmp_path, monkeypatch) -> list[bytes]:
    """CudaModule on FakeDriver, with NVRTC stood in for: returns the list of images
    compiled (each compile gives b"compiled kernels"), in order."""
    from engine.cuda import loader

    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path))
    monkeypatch.setattr(loader, "nvrtc_version", lambda: (13, 0))
    monkeypatch.setattr(loader, "supported_architectures", lambda: [80, 90])
    compiled: list[bytes] = []

    def compile_source(source, target, *, name):
        compiled.append(b"compiled kernels")
        return compiled[-1]

    monkeypatch.setattr(loader, "compile_source", compile_source)
    return compiled


def module_on(monkeypatch, driver: FakeDriver):
    from engine.cuda import loader

    monkeypatch.setattr(loader, "_bindings", lambda: (driver, None))
    return loader.CudaModule()


def test_a_cached_image_that_does_not_load_is_compiled_afresh_and_replaced(
    fake_cuda, monkeypatch, caplog
) -> None:
    """Its bytes are the ones recorded (a driver that no longer takes them, say)."""
    cached = module_on(monkeypatch, FakeDriver(loadable=b"compiled kernels")).image_path
    cached.write_bytes(b"stale")
    image_digest_path(cached).write_text(hashlib.sha256(b"stale").hexdigest())
    driver = FakeDriver(loadable=b"compiled kernels")
    module = module_on(monkeypatch, driver)
    assert driver.loaded == [b"stale", b"compiled kernels"] and len(fake_cuda) == 2
    assert "did not load" in caplog.text and "recompiling" in caplog.text
    assert module.image_path == cached and cached.read_bytes() == b"compiled kernels"
    assert image_digest_path(cached).read_text() == hashlib.sha256(b"compiled kernels").hexdigest()


def test_a_damaged_cached_image_is_compiled_afresh_before_it_is_loaded(
    fake_cuda, monkeypatch, caplog
) -> None:
    """Damaged bytes that still load (the driver takes any well-formed image) used to run:
    the sha256 recorded beside the image finds them first."""
    cached = module_on(monkeypatch, FakeDriver(loadable=b"compiled kernels")).image_path
    assert image_digest_path(cached).read_text() == hashlib.sha256(b"compiled kernels").hexdigest()
    cached.write_bytes(b"damaged")
    driver = FakeDriver(loadable=b"compiled kernels")
    module_on(monkeypatch, driver)
    assert driver.loaded == [b"compiled kernels"] and len(fake_cuda) == 2  # never offered
    assert "do not match the sha256 recorded beside them" in caplog.text
    assert cached.read_bytes() == b"compiled kernels"  # replaced


def test_kernels_are_not_cached_in_a_folder_others_may_write(
    fake_cuda, tmp_path, monkeypatch, caplog
) -> None:
    """Kernels planted there would run on the GPU: the folder is neither read nor written."""
    tmp_path.chmod(0o777)  # the cache root (DESMOKE_CACHE)
    module = module_on(monkeypatch, FakeDriver(loadable=b"compiled kernels"))
    module_on(monkeypatch, FakeDriver(loadable=b"compiled kernels"))
    assert len(fake_cuda) == 2 and not module.image_path.exists()
    assert caplog.text.count("is writable by other users (mode 777)") == 1


def test_a_fresh_image_that_does_not_load_is_not_compiled_again(
    fake_cuda, monkeypatch, caplog
) -> None:
    """No cache: the image just compiled fails to load, and compiling it again would fail
    the same way (an NVRTC newer than the driver): the error comes after one compile."""
    driver = FakeDriver(loadable=b"what this driver could load")
    with pytest.raises(CudaError, match="cuModuleLoadData failed: CUDA_ERROR_INVALID_IMAGE"):
        module_on(monkeypatch, driver)
    assert fake_cuda == [b"compiled kernels"] and driver.loaded == fake_cuda
    assert "recompiling" not in caplog.text
    assert driver.contexts_held == 0  # the device's context is released with the error


def test_a_module_closes_once_from_any_thread(fake_cuda, monkeypatch) -> None:
    """Closed on a thread that never used it, the module's context is made current there
    for the unload (a review found a null context set instead)."""
    import threading

    driver = FakeDriver(loadable=b"compiled kernels")
    made_current = []
    driver.cuCtxSetCurrent = lambda context: (made_current.append(context), (0,))[1]
    module = module_on(monkeypatch, driver)
    assert driver.contexts_held == 1
    closer = threading.Thread(target=module.close)
    closer.start()
    closer.join()
    module.close()
    assert made_current[-1] == "context"
    assert driver.contexts_held == 0 and driver.unloaded == ["module"]


def test_cache_key_depends_on_everything_that_changes_the_binary() -> None:
    base = cache_key(b"src", "sm_90", ("-a",), (13, 0))
    assert base == cache_key(b"src", "sm_90", ("-a",), (13, 0))
    assert base != cache_key(b"src2", "sm_90", ("-a",), (13, 0))
    assert base != cache_key(b"src", "sm_80", ("-a",), (13, 0))
    assert base != cache_key(b"src", "sm_90", ("-b",), (13, 0))
    assert base != cache_key(b"src", "sm_90", ("-a",), (12, 8))


def test_target_is_a_cubin_when_known_else_ptx_for_an_older_arch() -> None:
    assert pick_target((9, 0), [80, 90]) == "sm_90"
    assert pick_target((12, 0), [80, 90]) == "compute_90"
    with pytest.raises(CudaError, match="compute capability 7.0"):
        pick_target((7, 0), [80, 90])


def test_grey_coefficients_are_opencvs_on_every_colour() -> None:
    """The kernel's fixed-point grey (15-bit, as in kernels.cu) is cv2's on all 2^24 colours."""
    assert "r * 9798u + g * 19235u + b * 3735u + 16384u) >> 15" in KERNEL_SOURCE.read_text()
    levels = np.arange(256, dtype=np.uint8)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    colours = np.stack([r, g, b], axis=-1).reshape(-1, 1, 3)
    expected = cv2.cvtColor(colours, cv2.COLOR_RGB2GRAY)[:, 0].astype(np.int64)
    r, g, b = (colours[:, 0, i].astype(np.int64) for i in range(3))
    np.testing.assert_array_equal((r * 9798 + g * 19235 + b * 3735 + 16384) >> 15, expected)


JOB_STRUCTS = (K.InputRgbJob, K.InputDarkJob, K.MaskRowsJob, K.MaskColsJob)


def declared_fields(struct: str) -> list[tuple[str, type]]:
    """The fields of `struct Name { ... };` in kernels.cu, as (name, ctypes type)."""
    source = KERNEL_SOURCE.read_text()
    body = source[source.index(f"struct {struct} {{") :].split("};")[0].split("{", 1)[1]
    fields = []
    for line in body.splitlines():
        declaration = line.split("//")[0].strip().rstrip(";").removeprefix("const ")
        if declaration:
            kind, names = declaration.split(" ", 1)
            pointer = kind.endswith("*")
            for name in names.split(","):
                fields.append((name.strip(), ctypes.c_void_p if pointer else ctypes.c_int))
    return fields


@pytest.mark.parametrize("struct", JOB_STRUCTS, ids=lambda s: s.__name__)
def test_job_structs_mirror_the_kernel_source(struct) -> None:
    """A job is one kernel argument whose bytes the driver copies as they are: the ctypes
    mirror must have kernels.cu's fields in its order, with no padding between them."""
    assert [(name, kind) for name, kind in struct._fields_] == declared_fields(struct.__name__)
    offset = 0
    for name, kind in struct._fields_:
        assert getattr(struct, name).offset == offset, name
        offset += ctypes.sizeof(kind)


# -- the kernels on the CPU (host emulation) ------------------------------------------
def run_preprocess(
    module,
    frame,
    work_h,
    work_w,
    *,
    half=False,
    channels_last=False,
    mask_offset=0,
    small_patch=None,
    paired=True,
):
    height, width = frame.shape[:2]
    net = torch.full(
        (1, 4, work_h, work_w), float("nan"), dtype=torch.float16 if half else torch.float32
    )
    if channels_last:
        net = net.contiguous(memory_format=torch.channels_last)
    guide = np.full((work_h, work_w), np.nan, np.float32)
    # The mask sits at an offset inside a larger buffer: unaligned rows take the byte path.
    mask_store = np.full(height * width + mask_offset, 77, np.uint8)
    mask = mask_store[mask_offset:].reshape(height, width)
    pitch = K.scratch_pitch(width)
    scratch = np.full((height, pitch), 99, np.uint8)
    small_patch = small_patch or default_patch_size(work_h, work_w)
    mask_patch = default_patch_size(height, width)
    K.preprocess(
        module,
        0,
        frame=K.Image(frame.ctypes.data, 3 * width),
        height=height,
        width=width,
        net_input=K.Planes(net.data_ptr(), half, tuple(net.stride()[1:])),
        work_h=work_h,
        work_w=work_w,
        small_patch=small_patch,
        guide=guide.ctypes.data,
        mask=K.Image(mask.ctypes.data, width),
        scratch=K.Image(scratch.ctypes.data, pitch),
        mask_patch=mask_patch,
        paired=paired,
    )
    return net[0].float().numpy(), guide, mask.copy(), small_patch, mask_patch


@pytest.mark.parametrize(
    "size,work",
    [((128, 224), (64, 112)), ((300, 420), (64, 96)), ((97, 161), (48, 80)), ((64, 64), (64, 64))],
    ids=["2x", "non-integer", "odd", "same"],
)
@pytest.mark.parametrize(
    "half,channels_last", [(False, False), (True, True)], ids=["fp32", "fp16-cl"]
)
def test_preprocess_matches_the_pipeline(emulated, size, work, half, channels_last) -> None:
    frame = textured(*size, seed=size[0])
    net, guide, mask, small_patch, mask_patch = run_preprocess(
        emulated, frame, *work, half=half, channels_last=channels_last, mask_offset=1
    )
    small = reference_small(frame, *work)
    # Exact area averages rounded once; cv2 rounds a float sum, so exact ties (a half-integer
    # average) may land either way. fp16 keeps a level within 0.13: rounding recovers it.
    rgb = net[:3].transpose(1, 2, 0)
    tolerance = 2.0**-11 if half else 0.0  # fp16 rounding of values in [0, 1]
    assert_close_levels(np.rint(rgb * 255), np.rint(small * 255), max_levels=1, max_fraction=0.01)
    np.testing.assert_allclose(rgb, small, atol=ONE_LEVEL + tolerance, rtol=0)
    np.testing.assert_allclose(net[3], dark_channel(small, small_patch), atol=ONE_LEVEL + tolerance)
    np.testing.assert_allclose(guide, to_gray(small), atol=ONE_LEVEL)
    np.testing.assert_array_equal(mask, dark_channel(frame, mask_patch))


class CountingModule:
    """Passes launches on to a kernel module, counting them."""

    def __init__(self, module) -> None:
        self.module, self.launches = module, []

    def launch(self, name, grid, block, shared, args, stream=0) -> None:
        self.launches.append(name)
        self.module.launch(name, grid, block, shared, args, stream)


def test_paired_jobs_give_what_separate_launches_give(emulated) -> None:
    """The frame path pairs independent jobs in two launches; gpu_check times that plan
    against one launch a job. Both must write every output the same."""
    frame = textured(150, 230, seed=3)
    paired, separate = CountingModule(emulated), CountingModule(emulated)
    together = run_preprocess(paired, frame, 48, 80, mask_offset=1)
    apart = run_preprocess(separate, frame, 48, 80, mask_offset=1, paired=False)
    assert paired.launches == ["pre_pass_one", "pre_pass_two"]
    assert separate.launches == ["pre_pass_one", "pre_pass_two"] * 2
    for a, b in zip(together[:3], apart[:3], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(together[2], dark_channel(frame, together[4]))


def test_a_large_working_patch_takes_narrower_tiles(emulated) -> None:
    """A patch whose halo does not fit 32x8 tiles runs in 16x8 ones: half the block's
    threads then have no output, and every output must still be written."""
    assert K.small_dark_geometry(40)[0] == (16, 8)
    frame = textured(120, 200, seed=8)
    net, *_ = run_preprocess(emulated, frame, 60, 100, small_patch=81)
    small = reference_small(frame, 60, 100)
    np.testing.assert_allclose(net[3], dark_channel(small, 81), atol=ONE_LEVEL)


@pytest.mark.parametrize("patch", [1, 3, 15, 63])
@pytest.mark.parametrize("size", [(70, 90), (33, 61), (1, 5)])
def test_display_mask_is_exact_for_any_patch(emulated, patch, size) -> None:
    check_display_mask(emulated, patch, size, (K.ROW_SEGMENT, K.COL_SEGMENT))


@pytest.mark.parametrize("segments", [(1, 1), (5, 3), (64, 64), (200, 7)])
def test_display_mask_is_exact_for_any_segment_length(emulated, segments) -> None:
    """The segment lengths are a speed knob only (gpu_check sweeps them)."""
    check_display_mask(emulated, 21, (47, 83), segments)


def check_display_mask(module, patch, size, segments) -> None:
    frame = textured(*size, seed=patch)
    height, width = size
    mask = np.full((height, width), 77, np.uint8)
    pitch = K.scratch_pitch(width)
    scratch = np.full((height, pitch), 99, np.uint8)
    K.display_mask(
        module,
        0,
        K.Image(frame.ctypes.data, 3 * width),
        height,
        width,
        K.Image(mask.ctypes.data, width),
        K.Image(scratch.ctypes.data, pitch),
        patch,
        segments,
    )
    np.testing.assert_array_equal(mask, dark_channel(frame, patch))


@pytest.mark.parametrize(
    "size,work", [((40, 60), (64, 96)), ((1, 1), (16, 16)), ((3, 7), (16, 32))]
)
def test_upscaling_is_within_one_level(emulated, size, work) -> None:
    """Enlarging: bilinear in float vs cv2's fixed-point INTER_LINEAR (documented 1 level)."""
    frame = textured(*size, seed=5)
    net, _, mask, small_patch, mask_patch = run_preprocess(emulated, frame, *work)
    small = reference_small(frame, *work)
    np.testing.assert_allclose(net[:3].transpose(1, 2, 0), small, atol=ONE_LEVEL, rtol=0)
    np.testing.assert_array_equal(mask, dark_channel(frame, mask_patch))


def smoke_layer(work_h: int, work_w: int, seed: int, global_colour: bool) -> SmokeLayer:
    rng = np.random.default_rng(seed)
    coarse = rng.random((3, 4)).astype(np.float32) * 0.95
    alpha = cv2.resize(coarse, (work_w // 4, work_h // 4), interpolation=cv2.INTER_CUBIC)
    if global_colour:
        colour = np.array([0.9, 0.85, 0.8], np.float32)
    else:
        colour = rng.uniform(0.6, 1.0, (work_h // 4, work_w // 4, 3)).astype(np.float32)
    return SmokeLayer(np.clip(alpha, 0, 1), colour)


@pytest.mark.parametrize("global_colour", [False, True], ids=["colour-map", "global-colour"])
@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_restore_kernel_matches_engine_restore(emulated, global_colour, strength) -> None:
    height, width, work_h, work_w = 150, 230, 64, 96
    frame = textured(height, width, seed=11)
    small = reference_small(frame, work_h, work_w)
    layer = smoke_layer(work_h, work_w, 4, global_colour)
    expected = restore(frame, layer, to_gray(small), strength=strength)

    # The coefficients as FramePath makes them (torch), in the layout the kernel reads.
    alpha = torch.from_numpy(layer.alpha)[None, None] * np.float32(strength)
    alpha = torch.nn.functional.interpolate(
        alpha, size=(work_h, work_w), mode="bilinear", align_corners=False
    )
    a, b = guided_coefficients(torch.from_numpy(to_gray(small))[None, None], alpha, 2)
    coef = torch.cat([a * (1.0 / 255.0), b], dim=1).contiguous()
    colour = np.ascontiguousarray(
        np.broadcast_to(layer.colour, (1, 1, 3)).transpose(2, 0, 1)
        if global_colour
        else layer.colour.transpose(2, 0, 1)
    )
    composite = np.full((height, 3 * width, 3), 7, np.uint8)  # original | mask | desmoked
    mask = dark_channel(frame, 9)
    row = 3 * 3 * width
    K.restore_smoke_layer(
        emulated,
        0,
        frame=K.Image(frame.ctypes.data, 3 * width),
        height=height,
        width=width,
        coef=coef.data_ptr(),
        coef_h=work_h,
        coef_w=work_w,
        colour=colour.ctypes.data,
        colour_h=colour.shape[1],
        colour_w=colour.shape[2],
        t_min=DEFAULT_T_MIN,
        out=K.Image(composite.ctypes.data + 2 * 3 * width, row),
        panes=K.Panes(
            original=K.Image(composite.ctypes.data, row),
            mask=K.Image(mask.ctypes.data, width),
            mask_pane=K.Image(composite.ctypes.data + 3 * width, row),
        ),
    )
    assert_close_levels(composite[:, 2 * width :], expected, max_levels=1, max_fraction=1e-3)
    np.testing.assert_array_equal(composite[:, :width], frame)
    np.testing.assert_array_equal(composite[:, width : 2 * width], np.repeat(mask[..., None], 3, 2))


@pytest.mark.parametrize("threads", [1, 3, 4])
def test_host_copier_copies_every_row(threads) -> None:
    from engine.backends.frame_path import HostCopier

    copier = HostCopier(threads=threads)
    src = np.random.default_rng(threads).integers(0, 256, (1083, 1931, 3), dtype=np.uint8)
    assert src.nbytes >= HostCopier.MIN_BYTES  # large enough to be split
    dst = np.zeros_like(src)
    copier.copy(dst, src)
    np.testing.assert_array_equal(dst, src)
    fresh = copier.fresh_copy(src[:, :, 1])  # a strided view in, a new array out
    np.testing.assert_array_equal(fresh, src[:, :, 1])
    assert fresh.flags.c_contiguous and not np.shares_memory(fresh, src)


def test_torch_guided_coefficients_match_opencv() -> None:
    rng = np.random.default_rng(2)
    guide = cv2.GaussianBlur(rng.random((40, 70), dtype=np.float32), (0, 0), 2)
    source = cv2.GaussianBlur(rng.random((40, 70), dtype=np.float32), (0, 0), 3)
    a_ref, b_ref = guided_filter_coefficients(guide, source, 3)
    a, b = guided_coefficients(
        torch.from_numpy(guide)[None, None], torch.from_numpy(source)[None, None], 3
    )
    np.testing.assert_allclose(a[0, 0].numpy(), a_ref, atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(b[0, 0].numpy(), b_ref, atol=2e-5, rtol=1e-4)


def test_wrong_argument_count_is_an_error(emulated) -> None:
    with pytest.raises(CudaError, match="wrong number of kernel arguments"):
        emulated.launch("pre_pass_two", (1, 1, 1), (32, 1, 1), 0, [K._int(1)])


# -- the whole frame path, CPU tensors + emulated kernels vs the CPU Desmoker ----------
def trained_like(model: str, tmp_path):
    torch.manual_seed(1)
    arch = {"ngf": 8} if model == "paper" else {}
    network = build_network(model, arch)
    with torch.no_grad():  # away from the initial constant heads
        for p in network.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = save_weights(tmp_path / f"{model}.safetensors", network, default_config(model, arch))
    return network.eval(), path


def frame_path_vs_desmoker(emulated, model, frame, tmp_path, strength=0.8):
    network, weights = trained_like(model, tmp_path)
    desmoker = Desmoker(str(weights), "torch", strength=strength)
    expected = desmoker.process(frame)
    height, width = frame.shape[:2]
    work_h, work_w = desmoker.working_shape_for(height, width)

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            out = network(x)
        return (out,) if isinstance(out, torch.Tensor) else out

    path = FramePath(
        emulated, forward, model=model, device=torch.device("cpu"), input_dtype=torch.float32
    )
    result = path.process(
        frame,
        work_shape=(work_h, work_w),
        small_patch=default_patch_size(work_h, work_w),
        mask_patch=default_patch_size(height, width),
        strength=strength,
        t_min=desmoker.t_min,
    )
    return result, expected


@pytest.mark.parametrize("model", ["fast", "paper"])
def test_frame_path_matches_the_cpu_desmoker(emulated, model, tmp_path) -> None:
    frame = textured(300, 420, seed=8)
    result, expected = frame_path_vs_desmoker(emulated, model, frame, tmp_path)
    np.testing.assert_array_equal(result.dark_channel, expected.dark_channel)
    assert_close_levels(result.desmoked, expected.desmoked, max_levels=1, max_fraction=1e-3)
    assert result.smoke_level == pytest.approx(expected.smoke_level, abs=1e-5)


def test_frame_path_on_real_footage(emulated, data_dir, tmp_path) -> None:
    frame = cv2.cvtColor(
        cv2.imread(str(data_dir / "clear" / "laparoscopic_view_960x540.png")), cv2.COLOR_BGR2RGB
    )
    result, expected = frame_path_vs_desmoker(emulated, "fast", frame, tmp_path, strength=1.0)
    np.testing.assert_array_equal(result.dark_channel, expected.dark_channel)
    assert_close_levels(result.desmoked, expected.desmoked, max_levels=1, max_fraction=1e-3)


class EmulatedFramePathBackend(FramePathBackend):
    """The GPU backends' shared frame path (FramePathBackend) around a CPU network, on the
    kernels' host emulation: what they do around their own network, without a GPU."""

    name = "emulated"

    def __init__(self, network: torch.nn.Module | None, model: str) -> None:
        self.network, self.model = network, model

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        return True, ""

    def load(self, network, config) -> None:
        raise NotImplementedError("built loaded")

    def run(self, x):
        raise NotImplementedError("process_frame only")

    def _new_frame_path(self, kernels) -> FramePath:
        def forward(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            with torch.no_grad():
                out = self.network(x)
            return (out,) if isinstance(out, torch.Tensor) else out

        return FramePath(
            kernels,
            forward,
            model=self.model,
            device=torch.device("cpu"),
            input_dtype=torch.float32,
        )


def frame_options(desmoker: Desmoker, frame: np.ndarray) -> dict:
    """process_frame's options for `frame`, as the Desmoker passes them."""
    height, width = frame.shape[:2]
    work_h, work_w = desmoker.working_shape_for(height, width)
    return dict(
        work_shape=(work_h, work_w),
        small_patch=default_patch_size(work_h, work_w),
        mask_patch=default_patch_size(height, width),
        strength=desmoker.strength,
        t_min=desmoker.t_min,
    )


def test_a_gpu_backend_builds_its_frame_path_once(emulated, tmp_path, monkeypatch) -> None:
    """Backend.process_frame on the GPU backends: the kernels are got on the first frame and
    kept; the frames match the CPU Desmoker's."""
    asked = []

    def kernels(model: str):
        asked.append(model)
        return emulated

    monkeypatch.setattr(frame_path, "cuda_kernels", kernels)
    network, weights = trained_like("fast", tmp_path)
    backend = EmulatedFramePathBackend(network, "fast")
    desmoker = Desmoker(str(weights), "torch")
    for seed in (10, 11):
        frame = textured(300, 420, seed=seed)
        result = backend.process_frame(frame, **frame_options(desmoker, frame))
        expected = desmoker.process(frame)
        np.testing.assert_array_equal(result.dark_channel, expected.dark_channel)
        assert_close_levels(result.desmoked, expected.desmoked, max_levels=1, max_fraction=1e-3)
    assert asked == ["fast"] and backend.frame_path_reason == ""


def test_a_frame_path_that_cannot_be_built_is_tried_once(monkeypatch) -> None:
    """Kernels that do not compile here: each frame is refused with the reason (the
    Desmoker then pre/post-processes on the CPU), without trying again."""
    tried = []

    def no_kernels(model: str):
        tried.append(model)
        raise BackendUnavailable("NVRTC missing")

    monkeypatch.setattr(frame_path, "cuda_kernels", no_kernels)
    backend = EmulatedFramePathBackend(None, "paper")
    frame = textured(48, 64, seed=12)
    for _ in range(2):
        with pytest.raises(BackendUnavailable, match="^fused CUDA kernels unavailable: NVRTC"):
            backend.process_frame(frame, work_shape=(48, 64), small_patch=3, mask_patch=3)
    assert tried == ["paper"] and backend.frame_path() is None
    assert backend.frame_path_reason == "NVRTC missing"


def test_no_fused_kernels_for_a_model_they_do_not_restore() -> None:
    with pytest.raises(BackendUnavailable, match="no fused path for model 'dcp'"):
        cuda_kernels("dcp")


def cpu_frame_path(kernels, network: torch.nn.Module, model: str) -> FramePath:
    """A FramePath around a CPU network on `kernels` (the host emulation, or a wrapper)."""

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            out = network(x)
        return (out,) if isinstance(out, torch.Tensor) else out

    return FramePath(
        kernels, forward, model=model, device=torch.device("cpu"), input_dtype=torch.float32
    )


def test_settings_past_the_kernels_limits_fall_back_to_the_cpu(
    emulated, tmp_path, monkeypatch
) -> None:
    """Working size 512 with patch 61, or 2160 with the default patch, ask the working-
    resolution dark channel for a patch the kernels cannot take (over 99): the frame goes
    through the CPU pre/post-processing with a notice saying why, not a traceback."""
    network, weights = trained_like("fast", tmp_path)
    frame = textured(135, 240, seed=13)
    for working, patch in ((512, 61), (1800, None)):
        counting = CountingModule(emulated)
        monkeypatch.setattr(frame_path, "cuda_kernels", lambda model, k=counting: k)
        backend = EmulatedFramePathBackend(network, "fast")
        options = dict(working_short_side=working, patch_size=patch)
        desmoker = Desmoker(str(weights), "torch", **options)
        desmoker.backend.process_frame = backend.process_frame  # as a GPU backend's
        desmoker._device_frame_path = True
        result = desmoker.process(frame)
        expected = Desmoker(str(weights), "torch", **options).process(frame)
        np.testing.assert_array_equal(result.desmoked, expected.desmoked)
        assert "on the CPU (working-resolution patch" in desmoker.notice
        assert f"limit of {K.MAX_SMALL_PATCH}: a smaller patch size" in desmoker.notice
        assert counting.launches == [] and backend.frame_path()._held is None
        # These settings only: back within the limits, the frame goes to the GPU again.
        desmoker.working_short_side, desmoker.reference_patch = 256, 15
        desmoker.process(frame)
        assert "restore_smoke_layer" in counting.launches and desmoker.notice == ""


def test_kernel_limits_are_refused_before_anything_runs(emulated, tmp_path) -> None:
    network, _ = trained_like("fast", tmp_path)
    counting = CountingModule(emulated)
    path = cpu_frame_path(counting, network, "fast")
    frame = textured(48, 64, seed=14)
    too_large = K.MAX_SMALL_PATCH + 2
    with pytest.raises(BackendUnavailable, match=f"^working-resolution patch {too_large} is"):
        path.process(frame, work_shape=(48, 64), small_patch=too_large, mask_patch=3)
    wide = np.zeros((1, 40_000, 3), np.uint8)  # resize products past the kernels' 32-bit ints
    with pytest.raises(BackendUnavailable, match="^40000x1 frames at a 60000x1 working size"):
        path.process(wide, work_shape=(1, 60_000), small_patch=1, mask_patch=1)
    assert counting.launches == [] and path._held is None
    path.process(frame, work_shape=(48, 64), small_patch=K.MAX_SMALL_PATCH, mask_patch=3)
    assert counting.launches == ["pre_pass_one", "pre_pass_two", "restore_smoke_layer"]


def test_a_failure_on_the_device_is_backend_unavailable_and_frees_the_buffers(emulated) -> None:
    """Any torch error on the device (not only out of memory) ends in BackendUnavailable,
    which the Desmoker turns into its CPU path, and nothing stays held for a path now off."""

    def lost_device(x: torch.Tensor):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    path = FramePath(emulated, lost_device, model="fast", device=torch.device("cpu"))
    frame = textured(48, 64, seed=15)
    with pytest.raises(BackendUnavailable, match="^the GPU frame path failed: CUDA error: an"):
        path.process(frame, work_shape=(48, 64), small_patch=3, mask_patch=3)
    assert path._held is None


class ReplayedWork:
    """A CUDA graph's stand-in on the CPU: replaying runs the device work with the launch
    arguments it was captured with (a graph bakes them in) on the buffers as they are then
    (the strength scalar among them)."""

    def __init__(self, path: FramePath, buffers, launch) -> None:
        self.path, self.buffers, self.launch = path, buffers, launch
        self.replays = self.reset_calls = 0

    def replay(self) -> None:
        self.replays += 1
        self.path._device_work(self.buffers, self.launch)

    def reset(self) -> None:
        self.reset_calls += 1


def graphs_on_the_cpu(path: FramePath, monkeypatch) -> list[ReplayedWork]:
    """Let `path` capture ReplayedWork graphs; returns those captured, in order."""
    captured = []

    def capture(buffers, launch) -> None:
        captured.append(ReplayedWork(path, buffers, launch))
        buffers.graph = captured[-1]

    path.use_graphs = True
    monkeypatch.setattr(path, "_capture", capture)
    return captured


def test_strength_is_read_from_the_device_by_the_captured_graph(
    emulated, tmp_path, monkeypatch
) -> None:
    """The GUI's strength slider on a running Desmoker: `paper`'s graph replays with the
    new strength (no capture, no buffers of its own) and gives what an eager run gives."""
    network, _ = trained_like("paper", tmp_path)
    path = cpu_frame_path(emulated, network, "paper")
    captured = graphs_on_the_cpu(path, monkeypatch)
    frame = textured(48, 64, seed=16)
    options = dict(work_shape=(256, 256), small_patch=15, mask_patch=9)
    for strength in (1.0, 1.0, 0.4):  # eager, eager + capture, replay
        got = path.process(frame, strength=strength, **options)
    assert len(captured) == 1 and captured[0].replays == 1
    eager = cpu_frame_path(emulated, network, "paper").process(frame, strength=0.4, **options)
    np.testing.assert_array_equal(got.desmoked, eager.desmoked)


def test_moving_the_sliders_holds_one_buffer_set(emulated, tmp_path, monkeypatch) -> None:
    """New patches are captured again once settled, on the same buffers; a new working
    size frees the old one's buffers and graph."""
    network, _ = trained_like("fast", tmp_path)
    path = cpu_frame_path(emulated, network, "fast")
    captured = graphs_on_the_cpu(path, monkeypatch)
    frame = textured(48, 64, seed=16)
    options = dict(work_shape=(32, 48), small_patch=15, mask_patch=9)
    for strength in (1.0, 1.0, 0.5, 0.0):
        path.process(frame, strength=strength, **options)
    held = path._held
    for patch, t_min in ((3, 0.1), (5, 0.1), (5, 0.1), (5, 0.2), (5, 0.2), (5, 0.2)):
        path.process(frame, t_min=t_min, **{**options, "small_patch": patch})
    launches = [(g.launch.small_patch, g.launch.t_min) for g in captured]
    assert launches == [(15, 0.1), (5, 0.1), (5, 0.2)]
    assert path._held is held
    graph = held.graph
    path.process(frame, **{**options, "work_shape": (48, 64)})
    assert path._held is not held and held.graph is None and graph.reset_calls == 1


def test_out_of_memory_frees_everything_held_then_tries_once_more(
    emulated, tmp_path, monkeypatch
) -> None:
    network, _ = trained_like("fast", tmp_path)
    path = cpu_frame_path(emulated, network, "fast")
    frame = textured(48, 64, seed=17)
    options = dict(work_shape=(48, 64), small_patch=3, mask_patch=3)
    expected = path.process(frame, **options).desmoked
    held, forward, failures = path._held, path.network, [1]

    def short_of_memory(x: torch.Tensor):
        if failures:
            failures.pop()
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(x)

    path.network = short_of_memory
    np.testing.assert_array_equal(path.process(frame, **options).desmoked, expected)
    assert path._held is not held  # freed, then allocated afresh for the retry
    failures[:] = [1, 1]
    with pytest.raises(BackendUnavailable, match="^out of GPU memory for 64x48 frames"):
        path.process(frame, **options)
    assert path._held is None


def test_graphs_are_captured_in_thread_local_mode(monkeypatch) -> None:
    """Another thread's Desmoker (the export worker) may allocate on its own stream while
    this one captures: "global" mode would fail its calls and this capture."""
    from contextlib import contextmanager
    from types import SimpleNamespace

    from engine.backends.torch_cuda import TorchCudaBackend, _Static

    modes = []

    @contextmanager
    def graph(cuda_graph, **options):
        modes.append(options["capture_error_mode"])
        yield

    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: "graph")
    monkeypatch.setattr(torch.cuda, "graph", graph)
    path = FramePath(CountingModule(None), lambda x: (), model="fast", device="cpu")
    monkeypatch.setattr(path, "_device_work", lambda buffers, launch: None)
    buffers = SimpleNamespace(graph=None, graph_failed=False)
    path._capture(buffers, None)
    backend = TorchCudaBackend()
    monkeypatch.setattr(backend, "_static_work", lambda s: None)
    static = _Static(input=torch.zeros(1), host_input=torch.zeros(1), runs=1)
    backend._run_static(static)
    assert modes == ["thread_local", "thread_local"]
    assert buffers.graph == static.graph == "graph"


def test_the_torch_cuda_backend_holds_one_input_shape(monkeypatch) -> None:
    """`run` at a new working size frees the previous size's buffers and graph."""
    from engine.backends.torch_cuda import TorchCudaBackend, _Static

    backend = TorchCudaBackend()
    backend.network = torch.nn.Identity()
    made = []

    def new_static(shape):  # CPU tensors standing in for the device and pinned ones
        made.append(shape)
        return _Static(input=torch.zeros(shape), host_input=torch.zeros(shape))

    def run_static(s) -> None:
        s.outputs = s.host_outputs = (s.input.clone(),)

    monkeypatch.setattr(backend, "_new_static", new_static)
    monkeypatch.setattr(backend, "_run_static", run_static)
    monkeypatch.setattr(backend, "stream", SimpleStream())
    for height in (32, 48, 32):
        x = np.full((1, 4, height, 64), 0.5, np.float32)
        (out,) = backend.run(x)
        np.testing.assert_array_equal(out, x)
        assert list(backend._static) == [x.shape]
    assert len(made) == 3


class SimpleStream:
    """A stream's stand-in where CUDA is absent (torch.cuda.stream ignores it then)."""

    def synchronize(self) -> None:
        pass


# -- on a GPU -------------------------------------------------------------------------
def _gpu_reason() -> str:
    if not torch.cuda.is_available():
        return "no CUDA device visible to torch"
    if not NVRTC_OK:
        return f"NVRTC not usable: {NVRTC_REASON}"
    return ""


gpu = pytest.mark.skipif(bool(_gpu_reason()), reason=_gpu_reason() or "GPU present")


@pytest.mark.gpu
@gpu
def test_gpu_preprocess_and_restore_match_the_reference(tmp_path, monkeypatch) -> None:
    from engine.cuda.loader import CudaModule

    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path))
    module = CudaModule(torch.cuda.current_device())  # FramePath launches on torch's stream
    frame = textured(720, 1280, seed=3)
    network, _ = trained_like("fast", tmp_path)
    network = network.cuda()

    def forward(x):
        with torch.no_grad():
            return network(x.float())

    path = FramePath(
        module,
        forward,
        model="fast",
        device=torch.device("cuda"),
        input_dtype=torch.float32,
        channels_last=False,
    )
    result = path.process(
        frame, work_shape=(256, 448), small_patch=15, mask_patch=default_patch_size(720, 1280)
    )
    np.testing.assert_array_equal(result.dark_channel, dark_channel(frame, 43))
    assert result.desmoked.shape == frame.shape


@pytest.mark.gpu
@gpu
def test_gpu_frame_path_matches_the_cpu_desmoker(tmp_path, monkeypatch) -> None:
    from engine.backends.torch_cuda import TorchCudaBackend

    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path))
    network, weights = trained_like("fast", tmp_path)
    desmoker = Desmoker(str(weights), "torch")
    backend = TorchCudaBackend()
    backend.load(network, {"model": "fast"})
    work_h, work_w = desmoker.working_shape_for(540, 960)
    # Eager, eager, then the CUDA graph; a new frame each time, so that a mask or network
    # input computed before the frame's upload landed (the previous frame's) would show.
    for seed in (4, 5, 6, 7):
        frame = textured(540, 960, seed=seed)
        expected = desmoker.process(frame)
        result = backend.process_frame(
            frame,
            work_shape=(work_h, work_w),
            small_patch=default_patch_size(work_h, work_w),
            mask_patch=default_patch_size(540, 960),
            strength=1.0,
            t_min=desmoker.t_min,
        )
        np.testing.assert_array_equal(result.dark_channel, expected.dark_channel)
        # fp16 network: alpha differs by ~1e-3, a few levels where the smoke is dense.
        assert np.abs(result.desmoked.astype(int) - expected.desmoked).mean() < 0.5
