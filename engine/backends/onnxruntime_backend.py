"""onnxruntime backend: the CPU fast path (measured ~4x faster than torch eager here).

The network is exported to ONNX once (dynamic height and width) and cached on disk by a
hash of its weights, so later starts skip the export. A cached file is used only where it
is what exporting the network now would give (engine.models.onnx_export.reuse_problem: the
same model, weights and exporter code, its graph's recorded sha256, a float32 Nx4xHxW
input); any other (corrupt, truncated, of other weights, made by an older desmoke) is
exported again and replaced, with a warning saying why. A cache that cannot be written (a
read-only home, a full disk) costs only that: the export is run from memory, with a
warning; so does something other than a file at the cached name (a FIFO, a folder), which
is left as it is, and a cache folder that is another user's or that others may write in
(engine.files.usable_cache_folder: an export planted there would run), which is not read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from engine.backends.base import Backend, BackendUnavailable
from engine.files import cache_file, cache_root, usable_cache_folder
from engine.models.onnx_export import exported_onnx, provenance_of, reuse_problem

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return cache_root() / "onnx"


def new_session(model: bytes) -> Any:
    """An onnxruntime CPU session on `model` (ONNX bytes: the file need not be kept)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = os.cpu_count() or 1
    # Spinning worker threads keep burning the cores after each run, slowing the
    # OpenCV pre/post-processing that follows (measured: preprocess 4.9 -> 3.1 ms).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    device = "cpu"

    def __init__(self) -> None:
        self.session = None
        self.onnx_path: Path | None = None  # the cached export; None where it was not saved

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        try:
            import onnxruntime  # noqa: F401
        except ModuleNotFoundError as exc:
            if exc.name != "onnxruntime":  # one of its own dependencies is missing
                return False, f"onnxruntime cannot be imported ({exc})"
            return False, f"onnxruntime is not installed ({exc})"
        except Exception as exc:  # installed, but broken (a library it links, numpy's ABI)
            return False, f"onnxruntime cannot be imported ({type(exc).__name__}: {_one_line(exc)})"
        return True, ""

    def load(self, network: nn.Module, config: dict[str, Any]) -> None:
        wanted = provenance_of(network)
        path = cache_dir() / f"{config.get('model', 'net')}-{wanted['weights_digest']}.onnx"
        if not usable_cache_folder(path.parent):  # another user's, or others may write there
            self._start_exported(network, cache_at=None)
        # Reading a FIFO would wait forever; a folder or a device is not the cache's to replace.
        elif os.path.exists(path) and not os.path.isfile(path):
            log.warning(
                "%s is not a regular file; exporting the network to memory (remove it to "
                "cache the export)",
                path,
            )
            self._start_exported(network, cache_at=None)
        elif not self._start_cached(path, wanted):
            self._start_exported(network, cache_at=path)
        self.input_name = self.session.get_inputs()[0].name

    def _start_cached(self, path: Path, wanted: dict[str, str]) -> bool:
        """Start a session on the export cached at `path`; False when there is none that is
        what exporting the network of provenance `wanted` now would give (warned: why)."""
        try:
            model = path.read_bytes()
        except OSError:  # not cached yet (or unreadable): export
            return False
        problem = reuse_problem(model, wanted)
        if not problem:
            try:
                self.session = new_session(model)
            except Exception as exc:  # onnxruntime raises its own classes, not OSError
                problem = f"did not load ({_one_line(exc)})"
        if problem:  # a crash mid-copy, a bad disk, an older desmoke: export again, once
            log.warning("cached %s %s; exporting the network again", path, problem)
            return False
        self.onnx_path = path
        return True

    def _start_exported(self, network: nn.Module, cache_at: Path | None) -> None:
        """Export `network` in memory, start a session on it, cache it at `cache_at` where
        given and possible (the session needs no file: a cache that cannot be written is no
        matter)."""
        model = exported_onnx(network)
        try:
            self.session = new_session(model)
        except Exception as exc:  # onnxruntime's own classes; auto then moves on to torch
            raise BackendUnavailable(
                f"onnxruntime cannot load the exported network: {_one_line(exc)}"
            ) from exc
        if cache_at is not None and cache_file(cache_at, model):  # replaces a bad file whole
            self.onnx_path = cache_at

    def run(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.session is None:
            raise BackendUnavailable("onnxruntime backend used before load()")
        try:
            return tuple(self.session.run(None, {self.input_name: np.ascontiguousarray(x)}))
        except Exception as exc:  # onnxruntime's own classes: the pipeline falls back on this
            raise BackendUnavailable(
                f"onnxruntime cannot run the network ({_one_line(exc)})"
            ) from exc

    def describe(self) -> str:
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} (cpu)"
