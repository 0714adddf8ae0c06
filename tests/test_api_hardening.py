"""Engine API edges found by a QA pass: a fork after use, settings past the CLI's ranges,
capture modes no device has, panes that are no uint8 images, times that are no times, and
weights that do not fit the model asked for."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from engine.dark_channel import PATCH_RANGE
from engine.models import WeightsError, build_network, default_config, save_weights
from engine.pipeline import MAX_REMEMBERED_SHAPES, Desmoker
from engine.restore import Restorer, SmokeLayer
from engine.video.capture_source import MAX_CAPTURE_FPS, CaptureSource
from engine.video.file_source import FileSource
from engine.video.layout import compose_panes
from tests.clips import make_index_clip
from tests.frames import smooth_alpha, textured_frame

#: Seconds a forked child gets for work that takes milliseconds: past it, it hangs.
CHILD_TIMEOUT_S = 30


def noisy(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


# -- a fork after use ----------------------------------------------------------------------
def run_in_forked_child(work) -> int | None:
    """`work`'s exit code in a child forked from this process; None where it hung (the
    child is killed then)."""
    child = multiprocessing.get_context("fork").Process(target=work)
    child.start()
    child.join(timeout=CHILD_TIMEOUT_S)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return child.exitcode


needs_fork = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)
# Python 3.12+ warns of fork in a process with threads: the very case tested.
fork_with_threads = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")


@needs_fork
@fork_with_threads
def test_a_restorer_used_before_a_fork_restores_in_the_child() -> None:
    """A DataLoader worker (multiprocessing's fork) inherits a Restorer whose strip threads
    exist in the parent only: work sent to its copied pool waited forever."""
    frame = textured_frame(720, 1280)  # several strips: the pool runs
    layer = SmokeLayer(smooth_alpha(64, 112), np.array([0.9, 0.88, 0.8], np.float32))
    guide = np.random.default_rng(1).random((64, 112), dtype=np.float32)
    restorer = Restorer(threads=2)
    expected = restorer.restore(frame, layer, guide)

    def in_child() -> None:
        np.testing.assert_array_equal(restorer.restore(frame, layer, guide), expected)

    assert run_in_forked_child(in_child) == 0
    np.testing.assert_array_equal(restorer.restore(frame, layer, guide), expected)  # parent


@needs_fork
@fork_with_threads
def test_a_dcp_desmoker_used_before_a_fork_desmokes_in_the_child() -> None:
    """The same through the public API (dcp: no torch, whose own threads do not survive a
    fork either)."""
    desmoker, frame = Desmoker("dcp"), noisy(720, 1280)
    expected = desmoker.process(frame).desmoked

    def in_child() -> None:
        np.testing.assert_array_equal(desmoker.process(frame).desmoked, expected)

    assert run_in_forked_child(in_child) == 0


# -- Desmoker's patch size -----------------------------------------------------------------
@pytest.mark.parametrize("patch", [1, PATCH_RANGE[1] + 2, 1001])
def test_a_patch_size_past_the_range_is_refused(patch: int) -> None:
    low, high = PATCH_RANGE
    message = f"patch_size must be a positive odd number from {low} to {high}, got {patch}"
    with pytest.raises(ValueError, match=message):
        Desmoker("dcp", patch_size=patch)
    desmoker = Desmoker("dcp")
    for name in ("patch_size", "reference_patch"):
        with pytest.raises(ValueError, match=message):
            setattr(desmoker, name, patch)
    assert desmoker.patch_size == desmoker.reference_patch == 15


def test_the_ends_of_the_patch_range_run() -> None:
    frame = noisy(48, 64)
    for patch in PATCH_RANGE:
        assert Desmoker("dcp", patch_size=patch).process(frame).desmoked.shape == frame.shape


def test_patch_size_set_later_is_the_constructors_patch_size() -> None:
    """`d.patch_size = 9` made an attribute nothing read: the frame kept patch 15."""
    frame = noisy(96, 128)
    desmoker = Desmoker("dcp")
    desmoker.patch_size = 9
    assert desmoker.patch_size == desmoker.reference_patch == 9
    expected = Desmoker("dcp", patch_size=9).process(frame)
    result = desmoker.process(frame)
    np.testing.assert_array_equal(result.dark_channel, expected.dark_channel)
    np.testing.assert_array_equal(result.desmoked, expected.desmoked)


def test_the_cli_takes_the_engines_patch_range() -> None:
    from desmoke_app.commands.common import PATCH_RANGE as CLI_PATCH_RANGE

    assert CLI_PATCH_RANGE is PATCH_RANGE


# -- Desmoker's working shapes -------------------------------------------------------------
def test_working_shapes_of_many_frame_sizes_are_not_all_kept() -> None:
    desmoker = Desmoker("dcp", working_short_side=64)
    sizes = [(48 + i, 64 + 2 * i) for i in range(3 * MAX_REMEMBERED_SHAPES)]
    first = desmoker.working_shape_for(*sizes[0])
    for size in sizes:
        desmoker.working_shape_for(*size)
    assert len(desmoker._shapes) <= MAX_REMEMBERED_SHAPES
    assert desmoker.working_shape_for(*sizes[0]) == first  # recomputed alike


# -- capture modes -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode, error, message",
    [
        (dict(fps=-1), ValueError, "fps must be above 0 and at most 1000 .*, got -1"),
        (dict(fps=0), ValueError, "fps must be above 0 .*, got 0"),
        (dict(fps=float("inf")), ValueError, "fps must be above 0 .*, got inf"),
        (dict(fps=float("nan")), ValueError, "fps must be above 0 .*, got nan"),
        (dict(fps=MAX_CAPTURE_FPS + 1), ValueError, "at most 1000 .*, got 1001"),
        (dict(fps="30"), TypeError, "fps must be a number, got '30'"),
        (dict(size=(0, 0)), ValueError, r"size must be \(width, height\), .*, got \(0, 0\)"),
        (dict(size=(640, -480)), ValueError, r"two whole numbers of 1 or more .*\(640, -480\)"),
        (dict(size=(640,)), ValueError, r"size must be \(width, height\), .*, got \(640,\)"),
        (dict(size="640x480"), ValueError, "size must be .*, got '640x480'"),
        (dict(size=(640.5, 480)), TypeError, "size must be a whole number, got 640.5"),
    ],
)
def test_a_capture_mode_no_device_has_is_refused_before_opening(
    mode, error, message, monkeypatch
) -> None:
    """fps -1 or inf hung a lavfi graph past Ctrl-C; fps 0 and size (0, 0) were silently
    not asked for."""

    def open_device(*args, **kwargs):
        raise AssertionError("the device was opened")

    monkeypatch.setattr(CaptureSource, "_open", open_device)
    with pytest.raises(error, match=message):
        CaptureSource("testsrc=size=64x48:rate=10", format="lavfi", **mode)


def test_the_highest_capture_rate_is_asked_for() -> None:
    mode = dict(size=(32, 24), fps=MAX_CAPTURE_FPS)
    with CaptureSource("testsrc=size=64x48:rate=10", format="lavfi", **mode) as source:
        assert (source.width, source.height, source.fps) == (32, 24, MAX_CAPTURE_FPS)
        assert source.read().rgb.shape == (24, 32, 3)


# -- panes ---------------------------------------------------------------------------------
def panes(height: int = 20, width: int = 30) -> dict[str, np.ndarray]:
    frame = noisy(height, width)
    return {"original": frame, "dark_channel": frame.min(axis=2), "desmoked": frame.copy()}


@pytest.mark.parametrize("name", ["original", "dark_channel", "desmoked"])
@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.int64])
def test_a_pane_that_is_not_uint8_is_refused(name: str, dtype: type) -> None:
    """A float pane of values in [0, 1] came out black, silently."""
    given = panes()
    given[name] = given[name].astype(dtype)
    with pytest.raises(ValueError, match=f"{name} pane is {np.dtype(dtype)}, expected uint8"):
        compose_panes(**given)


@pytest.mark.parametrize(
    "name, shape, expected",
    [
        ("original", (20, 30), "HxWx3"),
        ("original", (20, 30, 4), "HxWx3"),
        ("desmoked", (20, 30, 4), "20x30x3"),
        ("dark_channel", (20, 30, 1), "20x30"),
    ],
)
def test_a_pane_of_another_shape_is_refused(name: str, shape: tuple, expected: str) -> None:
    given = panes()
    given[name] = np.zeros(shape, np.uint8)
    with pytest.raises(ValueError, match=rf"{name} pane has shape .*, expected {expected}$"):
        compose_panes(**given)


def test_empty_panes_are_refused() -> None:
    given = {name: pane[:0] for name, pane in panes().items()}
    with pytest.raises(ValueError, match=r"original pane has shape \(0, 30, 3\), expected HxWx3"):
        compose_panes(**given)


# -- times ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_index_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", n_frames=24)


@pytest.mark.parametrize("time", [float("nan"), float("inf"), float("-inf")])
def test_a_time_that_is_no_time_is_refused(clip: Path, time: float) -> None:
    """read(until=nan) decoded the whole file and returned its last frame (NaN compares
    false with every frame's time); seek(inf) raised OverflowError, seek(nan) went to 0."""
    with FileSource(clip) as source:
        with pytest.raises(ValueError, match=f"until must be a finite time in seconds, got {time}"):
            source.read(until=time)
        with pytest.raises(ValueError, match=f"time must be a finite time in seconds, got {time}"):
            source.seek(time)
        assert source.read().index == 0  # nothing was read past
        with pytest.raises(ValueError, match=f"start must be a finite time in seconds, got {time}"):
            next(source.frames(start=time))


def test_frames_to_a_nan_end_are_refused_to_an_infinite_end_run_on(clip: Path) -> None:
    """frames(end=nan) yielded nothing without a word (every comparison with NaN is false)."""
    with FileSource(clip) as source:
        with pytest.raises(ValueError, match="end must be a time in seconds, got nan"):
            next(source.frames(end=float("nan")))
        everything = [frame.index for frame in source.frames(end=float("inf"))]
    with FileSource(clip) as source:
        assert everything == [frame.index for frame in source.frames()]


# -- weights -------------------------------------------------------------------------------
def test_weights_of_another_model_are_a_weights_error(tmp_path: Path) -> None:
    fast = save_weights(
        tmp_path / "fast.safetensors", build_network("fast"), default_config("fast")
    )
    with pytest.raises(WeightsError, match="holds a 'fast' model, not 'paper'"):
        Desmoker("paper", weights=fast)


def test_a_path_with_no_suffix_is_told_to_be_a_safetensors_file(tmp_path: Path) -> None:
    for model in (str(tmp_path / "fast"), "runs/best"):
        with pytest.raises(ValueError, match=r"is a path with no suffix: .* \.safetensors suffix"):
            Desmoker(model)
    with pytest.raises(ValueError, match="unknown model 'fastest' .known: fast, paper, dcp"):
        Desmoker("fastest")
