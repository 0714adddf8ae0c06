"""The benchmark scripts' command lines: results written only when asked (a quick run or
--help never replaces the recorded ones), and gpu_check's frame extraction failing in one
line before a GPU session depends on it."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def benchmark_module(name: str) -> ModuleType:
    """benchmarks/NAME.py imported as a module (benchmarks/ is no package; its scripts
    import their shared modules, e.g. provenance, from their own folder)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extract_frames_into_a_file_is_a_one_line_error(tmp_path, capsys) -> None:
    target = tmp_path / "afile"
    target.write_text("x")
    assert benchmark_module("gpu_check").main(["--extract-frames", str(target)]) == 1
    err = capsys.readouterr().err
    assert "is a file" in err and len(err.strip().splitlines()) == 1


def test_extract_frames_without_footage_says_why(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DESMOKE_DATA", str(tmp_path))
    assert benchmark_module("gpu_check").main(["--extract-frames", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "no real frames" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv, expected", [([], None), (["--write"], "results"), (["--out", "x"], "x")]
)
def test_results_are_written_only_when_asked(argv, expected) -> None:
    provenance = benchmark_module("provenance")
    parser = argparse.ArgumentParser()
    provenance.add_output_arguments(parser)
    folder = provenance.output_folder(parser.parse_args(argv))
    assert (folder.name if folder else None) == expected
