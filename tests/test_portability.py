"""Windows without Windows: what POSIX alone has (signal.SIGHUP, the `resource` module)
removed, the modules that used it at import time still load and say what is unavailable."""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from packaging.requirements import Requirement

from tests.test_benchmark_cli import benchmark_module

TESTS = Path(__file__).resolve().parent


def fresh_test_module(name: str) -> ModuleType:
    """tests/NAME.py executed anew (as collection would), under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"_portability_{name}", TESTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sighup_case(test) -> pytest.Mark:
    """The skipif mark of the SIGHUP case of a test parametrized over stop signals."""
    (parametrize,) = [mark for mark in test.pytestmark if mark.name == "parametrize"]
    cases = [case for case in parametrize.args[1] if hasattr(case, "marks")]  # pytest.param
    (sighup,) = [case for case in cases if case.id == "SIGHUP" or "SIGHUP" in case.values]
    (skip,) = [mark for mark in sighup.marks if mark.name == "skipif"]
    return skip


@pytest.mark.parametrize(
    "module, test",
    [
        ("test_gui_shutdown", "test_a_termination_signal_closes_the_app_cleanly"),
        ("test_cli", "test_stop_signal_mid_export_leaves_no_file"),
    ],
)
def test_the_signal_tests_collect_where_there_is_no_sighup(module, test, monkeypatch) -> None:
    """QA: test_gui_shutdown named signal.SIGHUP in a module-level parametrize, so on
    Windows its collection failed; the SIGHUP case is skipped there instead."""
    monkeypatch.delattr(signal, "SIGHUP")
    skip = sighup_case(getattr(fresh_test_module(module), test))
    assert skip.args[0] is True and "SIGHUP" in skip.kwargs["reason"]


def test_restore_speed_runs_without_the_resource_module(monkeypatch) -> None:
    """QA: benchmarks/restore_speed.py imported `resource` (POSIX only) at its top: on
    Windows it did not start. Its page faults are said to be unavailable there."""
    monkeypatch.setitem(sys.modules, "resource", None)  # import resource: ImportError
    bench = benchmark_module("restore_speed")
    ms, faults = bench.timed_calls(lambda: np.zeros(4), (), repeats=2)
    assert ms >= 0 and faults is None
    name = bench.BASELINE
    row = {
        "ms": {name: 2.0},
        "round_ms": {name: [1.9, 2.1]},
        "page_faults": {name: bench.faults_per_call([faults, faults], repeats=2)},
    }
    assert bench.cell(row, name) == "2.0 (x1.0; pf n/a; 1.9-2.1)"


#: Packages with wheels for Linux and Windows only.
NVIDIA_ONLY = frozenset({"cuda-python", "nvidia-cuda-nvrtc", "tensorrt"})


def optional_requirements() -> list[tuple[str, Requirement]]:
    import tomllib

    project = tomllib.loads((TESTS.parent / "pyproject.toml").read_text(encoding="utf-8"))
    extras = project["project"]["optional-dependencies"]
    return [(extra, Requirement(text)) for extra, texts in extras.items() for text in texts]


def installed_on(platform: str, requirement: Requirement) -> bool:
    return requirement.marker is None or requirement.marker.evaluate({"sys_platform": platform})


def test_the_extras_install_on_macos() -> None:
    """QA: `pip install -e ".[test]"` failed on macOS: cuda-python and nvidia-cuda-nvrtc
    have no macOS wheels. The extras leave them out there, and only there."""
    nvidia = [(e, r) for e, r in optional_requirements() if r.name in NVIDIA_ONLY]
    assert {e for e, _ in nvidia} >= {"test", "cuda", "tensorrt"}
    for extra, requirement in nvidia:
        assert not installed_on("darwin", requirement), f"[{extra}] {requirement}"
        assert installed_on("linux", requirement) and installed_on("win32", requirement)
