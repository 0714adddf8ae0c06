"""Backends: one interface, auto selection, torch and onnxruntime agree."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.backends import (
    BACKENDS,
    BackendUnavailable,
    backend_status,
    onnxruntime_backend,
    select_backend,
)
from engine.models import build_network, default_config
from engine.models.onnx_export import exported_onnx
from engine.models.paper_unet import PaperDesmoker


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))


def available_backends() -> list[str]:
    return [name for name in BACKENDS if backend_status(name)[0]]


def test_cpu_backends_are_available_and_gpu_ones_explain_why_not() -> None:
    names = available_backends()
    assert "torch" in names and "onnxruntime" in names
    for name in ("tensorrt", "torch-cuda"):
        available, reason = backend_status(name)
        if not available:
            assert reason  # a one-line reason, never an exception


def test_auto_reports_its_choice() -> None:
    backend, reason = select_backend("auto")
    assert backend.name in available_backends()
    assert reason.startswith(f"auto chose {backend.name}")


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(BackendUnavailable, match="unknown backend 'cuda9'"):
        select_backend("cuda9")


@pytest.mark.parametrize(
    "network,config",
    [
        (build_network("fast"), default_config("fast")),
        (PaperDesmoker(ngf=8), default_config("paper", {"ngf": 8})),
    ],
    ids=["fast", "paper"],
)
def test_torch_and_onnxruntime_agree(network, config) -> None:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    with torch.no_grad():  # move away from the initial constant heads
        for p in network.parameters():
            p.add_(0.02 * torch.randn_like(p))
    network.eval()
    torch_backend, _ = select_backend("torch")
    ort_backend, _ = select_backend("onnxruntime")
    torch_backend.load(network, config)
    ort_backend.load(network, config)
    for shape in (
        [(256, 256), (256, 512)] if config["model"] == "paper" else [(64, 112), (256, 448)]
    ):
        x = rng.random((1, 4, *shape), dtype=np.float32)
        for a, b in zip(torch_backend.run(x), ort_backend.run(x), strict=True):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def fast_network():
    torch.manual_seed(0)  # one network for the whole module: its export is cached by weights
    return build_network("fast")


def loaded_onnxruntime(network):
    backend, _ = select_backend("onnxruntime")
    backend.load(network, default_config("fast"))
    return backend


def max_difference_from_torch(backend, network) -> float:
    """The largest difference of `backend`'s outputs from the torch backend's, on noise."""
    reference, _ = select_backend("torch")
    reference.load(network, default_config("fast"))
    x = np.random.default_rng(0).random((1, 4, 64, 112), dtype=np.float32)
    return max(
        float(np.abs(a - b).max()) for a, b in zip(reference.run(x), backend.run(x), strict=True)
    )


def assert_agrees_with_torch(backend, network) -> None:
    assert max_difference_from_torch(backend, network) <= 1e-4


UNWRITABLE_CACHES = {
    "a file where the folder goes": lambda tmp_path: tmp_path / "file",
    "under /proc": lambda tmp_path: Path("/proc/desmoke"),
}


@pytest.mark.parametrize("where", UNWRITABLE_CACHES)
def test_an_unwritable_cache_still_runs_onnxruntime(
    where, fast_network, tmp_path, monkeypatch, caplog
) -> None:
    """A read-only home or a full disk costs the cache, not the faster backend."""
    cache = UNWRITABLE_CACHES[where](tmp_path)
    if where == "under /proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("DESMOKE_CACHE", str(cache))
    with caplog.at_level(logging.WARNING):
        backend = loaded_onnxruntime(fast_network)
    assert backend.onnx_path is None
    assert f"not using the cache folder {cache / 'onnx'}: " in caplog.text
    assert "cannot be made" in caplog.text
    assert_agrees_with_torch(backend, fast_network)


def test_a_corrupt_cached_export_is_exported_again_and_replaced(
    fast_network, tmp_path, caplog
) -> None:
    cached = loaded_onnxruntime(fast_network).onnx_path
    assert cached is not None and cached.parent == tmp_path / "cache" / "onnx"
    cached.write_bytes(b"half an onnx file")
    with caplog.at_level(logging.WARNING):
        backend = loaded_onnxruntime(fast_network)
    assert "did not load" in caplog.text and "exporting the network again" in caplog.text
    assert backend.onnx_path == cached
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temporary left
    onnxruntime_backend.new_session(cached.read_bytes())  # the file now loads
    assert_agrees_with_torch(backend, fast_network)


def test_the_export_needs_no_file_anywhere(fast_network, tmp_path, monkeypatch) -> None:
    """With neither the cache nor the temporary folder writable, the export still runs
    onnxruntime: it goes to the session as bytes, through no file."""
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "file"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no such folder"))
    backend = loaded_onnxruntime(fast_network)
    assert backend.onnx_path is None
    assert_agrees_with_torch(backend, fast_network)


def test_an_onnxruntime_error_is_backend_unavailable(fast_network) -> None:
    """onnxruntime's own exceptions (here: an input its session does not take) used to
    reach the caller as they were, past the pipeline's fallback."""
    backend = loaded_onnxruntime(fast_network)
    backend.session = onnxruntime_backend.new_session(exported_onnx(fast_network, fp16=True))
    x = np.zeros((1, 4, 64, 112), np.float32)
    with pytest.raises(BackendUnavailable, match=r"^onnxruntime cannot run the network \(.*float"):
        backend.run(x)


def test_an_onnxruntime_error_mid_run_hands_over_to_the_next_backend(fast_network) -> None:
    """The app said "processing frame 0 failed: [ONNXRuntimeError] ..." for every frame:
    the next backend takes over and the notice says so."""
    from engine.pipeline import Desmoker

    desmoker = Desmoker("fast", "onnxruntime")
    desmoker.backend.session = onnxruntime_backend.new_session(
        exported_onnx(fast_network, fp16=True)
    )
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    result = desmoker.process(frame)
    now = desmoker.backend_name
    assert now != "onnxruntime"
    expected = Desmoker("fast", now).process(frame)
    np.testing.assert_array_equal(result.desmoked, expected.desmoked)
    assert desmoker.notice.startswith("onnxruntime stopped working (onnxruntime cannot run")
    assert desmoker.notice.endswith(f"; now running on {now}") and "\n" not in desmoker.notice


@pytest.mark.parametrize(
    "module_text, reason",
    [
        (None, "onnxruntime is not installed"),
        (
            "raise ImportError('libonnxruntime.so.1: cannot open shared object file')",
            "onnxruntime cannot be imported (ImportError: libonnxruntime.so.1: cannot open",
        ),
        ("import no_such_dependency_h1", "onnxruntime cannot be imported (No module named"),
    ],
    ids=["missing", "broken", "a dependency missing"],
)
def test_onnxruntime_that_does_not_import_says_why(
    module_text, reason, tmp_path, monkeypatch
) -> None:
    """An installed onnxruntime that fails to import was said to be "not installed"."""
    import sys

    if module_text is None:
        monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises: not found
    else:
        (tmp_path / "onnxruntime").mkdir()
        (tmp_path / "onnxruntime" / "__init__.py").write_text(module_text + "\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "onnxruntime")
    available, why = onnxruntime_backend.OnnxRuntimeBackend.is_available()
    assert not available and why.startswith(reason) and "\n" not in why
