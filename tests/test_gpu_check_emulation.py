"""benchmarks/gpu_check.py --emulate: its report goes where --out says, labelled as the
host emulation it is, and never into benchmarks/results (which holds GPU measurements).
The check's phases are stood in for: the real run takes minutes on the CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_benchmark_cli import benchmark_module


@pytest.fixture(scope="module")
def gpu_check():
    return benchmark_module("gpu_check")


@pytest.fixture
def quick_check(gpu_check, monkeypatch):
    """gpu_check with its kernels, frames and correctness phase stood in for."""
    errors = gpu_check.Errors()
    errors.add("restore_smoke_layer (levels)", "random 288x400", (1.0, 0.0001), 1)
    frame = np.zeros((8, 8, 3), np.uint8)
    monkeypatch.setattr("engine.cuda.emulation.build_library", lambda folder: folder)
    monkeypatch.setattr("engine.cuda.emulation.EmulatedModule", lambda library: "kernels")
    monkeypatch.setattr(gpu_check, "check_frames", lambda args, rng, seed: [("random", frame)])
    monkeypatch.setattr(gpu_check, "correctness", lambda *args: (errors, {"fp16_vs_cpu": []}))
    return gpu_check


def test_emulate_writes_its_report_to_out_labelled_as_emulation(quick_check, tmp_path) -> None:
    assert quick_check.main(["--emulate", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_host-emulation-no-gpu.json").read_text())
    assert report["emulated"] and report["gpu"] == "host emulation (no GPU)"
    assert report["max_abs_error"] == {"restore_smoke_layer (levels)": 1.0}
    text = (tmp_path / "gpu_host-emulation-no-gpu.md").read_text()
    assert text.startswith("# GPU check: host emulation (no GPU)")
    assert "NO GPU RAN" in text and "Targets" not in text and "| restore_smoke_layer" in text


def test_emulate_never_writes_into_the_gpu_results(quick_check, capsys) -> None:
    assert quick_check.main(["--emulate", "--out", str(quick_check.RESULTS)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gpu_check: --emulate does not write to") and "\n" not in err


def test_emulate_without_out_prints_its_findings_only(quick_check, capsys, monkeypatch) -> None:
    written = []
    monkeypatch.setattr(quick_check, "write_report", lambda *args: written.append(args))
    assert quick_check.main(["--emulate"]) == 0
    printed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert printed["max_abs_error"] == {"restore_smoke_layer (levels)": 1.0} and not written
