"""CaptureSource through FFmpeg's lavfi testsrc (a stand-in device), and device listing."""

from __future__ import annotations

import errno
import sys

import numpy as np
import pytest

from engine.video import (
    CaptureDevice,
    CaptureSource,
    VideoError,
    VideoOpenError,
    list_capture_devices,
)
from engine.video.capture_source import (
    _device_options,
    _lavfi_graph,
    parse_avfoundation_list,
    parse_dshow_list,
    platform_format,
    v4l2_devices,
)
from tests.test_video_source import run_isolated

TESTSRC = "testsrc=size=320x240:rate=30"


def test_testsrc_stands_in_for_a_device():
    with CaptureSource(TESTSRC, format="lavfi") as source:
        assert source.is_live and source.duration is None and source.frame_count is None
        assert (source.width, source.height, source.fps) == (320, 240, 30)
        frames = [source.read() for _ in range(6)]
    assert [f.index for f in frames] == list(range(6))
    for frame in frames:
        assert frame.rgb.shape == (240, 320, 3) and frame.rgb.dtype == np.uint8
        assert frame.rgb.flags.c_contiguous
    assert np.diff([f.time for f in frames]) == pytest.approx(1 / 30)
    assert frames[0].time == 0.0
    assert frames[0].rgb.std() > 20  # testsrc's colour bars, not a blank frame


def test_size_fps_and_pixel_format_are_honoured():
    with CaptureSource(TESTSRC, format="lavfi", size=(160, 120), fps=15, pixel_format="gray") as s:
        assert (s.width, s.height, s.fps) == (160, 120, 15)
        frames = [s.read() for _ in range(4)]
    assert frames[0].rgb.shape == (120, 160, 3)
    assert np.diff([f.time for f in frames]) == pytest.approx(1 / 15)
    rgb = frames[0].rgb
    assert np.array_equal(rgb[..., 0], rgb[..., 1])  # grey source, still RGB out


def test_a_device_with_non_square_pixels_gives_square_ones():
    """An SD capture card's 720x576 at 16:9 (sample aspect ratio 64:45), in miniature."""
    with CaptureSource("testsrc=size=90x48:rate=25,setsar=64/45", format="lavfi") as source:
        assert (source.width, source.height) == (128, 48)
        frame = source.read()
    assert frame.rgb.shape == (48, 128, 3) and frame.rgb.flags.c_contiguous


def test_a_compressed_stream_is_asked_for_the_way_each_device_format_names_it():
    """USB capture cards send 1080p at full rate only as MJPEG: v4l2 selects it with
    input_format, dshow with vcodec (its pixel_format takes raw formats only)."""
    v4l2 = _device_options("v4l2", (1920, 1080), 60, "mjpeg")
    assert (v4l2["input_format"], v4l2["video_size"], v4l2["framerate"]) == (
        "mjpeg",
        "1920x1080",
        "60",
    )
    dshow = _device_options("dshow", None, None, "mjpeg")
    assert dshow["vcodec"] == "mjpeg" and "pixel_format" not in dshow
    assert _device_options("dshow", None, None, "yuyv422")["pixel_format"] == "yuyv422"
    assert _device_options("avfoundation", None, None, "nv12")["pixel_format"] == "nv12"
    assert "format=" not in _lavfi_graph(TESTSRC, None, None, "mjpeg")  # generated: raw
    with CaptureSource(TESTSRC, format="lavfi", pixel_format="mjpeg") as source:
        assert source.read().rgb.shape == (240, 320, 3)


def test_a_raw_yuyv_stream_arrives_as_rgb():
    with CaptureSource(TESTSRC, format="lavfi", pixel_format="yuyv422") as source:
        assert source.pixel_format == "yuyv422"
        frame = source.read()
    assert frame.rgb.shape == (240, 320, 3) and frame.rgb.std() > 20


def test_frames_end_and_stream_end():
    with CaptureSource(TESTSRC, format="lavfi") as source:
        assert len(list(source.frames(end=0.2))) == 6
    # A finite source ends: read() then gives None, like a file.
    with CaptureSource("testsrc=size=64x48:rate=10:duration=1", format="lavfi") as source:
        frames = list(source.frames())
        assert 5 <= len(frames) <= 10  # nobuffer may drop the probed first frame
        assert source.read() is None


def test_device_that_vanishes_mid_stream_raises_one_line_error():
    with CaptureSource(TESTSRC, format="lavfi") as source:
        real = source._packets

        def vanishing():
            yield next(real)
            yield next(real)
            raise OSError(errno.ENODEV, "No such device")

        source._packets = vanishing()
        assert source.read() is not None
        with pytest.raises(VideoError) as error:
            while True:
                source.read()
    message = str(error.value)
    assert "\n" not in message and TESTSRC in message and "No such device" in message


def test_a_closed_capture_refuses_to_read():
    result = run_isolated(f"""
from engine.video import CaptureSource, VideoError
with CaptureSource({TESTSRC!r}, format="lavfi") as source:
    source.read()
source.close()  # again: does nothing
for attempt in (source.read, lambda: next(source.frames())):
    try:
        attempt()
    except VideoError as error:
        print(error)
""")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{TESTSRC}: the source is closed"] * 2


def test_missing_device_and_bad_graph_raise_open_errors():
    with pytest.raises(VideoOpenError) as error:
        CaptureSource("/dev/video-that-does-not-exist", format="v4l2")
    assert "/dev/video-that-does-not-exist" in str(error.value)
    with pytest.raises(VideoOpenError):
        CaptureSource("no_such_filter=1", format="lavfi")


def test_list_capture_devices_never_raises():
    devices = list_capture_devices()
    assert isinstance(devices, list)
    assert all(isinstance(d, CaptureDevice) for d in devices)


def test_platform_format():
    expected = {"linux": "v4l2", "win32": "dshow", "darwin": "avfoundation"}.get(sys.platform)
    assert platform_format() == (expected or "v4l2")


def test_v4l2_listing_names_capture_nodes_and_skips_metadata_nodes(tmp_path):
    dev, sysfs = tmp_path / "dev", tmp_path / "sys"
    for node, name, index in [("video0", "Cam A", "0"), ("video1", "Cam A", "1")]:
        (sysfs / node).mkdir(parents=True)
        (sysfs / node / "name").write_text(name + "\n")
        (sysfs / node / "index").write_text(index + "\n")
    dev.mkdir()
    for node in ("video0", "video1", "video10", "video2"):
        (dev / node).touch()
    devices = v4l2_devices(dev, sysfs)
    assert [(d.name, d.path, d.format) for d in devices] == [
        ("Cam A", str(dev / "video0"), "v4l2"),
        ("video2", str(dev / "video2"), "v4l2"),
        ("video10", str(dev / "video10"), "v4l2"),
    ]


def test_dshow_and_avfoundation_lists_are_parsed():
    dshow = ['"USB Capture HDMI" (video)', '  Alternative name "@device_pnp_x"', '"Mic" (audio)']
    assert [(d.name, d.path) for d in parse_dshow_list(dshow)] == [
        ("USB Capture HDMI", "video=USB Capture HDMI")
    ]
    avf = [
        "AVFoundation video devices:",
        "[0] FaceTime HD Camera",
        "[1] Capture screen 0",
        "AVFoundation audio devices:",
        "[0] MacBook Microphone",
    ]
    assert [(d.name, d.path) for d in parse_avfoundation_list(avf)] == [
        ("FaceTime HD Camera", "0"),
        ("Capture screen 0", "1"),
    ]
