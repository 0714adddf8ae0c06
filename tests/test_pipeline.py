"""Desmoker: any frame in -> original, dark channel, desmoked of the same size, timings."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import torch

import engine.pipeline as pipeline
from engine.dark_channel import dark_channel, default_patch_size
from engine.models import build_network, default_config, save_weights
from engine.pipeline import Desmoker
from engine.restore import composite
from tests.backend_failures import lost_device, out_of_gpu_memory
from tests.frames import smooth_alpha, textured_frame


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def fast_weights(tmp_path):
    torch.manual_seed(0)
    net = build_network("fast")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return save_weights(tmp_path / "fast.safetensors", net, default_config("fast"))


def smoky_frame(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(height * 7 + width)
    clear = rng.random((height, width, 3), dtype=np.float32) * 0.6
    alpha = np.full((height, width), 0.5, np.float32)
    return (composite(clear, alpha, np.array([0.9, 0.9, 0.9])) * 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (33, 65), (1081, 1921)])
def test_any_size_in_same_size_out(shape: tuple[int, int]) -> None:
    desmoker = Desmoker("dcp")
    frame = smoky_frame(*shape)
    result = desmoker.process(frame)
    assert result.desmoked.shape == frame.shape and result.desmoked.dtype == np.uint8
    assert result.dark_channel.shape == shape and result.dark_channel.dtype == np.uint8
    expected_mask = dark_channel(frame, default_patch_size(*shape))
    np.testing.assert_array_equal(result.dark_channel, expected_mask)
    assert set(result.timings) >= {"preprocess", "network", "restore", "total"}
    assert 0.0 <= result.smoke_level <= 1.0


def test_dcp_brings_a_plume_closer_to_the_clear_frame() -> None:
    clear = textured_frame(180, 320, seed=2)
    clear[::9, ::9] = 0
    alpha = smooth_alpha(180, 320, peak=0.9)
    smoky = (composite(clear / 255.0, alpha, np.array([0.95, 0.93, 0.9])) * 255).astype(np.uint8)
    result = Desmoker("dcp").process(smoky)
    before = np.abs(smoky.astype(int) - clear).mean()
    after = np.abs(result.desmoked.astype(int) - clear).mean()
    assert after < 0.5 * before
    assert result.smoke_level > 0.2


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((20, 30), np.uint8),
        np.zeros((20, 30, 1), np.uint8),
        np.zeros((20, 30, 4), np.uint8),
    ],
    ids=["grey", "grey1", "rgba"],
)
def test_grey_and_rgba_frames_are_accepted(frame: np.ndarray) -> None:
    result = Desmoker("dcp").process(frame)
    assert result.desmoked.shape == (20, 30, 3)


@pytest.mark.parametrize(
    "frame", [np.zeros((20, 30, 3), np.float32), np.zeros((0, 30, 3), np.uint8), "frame"]
)
def test_bad_frames_are_clear_errors(frame) -> None:
    with pytest.raises(ValueError, match="expected"):
        Desmoker("dcp").process(frame)


@pytest.mark.parametrize(
    "frame, message",
    [
        # Grey ones were converted to RGB first, where OpenCV asserted on them (a cv2.error).
        (np.zeros((5, 0), np.uint8), "got shape (5, 0)"),
        (np.zeros((0, 5), np.uint8), "got shape (0, 5)"),
        (np.zeros((5, 0, 1), np.uint8), "got shape (5, 0, 1)"),
        (np.zeros((0, 5, 4), np.uint8), "got shape (0, 5, 4)"),  # was (0, 5, 3): not the one given
        (np.zeros((5, 5, 2), np.uint8), "got shape (5, 5, 2)"),
        (np.array(3, np.uint8), "got shape ()"),
        (np.uint8(3), "got a single uint8 number (no HxW shape)"),  # was "got uint8"
    ],
)
def test_frames_of_no_image_shape_say_the_shape_given(frame, message) -> None:
    with pytest.raises(ValueError) as caught:
        pipeline.as_rgb_uint8(frame)
    assert str(caught.value).startswith("expected a") and str(caught.value).endswith(message)


def test_the_working_short_side_has_the_clis_bound() -> None:
    """25600 px once asked for a 25600x45504 working image of a 720p frame (13 GiB)."""
    from desmoke_app.commands.common import WORKING_SIZE_RANGE

    high = pipeline.MAX_WORKING_SHORT_SIDE
    assert WORKING_SIZE_RANGE[1] == high == 2160  # one limit, the CLI's and the engine's
    message = f"working_short_side must be at most {high} px (4K's short side), got 25600"
    with pytest.raises(ValueError, match=re.escape(message)):
        Desmoker("dcp", working_short_side=25600)
    desmoker = Desmoker("dcp", working_short_side=high)
    with pytest.raises(ValueError, match="at most"):
        desmoker.working_short_side = high + 1
    assert desmoker.working_short_side == high


def test_fast_backends_agree_end_to_end(fast_weights) -> None:
    frame = smoky_frame(180, 320)
    results = [
        Desmoker("fast", b, weights=fast_weights).process(frame) for b in ("torch", "onnxruntime")
    ]
    difference = np.abs(results[0].desmoked.astype(int) - results[1].desmoked.astype(int))
    assert difference.max() <= 1
    assert results[0].timings["network"] > 0


def test_gpu_frame_path_failing_mid_run_falls_back_to_the_cpu(fast_weights, monkeypatch) -> None:
    """Out of GPU memory on a 4K frame, say: that frame and the next come from the CPU
    pre/post path (same result as a CPU-only Desmoker), and the notice says why."""
    from engine.backends.torch_backend import TorchBackend

    calls = []

    def out_of_memory(self, frame, **kwargs):
        calls.append(frame.shape)
        out_of_gpu_memory(self, frame, **kwargs)

    frame = smoky_frame(180, 320)
    expected = Desmoker("fast", "torch", weights=fast_weights).process(frame)
    monkeypatch.setattr(TorchBackend, "process_frame", out_of_memory, raising=False)
    desmoker = Desmoker("fast", "torch", weights=fast_weights)
    assert desmoker.notice == ""
    for _ in range(2):
        result = desmoker.process(frame)
        np.testing.assert_array_equal(result.desmoked, expected.desmoked)
        np.testing.assert_array_equal(result.dark_channel, expected.dark_channel)
    assert calls == [frame.shape]  # not retried on every frame
    assert "out of GPU memory for 320x180 frames" in desmoker.notice
    assert "on the CPU" in desmoker.notice


def test_a_backend_without_a_frame_path_is_asked_once(fast_weights, monkeypatch) -> None:
    """Backend.process_frame's None (a CPU backend): the CPU pre/post path, silently, and
    the backend is not asked again on the next frames."""
    from engine.backends.base import Backend
    from engine.backends.torch_backend import TorchBackend

    calls = []

    def no_frame_path(self, frame, **options):
        calls.append(frame.shape)
        return Backend.process_frame(self, frame, **options)

    frame = smoky_frame(90, 160)
    expected = Desmoker("fast", "torch", weights=fast_weights).process(frame)
    monkeypatch.setattr(TorchBackend, "process_frame", no_frame_path)
    desmoker = Desmoker("fast", "torch", weights=fast_weights)
    for _ in range(3):
        np.testing.assert_array_equal(desmoker.process(frame).desmoked, expected.desmoked)
    assert calls == [frame.shape] and desmoker.notice == ""


def test_gpu_frame_path_results_and_stages(fast_weights, monkeypatch) -> None:
    """What the fused GPU path returns becomes the result; its host and bus copies are
    reported as one stage, "copies", beside "gpu" (the performance plot's two GPU curves)."""
    from engine.backends.frame_path import FrameOutputs
    from engine.backends.torch_backend import TorchBackend

    times = dict(host_in=0.5, upload=0.25, gpu=1.0, download=0.25, host_out=0.5, total=2.75)

    def on_device(self, frame, **options):
        mask = np.full(frame.shape[:2], 7, np.uint8)
        return FrameOutputs(mask, 255 - frame, 0.25, dict(times))

    monkeypatch.setattr(TorchBackend, "process_frame", on_device, raising=False)
    frame = smoky_frame(90, 160)
    result = Desmoker("fast", "torch", weights=fast_weights).process(frame)
    np.testing.assert_array_equal(result.desmoked, 255 - frame)
    assert (result.dark_channel == 7).all() and result.smoke_level == 0.25
    assert result.timings["copies"] == 1.5 and result.timings["gpu"] == 1.0


def test_backend_failing_mid_run_hands_over_to_the_next(fast_weights, monkeypatch) -> None:
    """A backend that stops working while running (device lost, engine shape mismatch):
    the frame is still desmoked, by the next backend that loads, and the notice says so."""
    from engine.backends.torch_backend import TorchBackend

    frame = smoky_frame(180, 320)
    expected = Desmoker("fast", "onnxruntime", weights=fast_weights).process(frame)
    monkeypatch.setattr(TorchBackend, "run", lost_device)
    desmoker = Desmoker("fast", "torch", weights=fast_weights)
    for _ in range(2):
        result = desmoker.process(frame)
        np.testing.assert_array_equal(result.desmoked, expected.desmoked)
    assert desmoker.backend_name == "onnxruntime"
    assert desmoker.notice == (
        "torch stopped working (simulated lost device); now running on onnxruntime"
    )


def test_weights_path_as_model_name(fast_weights) -> None:
    desmoker = Desmoker(str(fast_weights), "torch")
    assert desmoker.model_name == "fast" and str(fast_weights) in desmoker.describe()


def test_paper_model_restores_at_full_resolution(tmp_path) -> None:
    weights = save_weights(
        tmp_path / "paper.safetensors",
        build_network("paper", {"ngf": 4}),
        default_config("paper", {"ngf": 4}),
    )
    desmoker = Desmoker("paper", "torch", weights=weights)
    frame = smoky_frame(90, 160)
    result = desmoker.process(frame)
    assert result.desmoked.shape == frame.shape
    none = Desmoker("paper", "torch", weights=weights, strength=0.0).process(frame)
    np.testing.assert_array_equal(none.desmoked, frame)


@pytest.mark.parametrize(
    ("unshuffle", "frame_shape", "work_shape"),
    [
        (2, (200, 360), (200, 360)),  # stride 8: the frame as it is (16 made it 192x352)
        (8, (240, 432), (256, 448)),  # stride 32 (16 gave 240x432, padded in the network)
    ],
)
def test_the_working_size_is_a_multiple_of_the_networks_own_stride(
    tmp_path, monkeypatch, unshuffle, frame_shape, work_shape
) -> None:
    """`fast`'s stride is 4 x its unshuffle: weights with another unshuffle than 4 run at
    multiples of their own stride, so the network sees the working image unpadded and
    its smoke layer covers it exactly (it was always resized to multiples of 16)."""
    arch = {"widths": [8, 8, 8], "unshuffle": unshuffle}
    path = tmp_path / "w.safetensors"
    save_weights(path, build_network("fast", arch), default_config("fast", arch))
    desmoker = Desmoker(path, "torch", working_short_side=min(frame_shape))
    seen = []
    run = desmoker.backend.run

    def recording_run(x):
        outputs = run(x)
        seen.append((x.shape[2:], outputs[0].shape[2:]))
        return outputs

    monkeypatch.setattr(desmoker.backend, "run", recording_run)
    frame = smoky_frame(*frame_shape)
    result = desmoker.process(frame)
    height, width = work_shape
    assert seen == [((height, width), (height // unshuffle, width // unshuffle))]
    assert result.desmoked.shape == frame.shape and 0 < result.smoke_level < 1


def test_unknown_model_and_bad_patch() -> None:
    with pytest.raises(ValueError, match="unknown model 'fastest'"):
        Desmoker("fastest")
    with pytest.raises(ValueError, match="odd"):
        Desmoker("dcp", patch_size=4)


# -- export ----------------------------------------------------------------------------------
def test_export_of_a_cut_short_file_warns_and_a_whole_one_does_not(tmp_path) -> None:
    from tests.clips import corrupt_clip, make_index_clip

    whole = make_index_clip(tmp_path / "whole.mp4", n_frames=100, fps=25)  # 4 s, +faststart
    cut = corrupt_clip(whole, tmp_path / "cut.mp4", keep=0.5, flips=0)  # the header says 4 s
    desmoker = Desmoker("dcp")
    complete = pipeline.export_video(whole, tmp_path / "a.mp4", desmoker)
    assert complete.frames == 100 and complete.warning == ""
    short = pipeline.export_video(cut, tmp_path / "b.mp4", desmoker)
    assert 0 < short.frames < 100
    ended = short.frames / 25
    assert "cut short" in short.warning and f"{ended:.2f} s" in short.warning
    assert "4.00 s" in short.warning
    # A range that ends before the cut is whole: no warning.
    early = pipeline.export_video(cut, tmp_path / "c.mp4", desmoker, end=ended / 2)
    assert early.warning == ""


def test_export_keeps_each_frame_at_its_time(tmp_path) -> None:
    """A variable frame rate (20 frames 40 ms apart, then 20 frames 100 ms apart) is not
    re-timed to the average rate: the exported frames are shown when the source's were, and
    the last as long (not a frame at the average rate, 68 ms: the video lasted longer)."""
    from engine.video import FileSource
    from tests.clips import make_vfr_clip
    from tests.test_video_writer import presented_seconds

    times = [i * 0.04 for i in range(20)] + [0.8 + i * 0.1 for i in range(20)]
    source = make_vfr_clip(tmp_path / "vfr.mp4", times)
    with FileSource(source) as video:
        assert [round(f.time, 3) for f in video.frames()] == [round(t, 3) for t in times]
    exported = pipeline.export_video(source, tmp_path / "out.mp4", Desmoker("dcp")).output
    with FileSource(exported) as video:
        shown = [f.time for f in video.frames()]
    assert shown == pytest.approx(times, abs=0.002)
    assert presented_seconds(exported) == pytest.approx(presented_seconds(source), abs=0.001)
    # A range ending between two frames: the last one shows until the end asked for.
    part = pipeline.export_video(
        source, tmp_path / "part.mp4", Desmoker("dcp"), start=0.5, end=1.25
    )
    assert presented_seconds(part.output) == pytest.approx(0.75, abs=0.001)


def test_audio_longer_than_the_video_is_no_cut_short_file(tmp_path) -> None:
    """MKV states no video duration of its own, only the container's, which covers the
    audio: 3 s of sound under 1 s of video is a whole file, not a cut one."""
    import av

    from tests.clips import _audio_stream, _mux_tone, index_frame

    source = tmp_path / "long_sound.mkv"
    with av.open(str(source), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = _audio_stream(out)
        for i in range(25):
            frame = av.VideoFrame.from_ndarray(index_frame(i, (64, 48)), format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        _mux_tone(out, sound, 3.0)
    from engine.video import FileSource

    with FileSource(source) as opened:
        assert opened.duration > 2.5 and opened.video_duration == 0.0  # the case at hand
    report = pipeline.export_video(source, tmp_path / "out.mp4", Desmoker("dcp"))
    assert report.frames == 25 and report.warning == ""


def test_a_stream_whose_frame_size_changes_is_exported_scaled_to_its_first(tmp_path) -> None:
    """A raw H.264 stream of 160x96, then 96x64, then 160x96 frames (as one that a recorder
    restarted at another resolution, appended): every frame is exported, at 160x96, and the
    warning names the file and the time of the change. It failed with "frame is 96x64, the
    writer was opened for 160x96", naming neither."""
    from engine.video import FileSource
    from tests.clips import read_index, size_changing_clip

    source = size_changing_clip(tmp_path)
    report = pipeline.export_video(source, tmp_path / "out.mp4", Desmoker("dcp"))
    assert report.frames == 25
    assert report.warning == (
        "sizes.h264: frames from 0.40 s are 96x64, not the video's 160x96 (its size changes "
        "midway): frames of other sizes are scaled to it"
    )
    with FileSource(report.output) as video:
        originals = [frame.rgb[:, :160] for frame in video.frames()]
    assert (video.width, video.height) == (3 * 160, 96)
    assert [read_index(rgb) for rgb in originals] == [*range(10), *range(10), *range(5)]
    # A range starting after the change names the source's time, not the output's.
    later = pipeline.export_video(source, tmp_path / "later.mp4", Desmoker("dcp"), start=0.2)
    assert "frames from 0.40 s are 96x64" in later.warning and later.frames == 20
    # A range starting on the other size: from its start, not the stream's change before it.
    within = pipeline.export_video(source, tmp_path / "within.mp4", Desmoker("dcp"), start=0.5)
    assert "frames from 0.50 s are 96x64, not the video's 160x96" in within.warning


def test_a_frame_is_area_averaged_only_where_both_sides_shrink(monkeypatch) -> None:
    """The rule the GPU pre-kernel follows too: 258x270 -> 256x272 grows a side, and was
    area-averaged here but bilinear there (12.9% of the network input a level apart)."""
    from engine.models import working_interpolation

    assert working_interpolation(720, 1280, 256, 448) == cv2.INTER_AREA
    assert working_interpolation(258, 270, 256, 272) == cv2.INTER_LINEAR
    assert working_interpolation(100, 100, 256, 256) == cv2.INTER_LINEAR
    used, original = [], cv2.resize

    def resize(image, size, **how):
        used.append(how.get("interpolation"))
        return original(image, size, **how)

    monkeypatch.setattr(pipeline.cv2, "resize", resize)
    Desmoker("fast").process(np.zeros((258, 270, 3), np.uint8))  # 256x272: stride 16
    assert used[0] == cv2.INTER_LINEAR  # the frame to its working shape, first
