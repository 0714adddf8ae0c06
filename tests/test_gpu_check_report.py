"""benchmarks/gpu_check.py's arithmetic and report, without a GPU.

A GPU session is short and rare: the part of the check that runs after the measurements
(bandwidth figures, the report, its Markdown and JSON) must not be what fails there. The
measurements themselves need CUDA; here they are stand-in numbers of the same shape.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_benchmark_cli import benchmark_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    return benchmark_module("gpu_check")


def bandwidth(gpu_check, pre_ms: float = 0.1) -> dict:
    return gpu_check.bandwidth_summary(
        pre_ms=pre_ms,
        pre_segments="32/16",
        sweep={"32/16": pre_ms, "16/8": 2 * pre_ms},
        separate_ms=2 * pre_ms,
        input_only_ms=pre_ms / 2,
        pre_hot_ms=pre_ms / 3,
        pre_bytes=10_000_000,
        copy_ms=0.05,
        copy_bytes=12_000_000,
        large_copy_ms=1.0,
        large_copy_bytes=2 << 30,
    )


def test_bandwidth_is_bytes_over_time_against_the_copies(gpu_check) -> None:
    bw = bandwidth(gpu_check, pre_ms=0.1)
    assert bw["pre_GBps"] == pytest.approx(100.0)  # 10 MB in 0.1 ms
    assert bw["same_size_copy_GBps"] == pytest.approx(240.0)
    assert bw["large_copy_GBps"] == pytest.approx((2 << 30) / 1e-3 / 1e9)
    assert bw["fraction_of_large_copy"] == pytest.approx(100.0 / bw["large_copy_GBps"])
    assert bw["fraction_of_same_size_copy"] == pytest.approx(100.0 / 240.0)
    assert bandwidth(gpu_check, pre_ms=0.2)["fraction_of_large_copy"] == pytest.approx(
        bw["fraction_of_large_copy"] / 2
    )


def stage_timings(fps: float) -> dict:
    """What stage_timings returns on a GPU: FramePath.process(profile=True)'s stages."""
    stages = dict(upload=0.2, gpu=1.0, download=0.3, preprocess=0.1, network=0.7, restore=0.2)
    graph = dict(host_in=0.4, upload=0.2, gpu=0.3, download=0.3, host_out=0.5, total=1.8)
    return {**stages, "total": 1.6, "fps": fps, "working_shape": "256x448", "graph": graph}


def environment(gpu: str) -> dict:
    """What gpu_check.environment() returns on a GPU."""
    return {
        "gpu": gpu,
        "compute_capability": [9, 0],
        "driver": f"{gpu}, CUDA driver 13.0",
        "nvrtc": "NVRTC 13.0",
        "torch": "2.11.0+cu130",
        "kernels": "sm_90, compiled in 1.2 s",
    }


def test_report_carries_the_figures_issue_4_asks_for(gpu_check, tmp_path: Path) -> None:
    errors = gpu_check.Errors()
    errors.add("restore_smoke_layer (levels)", "random#1", (1.0, 0.0001), 1)
    errors.add("mask_rows+cols (levels)", "random#1", (2.0, 0.5), 0)
    env = environment("NVIDIA H100 80GB HBM3")
    measured = {
        "timings": {res: stage_timings(fps) for res, fps in (("720p", 500), ("1080p", 300))},
        "bandwidth": bandwidth(gpu_check),
        "paper": {"frame_path_fps": 1500.0, "run_fps": 1800.0},
    }
    frames = [("random#1", np.zeros((4, 4, 3), np.uint8))]
    report = gpu_check.assemble_report(
        env, "shipped fast.safetensors", frames, errors, {}, None, measured
    )
    assert report["fast_1080p_fps"] == 300 and report["paper_256_fps"] == 1500.0
    assert (
        report["pre_kernel_bandwidth_fraction"] == measured["bandwidth"]["fraction_of_large_copy"]
    )
    assert (
        report["tensorrt"] is None
        and report["max_abs_error"]["restore_smoke_layer (levels)"] == 1.0
    )
    assert len(report["failures"]) == 1 and "mask_rows+cols" in report["failures"][0]

    gpu_check.write_report(report, tmp_path)
    saved = json.loads((tmp_path / "gpu_nvidia-h100-80gb-hbm3.json").read_text())
    for key in ("gpu", "fast_1080p_fps", "pre_kernel_bandwidth_fraction", "paper_256_fps"):
        assert saved[key] == report[key]
    assert saved["tensorrt"] is None and "max_abs_error" in saved
    text = (tmp_path / "gpu_nvidia-h100-80gb-hbm3.md").read_text()
    assert "# GPU check: NVIDIA H100 80GB HBM3" in text
    assert "| 1080p | 256x448 |" in text and "fast 1080p >= 240 fps -> 300" in text
    assert "| 1080p | 0.400 | 0.200 | 0.300 | 0.300 | 0.500 | 1.800 |" in text
    assert "TensorRT: absent" in text and "mask_rows+cols" in text
    assert "100.0 us cold L2" in text and "a launch a job: 200.0 us" in text


def test_a_failed_phase_is_reported_and_the_rest_kept(gpu_check, tmp_path: Path) -> None:
    phases = gpu_check.Phases()
    assert phases.run("works", lambda x: x + 1, 1) == 2
    assert phases.run("breaks", lambda: 1 / 0) is None
    assert list(phases.errors) == ["breaks"] and "ZeroDivisionError" in phases.errors["breaks"]
    env = environment("Some GPU")
    measured = {"timings": {"720p": stage_timings(500)}, "bandwidth": None, "paper": None}
    e2e = {
        "app": {
            "backend": "torch-cuda",
            "fps_1080p": 200.0,
            "notice": "",
            "vs_cpu": [{"frame": "f", "mean_abs": 0.1, "max_abs": 3, "mask_identical": True}],
        },
        "out_of_memory": {
            "notice": "GPU frame path off (out of GPU memory for 3840x2160 frames)",
            "backend_after": "torch",
            "mean_abs_vs_cpu": 0.0,
            "max_abs_vs_cpu": 0,
        },
    }
    report = gpu_check.assemble_report(
        env, "w", [], gpu_check.Errors(), e2e, None, measured, phases
    )
    assert report["fast_1080p_fps"] is None and report["paper_256_fps"] is None
    gpu_check.write_report(report, tmp_path)
    text = (tmp_path / "gpu_some-gpu.md").read_text()
    assert "| 720p | 256x448 |" in text and "fast 1080p >= 240 fps -> not measured" in text
    assert "- breaks: ZeroDivisionError" in text and "torch-cuda, 200 fps" in text
    assert "out of GPU memory for 3840x2160 frames" in text and "backend torch" in text
