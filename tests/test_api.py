"""The library API's contract: Desmoker's arguments, its settings and threads, and
export_video's range are checked where they come in, never quietly replaced."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

import engine.pipeline as pipeline
from engine.models import WeightsError, build_network, default_config, save_weights
from engine.pipeline import Desmoker, as_rgb_uint8


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def fast_weights(tmp_path) -> Path:
    return save_weights(
        tmp_path / "fast.safetensors", build_network("fast"), default_config("fast")
    )


def noisy(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


# -- threads -------------------------------------------------------------------------------
def test_a_shared_desmoker_serialises_calls_and_gives_each_its_own_result(monkeypatch) -> None:
    """The restorer reuses its buffers from call to call: two threads inside it at once
    mixed up their frames. A shared Desmoker runs one call at a time."""
    frames = [noisy(360, 640, seed) // (1 + seed % 3) for seed in range(4)]
    expected = [Desmoker("dcp").process(f).desmoked for f in frames]
    shared = Desmoker("dcp")
    restore, inside, most = shared._restorer.restore, [0], [0]

    def slow_restore(*args, **kwargs):  # widens the window two calls could overlap in
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.02)
        try:
            return restore(*args, **kwargs)
        finally:
            inside[0] -= 1

    monkeypatch.setattr(shared._restorer, "restore", slow_restore)
    wrong: list[int] = []

    def work(ids: range) -> None:
        for _ in range(3):
            for i in ids:
                if not np.array_equal(shared.process(frames[i]).desmoked, expected[i]):
                    wrong.append(i)

    threads = [threading.Thread(target=work, args=(r,)) for r in (range(0, 4, 2), range(1, 4, 2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1 and wrong == []


# -- no quiet substitutions ----------------------------------------------------------------
@pytest.mark.parametrize("model", ["fast", "paper"])
def test_a_network_model_without_weights_is_an_error_not_dcp(model, tmp_path, monkeypatch):
    monkeypatch.setattr("engine.models.weights.ASSETS_DIR", tmp_path)  # nothing shipped
    with pytest.raises(WeightsError, match=f"no '{model}' weights are shipped: pass weights="):
        Desmoker(model, "torch")


@pytest.mark.parametrize("model", ["dcp", "fast"])
def test_an_unknown_backend_is_an_error_for_every_model(model, fast_weights) -> None:
    weights = fast_weights if model == "fast" else None
    with pytest.raises(ValueError, match="unknown backend 'bogus' \\(known: auto, "):
        Desmoker(model, "bogus", weights=weights)


def test_weights_where_the_model_takes_none_are_an_error(fast_weights) -> None:
    with pytest.raises(ValueError, match="dcp takes no weights"):
        Desmoker("dcp", weights=fast_weights)
    with pytest.raises(ValueError, match="is already a weights file"):
        Desmoker(str(fast_weights), weights=fast_weights)


# -- arguments -----------------------------------------------------------------------------
def test_a_weights_path_is_a_model(fast_weights) -> None:
    for model in (fast_weights, str(fast_weights)):
        desmoker = Desmoker(model, "torch")
        assert desmoker.model_name == "fast" and desmoker.weights_path == fast_weights


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(model=None), TypeError, "model must be 'fast', 'paper', 'dcp' or a path"),
        (dict(model=3), TypeError, "model must be 'fast', 'paper', 'dcp' or a path"),
        (dict(weights=""), ValueError, "weights must be a path"),
        (dict(weights=3), ValueError, "weights must be a path"),
        (dict(patch_size=0), ValueError, "patch_size must be a positive odd"),
        (dict(patch_size=4), ValueError, "patch_size must be a positive odd"),
        (dict(patch_size=3.5), TypeError, "patch_size must be a whole number"),
        (dict(patch_size=True), TypeError, "patch_size must be a whole number"),
        (dict(working_short_side=0), ValueError, "working_short_side must be at least 16"),
        (dict(working_short_side=float("nan")), TypeError, "working_short_side must be a whole"),
        (dict(working_short_side=256.0), TypeError, "working_short_side must be a whole"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, error, message) -> None:
    kwargs = {"model": "dcp", **kwargs}
    with pytest.raises(error, match=message):
        Desmoker(**kwargs)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("strength", float("nan"), "strength must be from 0 to 1, got nan"),
        ("strength", float("inf"), "strength must be from 0 to 1, got inf"),
        ("strength", -1, "strength must be from 0 to 1, got -1"),
        ("strength", 5, "strength must be from 0 to 1, got 5"),
        ("t_min", float("nan"), "t_min must be above 0 and below 1, got nan"),
        ("t_min", 0, "t_min must be above 0 and below 1, got 0"),
        ("t_min", 1, "t_min must be above 0 and below 1, got 1"),
        ("t_min", 2, "t_min must be above 0 and below 1, got 2"),
    ],
)
def test_strength_and_t_min_out_of_range_are_refused(name, value, message) -> None:
    with pytest.raises(ValueError, match=message):
        Desmoker("dcp", **{name: value})
    desmoker = Desmoker("dcp")
    with pytest.raises(ValueError, match=message):
        setattr(desmoker, name, value)  # later, too
    assert getattr(desmoker, name) == getattr(Desmoker("dcp"), name)  # unchanged


@pytest.mark.parametrize("name, value", [("strength", "1"), ("strength", True), ("t_min", None)])
def test_strength_and_t_min_must_be_numbers(name, value) -> None:
    with pytest.raises(TypeError, match=f"{name} must be a number"):
        Desmoker("dcp", **{name: value})


def test_the_ends_of_the_ranges_are_accepted() -> None:
    frame = noisy(48, 64)
    for strength, t_min in [(0, 0.01), (1, 0.99), (np.float32(0.5), np.float64(0.1))]:
        desmoker = Desmoker("dcp", strength=strength, t_min=t_min)
        assert desmoker.process(frame).desmoked.shape == frame.shape
    np.testing.assert_array_equal(Desmoker("dcp", strength=0).process(frame).desmoked, frame)


# -- settings changed later ----------------------------------------------------------------
def test_a_new_working_short_side_applies_to_frame_sizes_already_seen() -> None:
    frame = noisy(240, 320)
    desmoker = Desmoker("dcp")
    assert desmoker.working_shape_for(240, 320) == (256, 341)
    desmoker.process(frame)
    desmoker.working_short_side = 64
    assert desmoker.working_shape_for(240, 320) == (64, 85)
    fresh = Desmoker("dcp", working_short_side=64).process(frame).desmoked
    np.testing.assert_array_equal(desmoker.process(frame).desmoked, fresh)
    with pytest.raises(ValueError, match="working_short_side must be at least 16"):
        desmoker.working_short_side = 8
    assert desmoker.working_short_side == 64


def test_patch_size_set_later_is_checked() -> None:
    desmoker = Desmoker("dcp")
    desmoker.reference_patch = 9
    with pytest.raises(ValueError, match="positive odd"):
        desmoker.reference_patch = 10
    assert desmoker.reference_patch == 9


# -- frames --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 4000), (2, 3840), (4000, 1)])
def test_very_thin_frames_cost_bounded_memory(shape) -> None:
    """1x4000 once became a 256x1024000 working image (GBs, or a crash)."""
    desmoker = Desmoker("dcp")
    work = desmoker.working_shape_for(*shape)
    assert max(work) <= 8 * 256
    result = desmoker.process(noisy(*shape))
    assert result.desmoked.shape == (*shape, 3)


@pytest.mark.parametrize(
    "frame, hint",
    [
        (np.zeros((8, 8, 3), np.float32), "255"),
        (np.zeros((8, 8, 3), np.uint16), ">> 2"),
    ],
)
def test_a_frame_of_another_dtype_says_how_to_convert_it(frame, hint) -> None:
    with pytest.raises(ValueError, match="expected a uint8 image array") as caught:
        as_rgb_uint8(frame)
    assert hint in str(caught.value)


# -- export range --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "start, end, message",
    [
        (float("nan"), None, "start must be a finite number of seconds, 0 or more, got nan"),
        (-1.0, None, "start must be a finite number of seconds, 0 or more, got -1"),
        (float("inf"), None, "start must be a finite number of seconds, 0 or more, got inf"),
        (0.0, float("nan"), "end must be a finite number of seconds or None, got nan"),
        (2.0, 1.0, "empty range: end 1 s is not after start 2 s"),
    ],
)
def test_export_range_is_checked(tmp_path, start, end, message) -> None:
    from tests.clips import make_index_clip

    clip = make_index_clip(tmp_path / "in.mp4", n_frames=10)
    with pytest.raises(ValueError, match=message):
        pipeline.export_video(clip, tmp_path / "out.mp4", Desmoker("dcp"), start=start, end=end)
    assert not (tmp_path / "out.mp4").exists()
