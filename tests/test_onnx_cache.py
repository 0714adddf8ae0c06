"""The onnxruntime backend's cached exports: used only where they are what exporting the
network now would give; anything else is said in one warning and exported again."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import onnx
import pytest
import torch

from engine import files
from engine.backends import onnxruntime_backend
from engine.models import build_network
from engine.models.onnx_export import exported_onnx, provenance_of, reuse_problem
from engine.models.smoke_layer_net import SmokeLayerNet
from tests.test_backends import loaded_onnxruntime as loaded
from tests.test_backends import max_difference_from_torch

LOGGER = "engine.backends.onnxruntime_backend"
SMALL = {"widths": [8, 16, 32]}  # quick to export


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def fast_network():
    torch.manual_seed(0)  # one network for the whole module: its export is cached by weights
    return perturbed(build_network("fast", SMALL))


def perturbed(network: torch.nn.Module) -> torch.nn.Module:
    """`network` moved off its initial weights (constant heads would hide wrong weights)."""
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return network.eval()


@pytest.fixture(scope="module")
def good_export(fast_network) -> bytes:
    return exported_onnx(fast_network)


def cached_path(network: torch.nn.Module) -> Path:
    """Where the backend caches `network`'s export (the test's own cache folder)."""
    digest = provenance_of(network)["weights_digest"]
    return onnxruntime_backend.cache_dir() / f"fast-{digest}.onnx"


def reloaded_over(fast_network, good_export, caplog, replace) -> tuple[object, str]:
    """Load `fast_network` with a cache holding `replace`(its export's bytes): the backend
    and what it warned."""
    cached = cached_path(fast_network)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(replace(good_export))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        backend = loaded(fast_network)
    assert backend.onnx_path == cached
    return backend, caplog.text


def assert_replaced_and_right(backend, fast_network, warning: str, why: str) -> None:
    """One warning naming the file and why; the file now holds a usable export; onnxruntime
    gives torch's outputs."""
    path = backend.onnx_path
    lines = warning.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and why in lines[0], warning
    assert "exporting the network again" in lines[0]
    assert reuse_problem(path.read_bytes(), provenance_of(fast_network)) == ""
    assert max_difference_from_torch(backend, fast_network) <= 1e-4


def damaged(data: bytes) -> bytes:
    """4000 bytes in the middle of the weights overwritten with 0x7f: the file still parses."""
    middle = len(data) // 2
    return data[:middle] + b"\x7f" * 4000 + data[middle + 4000 :]


def test_a_damaged_export_that_still_loads_is_exported_again(
    fast_network, good_export, caplog
) -> None:
    """It used to run, silently giving wrong output (max difference 255 after restoring)."""
    onnxruntime_backend.new_session(damaged(good_export))  # it does load
    backend, warning = reloaded_over(fast_network, good_export, caplog, damaged)
    assert_replaced_and_right(backend, fast_network, warning, "is damaged")


def test_an_empty_file_is_exported_again(fast_network, good_export, caplog) -> None:
    backend, warning = reloaded_over(fast_network, good_export, caplog, lambda _: b"")
    assert_replaced_and_right(backend, fast_network, warning, "is empty")


def test_an_export_of_other_weights_is_exported_again(fast_network, good_export, caplog) -> None:
    torch.manual_seed(1)
    other = exported_onnx(perturbed(build_network("fast", SMALL)))
    backend, warning = reloaded_over(fast_network, good_export, caplog, lambda _: other)
    assert_replaced_and_right(backend, fast_network, warning, "another weights_digest")


def test_an_export_by_an_older_desmoke_is_exported_again(fast_network, good_export, caplog) -> None:
    """An export that records no exporter (as desmoke wrote them before it did)."""

    def without_exporter(data: bytes) -> bytes:
        model = onnx.load_from_string(data)
        kept = [p for p in model.metadata_props if p.key != "desmoke.exporter"]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
        return model.SerializeToString()

    backend, warning = reloaded_over(fast_network, good_export, caplog, without_exporter)
    assert_replaced_and_right(backend, fast_network, warning, "records no exporter")


def test_an_export_by_other_code_is_exported_again(
    fast_network, good_export, caplog, monkeypatch
) -> None:
    """The same weights, a network whose forward has changed since (an upgrade): the
    export from the old code is not used."""
    forward = SmokeLayerNet.forward

    def halved_alpha(self, x):
        alpha, colour = forward(self, x)
        return alpha * 0.5, colour

    monkeypatch.setattr(SmokeLayerNet, "forward", halved_alpha)
    backend, warning = reloaded_over(fast_network, good_export, caplog, lambda data: data)
    assert_replaced_and_right(backend, fast_network, warning, "another exporter")


def test_an_export_taking_another_input_is_exported_again(
    fast_network, good_export, caplog
) -> None:
    """An fp16 export under the cached name loads, but every frame would fail."""
    half = exported_onnx(fast_network, fp16=True)
    backend, warning = reloaded_over(fast_network, good_export, caplog, lambda _: half)
    assert_replaced_and_right(backend, fast_network, warning, "takes a float16 input")


def test_a_good_cached_export_is_used_without_a_word(fast_network, good_export, caplog) -> None:
    backend, warning = reloaded_over(fast_network, good_export, caplog, lambda data: data)
    assert warning == "" and backend.onnx_path.read_bytes() == good_export  # not exported again
    assert max_difference_from_torch(backend, fast_network) <= 1e-4


def load_within(seconds: float, network, fifo: Path | None = None):
    """`loaded(network)` on a thread, failing after `seconds` (a read of `fifo` that waits
    forever is then released, so that the test ends)."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(loaded(network)), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive() and fifo is not None:
        descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # the reader gets EOF
        os.close(descriptor)
        thread.join(seconds)
    assert result, f"loading did not finish within {seconds} s"
    return result[0]


NOT_FILES = {
    "a FIFO": (getattr(os, "mkfifo", None), Path.is_fifo),
    "a folder": (os.mkdir, Path.is_dir),
}


@pytest.mark.parametrize("what", NOT_FILES)
def test_something_other_than_a_file_at_the_cached_name_is_left_alone(
    what, fast_network, caplog
) -> None:
    """A FIFO used to hang start-up forever (reading it waits for a writer)."""
    make, still_there = NOT_FILES[what]
    if make is None:
        pytest.skip("no FIFOs here")
    path = cached_path(fast_network)
    path.parent.mkdir(parents=True)
    make(path)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        backend = load_within(60, fast_network, path if what == "a FIFO" else None)
    assert backend.onnx_path is None  # run from memory: the cache is not replaced
    assert still_there(path)
    assert len(caplog.records) == 1 and f"{path} is not a regular file" in caplog.text
    assert max_difference_from_torch(backend, fast_network) <= 1e-4


# -- where the cache is -----------------------------------------------------------------
@pytest.mark.parametrize("value", ["rel/cache", "~no_such_user_h1/x"])
def test_a_relative_desmoke_cache_is_refused_for_the_default(
    value, tmp_path, monkeypatch, caplog
) -> None:
    """A relative value meant another cache in each working folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)  # the default is then ~/.cache
    monkeypatch.setenv("DESMOKE_CACHE", value)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="engine.files"):
        root = files.cache_root()
        files.cache_root()
    assert root == tmp_path / "home" / ".cache" / "desmoke"
    assert caplog.text.count(f"DESMOKE_CACHE={value} is not an absolute path") == 1


def test_a_tilde_in_desmoke_cache_is_the_home_folder(tmp_path, monkeypatch) -> None:
    """It used to make a folder named "~" in the working folder; every cache (ONNX exports,
    compiled kernels, TensorRT engines) is under the one root."""
    from engine.backends.tensorrt_backend import engine_dir
    from engine.cuda.loader import cache_dir as kernels_dir

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DESMOKE_CACHE", "~/caches/desmoke")
    root = tmp_path / "home" / "caches" / "desmoke"
    assert onnxruntime_backend.cache_dir() == root / "onnx"
    assert kernels_dir() == root / "cuda" and engine_dir() == root / "tensorrt"


def test_info_says_where_the_cache_is(tmp_path, capsys) -> None:
    from desmoke_app.cli import main

    assert main(["info", "--model", "dcp"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("cache:")]
    assert lines == [
        f"cache: {tmp_path / 'cache'} (ONNX exports, compiled kernels, TensorRT engines; "
        "safe to delete: made again when needed, engines by desmoke build-engine)"
    ]
