"""Backends: one interface, auto selection, torch and onnxruntime agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.backends import (
    BackendUnavailable,
    available_backends,
    backend_status,
    select_backend,
)
from engine.models import build_network, default_config
from engine.models.paper_unet import PaperDesmoker


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))


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
