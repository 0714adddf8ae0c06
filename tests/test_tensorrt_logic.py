"""TensorRT path without TensorRT: the ONNX build-engine consumes, shapes, precision, the
sidecar checks and engine lookup, the CLI's messages, and `auto` never picking it here.

TensorRT itself cannot be installed on these machines: the build and the backend's
engine calls have not run on hardware (benchmarks/gpu_check.py runs them where it can).
"""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from desmoke_app.cli import main
from engine.backends import backend_status, select_backend
from engine.backends.base import BackendUnavailable
from engine.backends.tensorrt_backend import (
    TensorRTBackend,
    find_engine,
    read_sidecar,
    shape_fits,
    sidecar_path,
    sidecar_problems,
)
from engine.models import build_network, default_config, save_weights, weights_digest
from engine.models.onnx_export import exported_onnx
from training.build_engine import (
    BuildError,
    build_serialized,
    make_sidecar,
    onnx_info,
    parse_shape,
    precision_plan,
    profile_shapes,
)

try:
    import tensorrt  # noqa: F401

    HAVE_TENSORRT = True
except ImportError:
    HAVE_TENSORRT = False


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DESMOKE_TRT_ENGINE", raising=False)


@pytest.fixture(scope="module")
def fast_network() -> torch.nn.Module:
    torch.manual_seed(0)
    network = build_network("fast")
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return network.eval()


# -- the ONNX that build-engine consumes ----------------------------------------------
@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
def test_onnx_for_the_engine_is_valid_and_matches_torch(fast_network, fp16, tmp_path) -> None:
    """What build-engine exports from .safetensors (fp16 for TensorRT 11) passes onnx's
    checker, declares the I/O types a strongly typed build takes, and computes the model."""
    model = exported_onnx(fast_network, fp16=fp16)
    onnx.checker.check_model(onnx.load_from_string(model), full_check=True)
    info = onnx_info(model, "model.onnx")
    assert info.input_dtype == ("float16" if fp16 else "float32")
    assert info.output_names == ("alpha", "colour") and info.channels == 4
    x = np.random.default_rng(0).random((1, 4, 64, 112), dtype=np.float32)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {info.input_name: x.astype(np.float16 if fp16 else np.float32)})
    with torch.no_grad():
        expected = fast_network(torch.from_numpy(x))
    for got, want in zip(outputs, expected, strict=True):
        assert got.dtype == (np.float16 if fp16 else np.float32)
        np.testing.assert_allclose(
            got.astype(np.float32), want.numpy(), atol=2e-3 if fp16 else 1e-4
        )


def test_onnx_info_rejects_what_the_backend_cannot_run(tmp_path) -> None:
    with pytest.raises(BuildError, match="^bad.onnx: not a valid ONNX model"):
        onnx_info(b"not an onnx file", "bad.onnx")
    three = torch.nn.Conv2d(3, 1, 1).eval()
    three.output_names = ("y",)
    path = tmp_path / "three.onnx"
    with warnings.catch_warnings():  # the legacy exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(
            three,
            (torch.rand(1, 3, 8, 8),),
            str(path),
            input_names=["input"],
            output_names=["y"],
            dynamo=False,
        )
    with pytest.raises(BuildError, match="Nx4xHxW"):
        onnx_info(path.read_bytes(), str(path))


# -- shapes and precision -------------------------------------------------------------
def test_parse_shape() -> None:
    assert parse_shape("256x448") == (256, 448)
    assert parse_shape(" 256 X 448 ") == (256, 448)
    for text in ("256", "256x", "0x448", "axb", ""):
        with pytest.raises(BuildError, match="HEIGHTxWIDTH"):
            parse_shape(text)


def test_profile_shapes_fixed_and_default() -> None:
    fixed = profile_shapes((256, 448))
    assert fixed["min"] == fixed["opt"] == fixed["max"] == (1, 4, 256, 448)
    with pytest.raises(BuildError, match="multiple of the network's stride 16"):
        profile_shapes((250, 448))
    default = profile_shapes(None)
    assert default["min"] <= default["opt"] <= default["max"]
    for dims in default.values():
        assert dims[2] % 16 == 0 and dims[3] % 16 == 0
    paper = profile_shapes(None, stride=256)
    assert all(d[2] % 256 == 0 and d[3] % 256 == 0 for d in paper.values())


def test_precision_plan_for_tensorrt_10_and_11() -> None:
    assert precision_plan(10, "float32", True) == (False, True, "fp16")  # the FP16 flag
    assert precision_plan(10, "float32", False) == (False, False, "fp32")
    assert precision_plan(10, "float16", False) == (True, False, "fp16")
    assert precision_plan(11, "float16", True) == (True, False, "fp16")  # from the ONNX
    assert precision_plan(11, "float32", False) == (True, False, "fp32")
    with pytest.raises(BuildError, match="TensorRT 11 takes precision from the ONNX"):
        precision_plan(11, "float32", True)


# -- the builder calls, against a stand-in for the tensorrt module ---------------------
class FakeTrt:
    """Records build_serialized's TensorRT calls; signatures as in TensorRT's pybind code."""

    class Logger:
        WARNING = "warning"

        def __init__(self, severity):
            pass

    NetworkDefinitionCreationFlag = type("Flags", (), {"STRONGLY_TYPED": 0})
    MemoryPoolType = type("Pools", (), {"WORKSPACE": "workspace"})
    BuilderFlag = type("BuilderFlags", (), {"FP16": "fp16"})

    def __init__(self, *, parses=True, cache_fits=True, builds=True):
        self.calls: list[tuple] = []
        fake = self

        class Cache:
            def serialize(self):
                return b"timings"

        class Config:
            def set_memory_pool_limit(self, pool, pool_size):
                fake.calls.append(("pool", pool, pool_size))

            def set_flag(self, flag):
                fake.calls.append(("flag", flag))

            def create_timing_cache(self, serialized_timing_cache):
                return Cache()

            def set_timing_cache(self, cache, ignore_mismatch):
                return cache_fits

            def add_optimization_profile(self, profile):
                return 0

        class Profile:
            def set_shape(self, input, min, opt, max):  # TensorRT's parameter names
                fake.calls.append(("profile", input, min, opt, max))

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags=0):
                fake.calls.append(("network", flags))
                return "network"

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                fake.calls.append(("build",))
                return b"plan" if builds else None

        class OnnxParser:
            num_errors = 0 if parses else 1

            def __init__(self, network, logger):
                pass

            def parse(self, model, path=None):
                return parses

            def get_error(self, index):
                return "In node 3: unsupported"

        self.Builder, self.OnnxParser = Builder, OnnxParser


def test_build_serialized_drives_the_builder() -> None:
    shapes = profile_shapes((256, 448))
    trt = FakeTrt()
    kwargs = dict(input_name="input", shapes=shapes, timing_cache=b"")
    assert build_serialized(trt, b"onnx", strongly_typed=True, fp16_flag=False, **kwargs) == (
        b"plan",
        b"timings",
    )
    assert ("network", 1) in trt.calls and not [c for c in trt.calls if c[0] == "flag"]
    assert ("profile", "input", shapes["min"], shapes["opt"], shapes["max"]) in trt.calls
    trt = FakeTrt()
    build_serialized(trt, b"onnx", strongly_typed=False, fp16_flag=True, **kwargs)
    assert ("network", 0) in trt.calls and ("flag", "fp16") in trt.calls
    with pytest.raises(BuildError, match="ONNX parser rejected the model: In node 3"):
        build_serialized(
            FakeTrt(parses=False), b"onnx", strongly_typed=True, fp16_flag=False, **kwargs
        )
    with pytest.raises(BuildError, match="could not build"):
        build_serialized(
            FakeTrt(builds=False), b"onnx", strongly_typed=True, fp16_flag=False, **kwargs
        )
    trt = FakeTrt(cache_fits=False)  # a cache from another GPU: refused before the build
    with pytest.raises(BuildError, match="cannot use this timing cache"):
        build_serialized(trt, b"onnx", strongly_typed=True, fp16_flag=False, **kwargs)
    assert ("build",) not in trt.calls


def fake_tensorrt(monkeypatch, **behaviour) -> FakeTrt:
    """build_engine's TensorRT and GPU replaced by stand-ins: TensorRT 10 on an H100."""
    import training.build_engine as build

    trt = FakeTrt(**behaviour)
    trt.__version__ = "10.13.0"
    monkeypatch.setattr(build, "import_tensorrt", lambda: trt)
    gpu = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0]}
    monkeypatch.setattr(build, "gpu_identity", lambda: gpu)
    return trt


def test_build_engine_writes_the_engine_and_its_sidecar_as_a_pair(
    fast_network, tmp_path, monkeypatch
) -> None:
    """From .safetensors (exported to fp16 ONNX in memory: no ONNX file is written) to an
    engine and the sidecar the backend checks; a build that fails keeps the pair there."""
    from training.build_engine import build_engine

    trt = fake_tensorrt(monkeypatch)
    weights = save_weights(tmp_path / "w.safetensors", fast_network, default_config("fast"))
    out = tmp_path / "engines" / "fast.engine"
    path, sidecar = build_engine(weights, out, fp16=True, shape=(256, 448))
    assert path == out and out.read_bytes() == b"plan"
    assert read_sidecar(out) == sidecar
    assert sidecar["weights_digest"] == weights_digest(fast_network)
    assert sidecar["inputs"]["input"]["dtype"] == "float16" and sidecar["strongly_typed"]
    assert ("network", 1) in trt.calls  # an fp16 ONNX: a strongly typed network
    assert sorted(p.name for p in out.parent.iterdir()) == ["fast.engine", "fast.engine.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engines", "w.json", "w.safetensors"]

    fake_tensorrt(monkeypatch, builds=False)
    with pytest.raises(BuildError, match="could not build"):
        build_engine(weights, out, fp16=True, shape=(256, 448))
    assert out.read_bytes() == b"plan" and read_sidecar(out) == sidecar
    assert sorted(p.name for p in out.parent.iterdir()) == ["fast.engine", "fast.engine.json"]


def test_an_onnx_build_without_an_output_is_refused_before_building(tmp_path, monkeypatch) -> None:
    """An ONNX file says nothing of its weights, so the engine has no name to default to:
    that is said at once, not after the minutes TensorRT spends building."""
    from training.build_engine import build_engine

    trt = fake_tensorrt(monkeypatch)
    onnx = tmp_path / "fast.onnx"
    onnx.write_bytes(b"not read: refused before")
    with pytest.raises(BuildError, match="give -o ENGINE"):
        build_engine(onnx)
    assert ("build",) not in trt.calls


def test_an_exported_onnx_builds_an_engine_the_backend_takes(
    fast_network, tmp_path, monkeypatch
) -> None:
    """The README's `desmoke build-engine fast.onnx -o fast.engine`: the export records its
    weights, so the engine's sidecar names them and the backend's checks pass."""
    from training.build_engine import build_engine

    fake_tensorrt(monkeypatch)
    onnx_path = tmp_path / "fast.onnx"
    onnx_path.write_bytes(exported_onnx(fast_network, fp16=True))
    _, sidecar = build_engine(onnx_path, tmp_path / "fast.engine", fp16=True)
    digest = weights_digest(fast_network)
    assert sidecar["weights_digest"] == digest and sidecar["model"] == "fast"
    here = dict(tensorrt_version="10.13.0", capability=(9, 0), output_names=("alpha", "colour"))
    assert sidecar_problems(sidecar, weights_digest=digest, **here) == []


def without_provenance(model: bytes) -> bytes:
    """An ONNX as another tool (or an older desmoke) writes it: no desmoke metadata."""
    proto = onnx.load_from_string(model)
    del proto.metadata_props[:]
    return proto.SerializeToString()


def test_an_onnx_naming_no_weights_is_refused_before_building(
    fast_network, tmp_path, monkeypatch, capsys
) -> None:
    """No engine the backend would always refuse: without recorded weights an ONNX needs
    --weights (said in one line, before TensorRT builds), and those must be its own."""
    from training.build_engine import build_engine

    trt = fake_tensorrt(monkeypatch)
    onnx_path = tmp_path / "other.onnx"
    onnx_path.write_bytes(without_provenance(exported_onnx(fast_network)))
    engine = tmp_path / "other.engine"
    assert main(["build-engine", str(onnx_path), "-o", str(engine)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"desmoke: error: {onnx_path}: names no weights") and "\n" not in err
    assert "--weights" in err and ("build",) not in trt.calls and not engine.exists()

    weights = save_weights(tmp_path / "w.safetensors", fast_network, default_config("fast"))
    _, sidecar = build_engine(onnx_path, engine, weights=weights)
    assert sidecar["weights_digest"] == weights_digest(fast_network)

    stranger = save_weights(
        tmp_path / "x.safetensors", build_network("fast"), default_config("fast")
    )
    onnx_path.write_bytes(exported_onnx(fast_network))  # records fast_network's weights
    with pytest.raises(BuildError, match=f"exported from other weights than {stranger}"):
        build_engine(onnx_path, engine, weights=stranger)


def test_a_paper_engine_takes_the_paper_strides(tmp_path, monkeypatch) -> None:
    """The paper U-Net's inputs are multiples of 256: the profile of an engine built from
    its ONNX alone, and a --shape, follow the stride the export records."""
    from training.build_engine import build_engine

    trt = fake_tensorrt(monkeypatch)
    onnx_path = tmp_path / "paper.onnx"
    onnx_path.write_bytes(exported_onnx(build_network("paper", {"ngf": 4})))
    _, sidecar = build_engine(onnx_path, tmp_path / "paper.engine")
    for dims in (sidecar["inputs"]["input"][k] for k in ("min", "opt", "max")):
        assert dims[2] % 256 == 0 and dims[3] % 256 == 0, dims
    trt.calls.clear()
    with pytest.raises(
        BuildError,
        match=r"256x448 must be a multiple of the network's stride 256 \(e\.g\. 256x512\)",
    ):
        build_engine(onnx_path, tmp_path / "paper.engine", shape=(256, 448))
    assert ("build",) not in trt.calls


class FakeContext:
    """The execution context calls run_device makes, answering the input's shape back."""

    def __init__(self) -> None:
        self.shape = None

    def set_input_shape(self, name, shape):
        self.shape = shape
        return True

    def get_tensor_shape(self, name):
        return self.shape

    def set_tensor_address(self, name, address):
        pass

    def execute_async_v3(self, stream_handle):
        return True


def loaded_backend(tmp_path) -> TensorRTBackend:
    """A TensorRTBackend as load() leaves it, on a fake context and a profile engine."""
    backend = TensorRTBackend()
    backend.sidecar = read_sidecar(write_engine(tmp_path, "profile", shape=None))
    backend._context, backend.input_names = FakeContext(), ["input"]
    backend.output_names = ("alpha",)
    backend.dtypes = {"input": torch.float32, "alpha": torch.float32}
    return backend


def test_the_backend_holds_the_outputs_of_one_shape(tmp_path, monkeypatch) -> None:
    backend = loaded_backend(tmp_path)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: SimpleNamespace(cuda_stream=0))
    for width in (448, 512, 448):
        backend.run_device(torch.zeros(1, 4, 256, width))
        assert list(backend._outputs) == [(1, 4, 256, width)]


def test_run_turns_a_gpu_failure_into_backend_unavailable(tmp_path, monkeypatch) -> None:
    """Out of memory putting the input on the GPU (or any torch error there): the pipeline
    moves to the next backend, as with torch-cuda."""
    backend = loaded_backend(tmp_path)

    def out_of_memory(tensor, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB")

    monkeypatch.setattr(torch.Tensor, "to", out_of_memory)
    with pytest.raises(BackendUnavailable, match="^the engine failed on the GPU: CUDA out of"):
        backend.run(np.zeros((1, 4, 256, 448), np.float32))


# -- the sidecar ----------------------------------------------------------------------
def write_engine(folder, name, *, version="10.13.0", cc=(9, 0), digest="abc", shape=(256, 448)):
    """A fake engine file with a real sidecar (the logic under test never reads the engine)."""
    engine = folder / f"{name}.engine"
    folder.mkdir(parents=True, exist_ok=True)
    engine.write_bytes(b"engine bytes")
    info = type(
        "Info",
        (),
        {
            "input_name": "input",
            "input_dtype": "float16",
            "output_names": ("alpha", "colour"),
            "sha256": "00",
        },
    )
    sidecar = make_sidecar(
        info=info,
        shapes=profile_shapes(shape),
        tensorrt_version=version,
        gpu={"name": "NVIDIA H100 80GB HBM3", "compute_capability": list(cc)},
        precision="fp16",
        strongly_typed=True,
        engine_sha256="ff",
        weights_digest=digest,
        model="fast",
    )
    sidecar_path(engine).write_text(json.dumps(sidecar))
    return engine


def test_sidecar_round_trip_and_checks(tmp_path) -> None:
    engine = write_engine(tmp_path, "a")
    sidecar = read_sidecar(engine)
    ok = {
        "tensorrt_version": "10.13.0",
        "capability": (9, 0),
        "weights_digest": "abc",
        "output_names": ("alpha", "colour"),
    }
    assert sidecar_problems(sidecar, **ok) == []
    assert (
        "running 10.14.1" in sidecar_problems(sidecar, **{**ok, "tensorrt_version": "10.14.1"})[0]
    )
    assert "this GPU is 8.9" in sidecar_problems(sidecar, **{**ok, "capability": (8, 9)})[0]
    assert sidecar_problems(sidecar, **{**ok, "weights_digest": "zzz"}) == [
        "built from other weights"
    ]
    assert "outputs" in sidecar_problems(sidecar, **{**ok, "output_names": ("restored",)})[0]


def test_unreadable_or_missing_sidecar_is_a_clear_reason(tmp_path) -> None:
    with pytest.raises(BackendUnavailable, match="engine not found"):
        read_sidecar(tmp_path / "none.engine")
    engine = tmp_path / "lonely.engine"
    engine.write_bytes(b"x")
    with pytest.raises(BackendUnavailable, match="no sidecar lonely.engine.json"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("{broken")
    with pytest.raises(BackendUnavailable, match="unreadable engine sidecar"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({"format": 1}))
    with pytest.raises(BackendUnavailable, match="not a desmoke engine sidecar"):
        read_sidecar(engine)


def test_shape_fits_the_profile(tmp_path) -> None:
    fixed = read_sidecar(write_engine(tmp_path, "fixed"))
    assert shape_fits(fixed, (1, 4, 256, 448))
    assert not shape_fits(fixed, (1, 4, 256, 464))
    profile = read_sidecar(write_engine(tmp_path, "profile", shape=None))
    assert shape_fits(profile, (1, 4, 256, 352)) and not shape_fits(profile, (1, 4, 2048, 2048))


def test_find_engine_picks_the_one_that_fits(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "cache" / "tensorrt"
    write_engine(folder, "1-old-trt", version="10.0.0")
    write_engine(folder, "2-other-gpu", cc=(8, 6))
    write_engine(folder, "3-other-weights", digest="zzz")
    good = write_engine(folder, "4-good")
    assert find_engine("abc", "10.13.0", (9, 0)) == good
    with pytest.raises(BackendUnavailable, match=r"no TensorRT engine.*built with TensorRT"):
        find_engine("abc", "10.14.0", (9, 0))
    monkeypatch.setenv("DESMOKE_TRT_ENGINE", str(tmp_path / "mine.engine"))
    assert find_engine("abc", "10.13.0", (9, 0)) == tmp_path / "mine.engine"


# -- without TensorRT / a GPU ---------------------------------------------------------
@pytest.mark.skipif(HAVE_TENSORRT and torch.cuda.is_available(), reason="TensorRT can run here")
def test_backend_unavailable_with_a_reason_and_auto_passes_it_over() -> None:
    available, reason = TensorRTBackend.is_available()
    assert not available and reason
    assert backend_status("tensorrt") == (False, reason)
    backend, why = select_backend("auto")
    assert backend.name not in ("tensorrt", "torch-cuda") or torch.cuda.is_available()
    assert "tensorrt (" in why  # auto says why it passed TensorRT over
    with pytest.raises(BackendUnavailable):
        TensorRTBackend().load(build_network("fast"), default_config("fast"))


@pytest.mark.skipif(HAVE_TENSORRT, reason="TensorRT is installed")
def test_build_engine_cli_without_tensorrt_fails_cleanly(fast_network, tmp_path, capsys) -> None:
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(exported_onnx(fast_network))
    engine = tmp_path / "m.engine"
    assert main(["build-engine", str(onnx_path), "-o", str(engine), "--fp16"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("desmoke: error: TensorRT is not installed") and "\n" not in err
    assert not engine.exists() and not sidecar_path(engine).exists()
    assert list(tmp_path.iterdir()) == [onnx_path]  # nothing partial left behind


def test_build_engine_cli_bad_input(tmp_path, capsys) -> None:
    assert main(["build-engine", str(tmp_path / "missing.onnx"), "-o", "x.engine"]) == 1
    assert "missing.onnx: file not found" in capsys.readouterr().err
    text = tmp_path / "model.txt"
    text.write_text("x")
    assert main(["build-engine", str(text)]) == 1
    assert "expected an .onnx or .safetensors file" in capsys.readouterr().err
    assert main(["build-engine", str(text), "--shape", "big"]) == 1
    assert "HEIGHTxWIDTH" in capsys.readouterr().err


def test_weights_digest_identifies_the_weights(fast_network, tmp_path) -> None:
    """The key an engine's sidecar records and the backend looks up."""
    path = save_weights(tmp_path / "w.safetensors", fast_network, default_config("fast"))
    from engine.models import load_network

    reloaded, _ = load_network(path)
    assert weights_digest(reloaded) == weights_digest(fast_network)
    assert weights_digest(build_network("fast")) != weights_digest(fast_network)
