"""Inference backends behind one interface, and `auto` selection.

`auto` takes the first that can run here, in the order tensorrt > torch-cuda >
onnxruntime > torch, and says which it chose and why the others were passed over.
GPU backends are imported lazily: their libraries are optional.
"""

from __future__ import annotations

import importlib

from engine.backends.base import Backend, BackendUnavailable

#: name -> "module:Class", in `auto`'s order of preference.
BACKENDS = {
    "tensorrt": "engine.backends.tensorrt_backend:TensorRTBackend",
    "torch-cuda": "engine.backends.torch_cuda:TorchCudaBackend",
    "onnxruntime": "engine.backends.onnxruntime_backend:OnnxRuntimeBackend",
    "torch": "engine.backends.torch_backend:TorchBackend",
}
BACKEND_NAMES = ("auto", *BACKENDS)

__all__ = [
    "Backend",
    "BackendUnavailable",
    "BACKEND_NAMES",
    "backend_class",
    "backend_status",
    "select_backend",
]


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend '{name}' (known: {', '.join(BACKEND_NAMES)})")
    module_name, class_name = BACKENDS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(f"backend '{name}' cannot be imported: {exc}") from exc
    return getattr(module, class_name)


def backend_status(name: str) -> tuple[bool, str]:
    """(available, reason) for one backend; never raises."""
    try:
        return backend_class(name).is_available()
    except BackendUnavailable as exc:
        return False, str(exc)
    except Exception as exc:  # a broken optional library must not take the app down
        return False, f"{type(exc).__name__}: {exc}"


def select_backend(name: str = "auto", exclude: tuple[str, ...] = ()) -> tuple[Backend, str]:
    """An unloaded backend instance and a one-line reason for the choice."""
    if name != "auto":
        available, reason = backend_status(name)
        if not available:
            raise BackendUnavailable(f"backend '{name}' is not available: {reason}")
        return backend_class(name)(), f"{name} (asked for)"
    passed_over = []
    for candidate in BACKENDS:
        if candidate in exclude:
            continue
        available, reason = backend_status(candidate)
        if available:
            why = f"; passed over: {'; '.join(passed_over)}" if passed_over else ""
            return backend_class(candidate)(), f"auto chose {candidate}{why}"
        passed_over.append(f"{candidate} ({reason})")
    raise BackendUnavailable("no backend can run here: " + "; ".join(passed_over))
