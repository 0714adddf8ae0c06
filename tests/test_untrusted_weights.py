"""Weights, engines and caches from elsewhere: a weights file cannot choose the TensorRT
engine that runs, cost gigabytes or minutes before it is refused, or crash a command with
its config; a cache folder others may write in is not used; a weights path that is not a
file says what it is."""

from __future__ import annotations

import json
import logging
import os
import struct
import sys
import time
import tomllib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from desmoke_app.cli import main
from engine import files
from engine.backends import onnxruntime_backend
from engine.backends.base import BackendUnavailable
from engine.backends.tensorrt_backend import find_engine
from engine.models import (
    WeightsError,
    build_network,
    default_config,
    load_network,
    read_config,
    save_weights,
)
from engine.models import weights as weights_module
from engine.models.onnx_export import provenance_of
from engine.models.registry import arch_problem
from engine.models.weights import CONFIG_KEY, provenance_summary
from engine.pipeline import Desmoker

ARCH = {"widths": [8, 16, 32]}
CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DESMOKE_TRT_ENGINE", raising=False)


def small_weights(folder: Path, config_changes: dict | None = None, extra=None) -> Path:
    """A small fast network's weights; its config changed by `config_changes`, `extra`
    tensors added beside its own."""
    torch.manual_seed(0)
    tensors = {k: v.contiguous() for k, v in build_network("fast", ARCH).state_dict().items()}
    tensors |= extra or {}
    config = default_config("fast", ARCH) | (config_changes or {})
    path = folder / "w.safetensors"
    save_file(tensors, str(path), metadata={CONFIG_KEY: json.dumps(config)})
    return path


def raw_safetensors(path: Path, header: dict) -> Path:
    """A safetensors file written by hand: `header` as its JSON, no tensor data after it."""
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    return path


# -- 1. the TensorRT engine comes from the user alone ----------------------------------
def test_a_weights_file_cannot_name_the_engine_that_runs(tmp_path) -> None:
    """Its config's "tensorrt_engine" was loaded as the engine (deserialising one runs code)."""
    planted = tmp_path / "sent_by_someone.engine"
    planted.write_bytes(b"engine")
    weights = small_weights(tmp_path, {"tensorrt_engine": str(planted)})
    assert read_config(weights)["tensorrt_engine"] == str(planted)  # unknown keys still pass
    with pytest.raises(BackendUnavailable, match="no TensorRT engine for these weights"):
        find_engine("abc", "10.13.0", (9, 0))


def test_engines_are_not_looked_for_in_a_cache_others_may_write(tmp_path, caplog) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    with pytest.raises(BackendUnavailable, match="not safe to load engines from"):
        find_engine("abc", "10.13.0", (9, 0))
    assert "is writable by other users (mode 777)" in caplog.text


def test_build_engine_help_says_an_engine_is_trusted_like_a_program(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["build-engine", "--help"])
    assert "trusted like a program" in " ".join(capsys.readouterr().out.split())


# -- 2. nothing big is built or read before the file is found to fit -------------------
def test_a_config_asking_for_a_big_network_is_refused_before_one_is_built(
    tmp_path, monkeypatch
) -> None:
    """A 4 MB file whose config asked for widths 4096 took 106 s and 6.4 GB before its
    refusal: the network is now compared with the file on the meta device first (widths
    512 are within the bounds, 43M parameters, and are still never allocated)."""
    weights = small_weights(tmp_path, {"arch": {"widths": [512, 512, 512]}})
    built_on = []

    def recording_build(name, arch=None):
        network = build_network(name, arch)
        built_on.append(next(network.parameters()).device.type)
        return network

    monkeypatch.setattr("engine.models.build_network", recording_build)
    with pytest.raises(WeightsError, match=r"w\.safetensors: does not match the architecture"):
        load_network(weights)
    assert built_on == ["meta"]


def test_tensors_are_compared_by_name_before_any_is_read(tmp_path, monkeypatch) -> None:
    """800,000 unexpected tensors were all loaded before the names were compared."""
    extra = {f"extra.{i}": torch.zeros(0) for i in range(2000)}
    weights = small_weights(tmp_path, extra=extra)

    def no_loading(*args, **kwargs):
        raise AssertionError("tensors read before the names were compared")

    monkeypatch.setattr(weights_module, "load_file", no_loading)
    with pytest.raises(WeightsError, match="2000 unexpected tensors .e.g. extra.0."):
        load_network(weights)


def test_a_header_far_larger_than_any_model_is_refused_unread(tmp_path) -> None:
    """safetensors parses up to 100 MB of header: 4 s and 0.7 GB for 800,000 tensors."""
    header = {"__metadata__": {CONFIG_KEY: json.dumps(default_config("fast", ARCH))}}
    header |= {
        f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(30000)
    }
    path = raw_safetensors(tmp_path / "many.safetensors", header)
    assert path.stat().st_size > weights_module.MAX_HEADER_BYTES
    started = time.perf_counter()
    with pytest.raises(WeightsError, match=r"many\.safetensors: its header claims [\d,]+ bytes"):
        read_config(path)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("model", "arch", "says"),
    [
        ("fast", {"widths": [4096] * 3}, "1-512"),
        ("paper", {"ngf": 512}, "ngf must be a whole number 1-128"),
    ],
)
def test_architectures_beyond_a_desktop_budget_are_refused(model, arch, says) -> None:
    assert says in arch_problem(model, arch)


def test_every_shipped_config_and_the_shipped_weights_fit_the_bounds() -> None:
    for path in sorted(CONFIGS.glob("*.toml")):
        model = tomllib.loads(path.read_text()).get("model", {})
        if model.get("name") in ("fast", "paper"):
            assert arch_problem(model["name"], model.get("arch")) == "", path
    assert arch_problem("paper", {"ngf": 64}) == ""  # the paper's own
    load_network(weights_module.default_weights("fast"))


# -- 3. a crafted config is a one-line refusal -----------------------------------------
def test_a_deeply_nested_config_is_a_weights_error(tmp_path, capsys) -> None:
    """It raised RecursionError from desmoke info, export, export-model and Desmoker."""
    deep = '{"model": "fast", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = small_weights(tmp_path)
    tensors = {k: v.contiguous() for k, v in build_network("fast", ARCH).state_dict().items()}
    save_file(tensors, str(path), metadata={CONFIG_KEY: deep})
    with pytest.raises(WeightsError, match="its config is nested too deeply"):
        Desmoker("fast", "torch", weights=path)
    for argv in (
        ["info", "--model", "fast", "--weights", str(path)],
        ["export-model", str(path), "--onnx", str(tmp_path / "out.onnx")],
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"desmoke: error: {path}: its config is nested too deeply to be a desmoke config"
        ]
    assert not (tmp_path / "out.onnx").exists()


def test_provenance_with_nulls_is_shown_without_them() -> None:
    shown = provenance_summary(
        {
            "version": None,
            "training": {"steps": 3, "minutes": None, "hardware": None},
            "metrics": {"val": {"psnr": 30.0, "psnr_identity": None}},
        }
    )
    assert (
        shown == "format ?; saved at step 3, 0 min into its training run; validation PSNR 30.00 dB"
    )


def test_info_shows_the_provenance_of_good_weights(tmp_path, capsys) -> None:
    config = default_config("fast", ARCH) | {
        "training": {
            "steps": 7,
            "minutes": 1.5,
            "hardware": "CPU",
            "data": {"frames": {"train": 9}},
        },
        "metrics": {"val": {"psnr": 31.25, "psnr_identity": 20.5}},
    }
    path = save_weights(tmp_path / "good.safetensors", build_network("fast", ARCH), config)
    assert main(["info", "--model", "fast", "--weights", str(path)]) == 0
    assert (
        "weights: format 1; saved at step 7, 2 min into its training run on CPU; frames train 9; "
        "validation PSNR 31.25 dB (input 20.50)" in capsys.readouterr().out
    )


# -- 4. caches others may write in are not used ----------------------------------------
def owned_by_another_user(folder: Path, monkeypatch) -> None:
    """Make `folder` another user's, as the cache's owner check sees it."""
    if os.getuid() == 0:
        os.chown(folder, 65534, -1)  # nobody
    else:  # a folder of one's own, seen by a process of another uid
        monkeypatch.setattr(files.os, "getuid", lambda: os.getuid() + 1)


def planted_export(network: torch.nn.Module) -> Path:
    """Where the onnxruntime backend caches `network`'s export, something planted there."""
    path = onnxruntime_backend.cache_dir() / f"fast-{provenance_of(network)['weights_digest']}.onnx"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"planted")
    return path


@pytest.mark.parametrize("how", ["writable by others", "another user's"])
def test_a_cache_folder_others_control_is_neither_read_nor_written(
    how, tmp_path, monkeypatch, caplog
) -> None:
    from tests.test_backends import loaded_onnxruntime

    network = build_network("fast", ARCH).eval()
    cached = planted_export(network)  # a real export would load: it must not even be read
    read = []
    real_read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: read.append(p) or real_read_bytes(p))
    if how == "writable by others":
        cached.parent.chmod(0o777)
    else:
        owned_by_another_user(cached.parent, monkeypatch)
    with caplog.at_level(logging.WARNING):
        backend = loaded_onnxruntime(network)
        loaded_onnxruntime(network)
    assert cached not in read and cached.read_bytes() == b"planted"
    assert backend.onnx_path is None  # run from memory
    warnings = [r.getMessage() for r in caplog.records if "cache folder" in r.getMessage()]
    assert len(warnings) == 1 and str(cached.parent) in warnings[0], warnings


def test_cache_folders_are_made_owner_only(tmp_path) -> None:
    folder = tmp_path / "cache" / "onnx"
    assert files.usable_cache_folder(folder)
    assert (folder.stat().st_mode & 0o777, folder.parent.stat().st_mode & 0o777) == (0o700, 0o700)


def test_a_folder_others_may_write_is_refused_before_one_is_made_in_it(tmp_path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o775)
    assert not files.usable_cache_folder(root / "onnx")
    assert not (root / "onnx").exists()


def test_windows_has_no_modes_to_check(tmp_path, monkeypatch) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o777)
    monkeypatch.setattr(sys, "platform", "win32")
    assert files.usable_cache_folder(root / "onnx")


# -- 5. a weights path that is not a file says what it is ------------------------------
def non_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    (tmp_path / "dir.safetensors").mkdir()
    return {
        "directory": (tmp_path / "dir.safetensors", "is a directory"),
        "FIFO": (fifo, r"is a FIFO \(a pipe\), not a regular file"),
        "device": (Path("/dev/zero"), "is a device, not a regular file"),
    }


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="POSIX")
def test_a_weights_path_that_is_not_a_file_says_what_it_is(tmp_path, capsys) -> None:
    for path, says in non_files(tmp_path).values():
        with pytest.raises(WeightsError, match=f"^{path}: {says}; give a .safetensors"):
            read_config(path)
        with pytest.raises(WeightsError, match=says):
            Desmoker("fast", "torch", weights=path)
        assert main(["info", "--model", "fast", "--weights", str(path)]) == 1
        assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX")
def test_build_engine_says_what_its_input_is(tmp_path) -> None:
    from training.build_engine import BuildError, build_engine

    for path, says in non_files(tmp_path).values():
        with pytest.raises(BuildError, match=f"^{path}: {says}$"):
            build_engine(path, tmp_path / "out.engine")
    with pytest.raises(BuildError, match="missing.onnx: file not found"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "out.engine")
