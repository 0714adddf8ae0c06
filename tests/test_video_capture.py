"""CaptureSource through FFmpeg's lavfi testsrc (a stand-in device), and device listing."""

from __future__ import annotations

import errno
import sys
from fractions import Fraction

import av
import av.logging
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
    NO_COMPRESSED_STREAM,
    CaptureMode,
    _device_options,
    _lavfi_graph,
    modes_text,
    parse_avfoundation_list,
    parse_avfoundation_modes,
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
    input_format, like a pixel format; raw formats go by each format's own option name."""
    v4l2 = _device_options("v4l2", (1920, 1080), 60, "mjpeg")
    assert (v4l2["input_format"], v4l2["video_size"], v4l2["framerate"]) == (
        "mjpeg",
        "1920x1080",
        "60",
    )
    assert _device_options("dshow", None, None, "yuyv422")["pixel_format"] == "yuyv422"
    assert _device_options("avfoundation", None, None, "nv12")["pixel_format"] == "nv12"
    assert "format=" not in _lavfi_graph(TESTSRC, None, None, "mjpeg")  # generated: raw
    with CaptureSource(TESTSRC, format="lavfi", pixel_format="mjpeg") as source:
        assert source.read().rgb.shape == (240, 320, 3)


@pytest.mark.parametrize(("fmt", "device"), [("dshow", "video=USB3 HDMI"), ("avfoundation", "0")])
def test_formats_that_cannot_be_asked_for_mjpeg_say_so_before_opening(monkeypatch, fmt, device):
    """dshow picks MJPEG only by the format context's codec (ffmpeg's input -vcodec: no
    option by that name, so {"vcodec": "mjpeg"} was silently unused); avfoundation's
    pixel_format takes raw formats only ("mjpeg" failed as "Invalid argument")."""
    monkeypatch.setattr(av, "open", lambda *a, **k: pytest.fail(f"{fmt} opened with {k}"))
    with pytest.raises(VideoOpenError) as error:
        CaptureSource(device, format=fmt, pixel_format="mjpeg")
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{device}: {fmt} cannot be asked")
    assert "leave the stream at the device default" in message
    assert NO_COMPRESSED_STREAM[fmt] in message


def fake_avfoundation(monkeypatch, modes=(), fail=None) -> list:
    """av.open's avfoundation as libavdevice/avfoundation.m behaves on a device with `modes`
    ((width, height, lowest fps, highest fps) each): a video_size none of them has, or a
    framerate (default "ntsc", 29.97) not within 0.01 of the highest fps of one at that size,
    is refused: FFmpeg logs why, "Supported modes:" and each mode, and fails with EIO, as it
    does whatever went wrong. A mode it has opens (a testsrc at that rate stands in).
    `fail`: the lines logged before an EIO whatever the mode (camera access denied).
    Returns the framerate options asked for, in order."""
    asked: list = []
    real_open = av.open

    def log(line: str) -> None:
        av.logging.log(av.logging.ERROR, "AVFoundation indev", line + "\n")

    def refuse(reason: str) -> None:
        log(reason)
        log("Supported modes:")
        for width, height, low, high in modes:
            log(f"  {width}x{height}@[{low:f} {high:f}]fps")
        av.error.err_check(-errno.EIO)  # what PyAV raises for avf_read_header's AVERROR(EIO)

    def avfoundation_open(url, format=None, container_options=None, **kwargs):
        if format != "avfoundation":
            return real_open(url, format=format, container_options=container_options, **kwargs)
        options = container_options or {}
        asked.append(options.get("framerate"))
        if fail is not None:
            for line in fail:
                log(line)
            av.error.err_check(-errno.EIO)
        size = options.get("video_size")
        at_size = [mode for mode in modes if size in (None, f"{mode[0]}x{mode[1]}")]
        if not at_size:
            refuse(f"Selected video size ({size}) is not supported by the device.")
        rate = float(Fraction(options.get("framerate") or "30000/1001"))
        if not any(abs(rate - highest) < 0.01 for *_, highest in at_size):
            refuse(f"Selected framerate ({rate:f}) is not supported by the device.")
        return real_open(f"testsrc=size=64x48:rate={rate:g}", format="lavfi", **kwargs)

    monkeypatch.setattr(av, "open", avfoundation_open)
    return asked


PAL_CARD = [(1920, 1080, 25.0, 25.0), (1920, 1080, 50.0, 50.0), (1280, 720, 50.0, 50.0)]


def test_a_mac_capture_without_a_chosen_rate_opens_at_a_rate_the_card_has(monkeypatch):
    """avfoundation asks for 29.97 fps where no rate is given and refuses any device without
    it: a 50 Hz card (PAL-region laparoscopy towers) failed to open with the defaults. The
    refusal fails with EIO, like a denied camera: the log, not the errno, says to go on."""
    monkeypatch.setattr(sys, "platform", "darwin")
    asked = fake_avfoundation(monkeypatch, PAL_CARD)
    with CaptureSource("0") as source:  # the platform's format: avfoundation
        assert (source.format, source.fps) == ("avfoundation", 25)
        assert source.read().rgb.shape == (48, 64, 3)
    # 30 first, then the rates the card listed (the common ones in AVFOUNDATION_RATES' order)
    assert asked == ["30", "25"]


def test_a_mac_rate_range_is_asked_for_at_its_top(monkeypatch):
    """avfoundation takes a rate only within 0.01 of a range's top: 1920x1080@[1 60] refuses
    30 fps and opens at 60."""
    asked = fake_avfoundation(monkeypatch, [(1920, 1080, 1.0, 60.0)])
    with CaptureSource("0", format="avfoundation") as source:
        assert source.fps == 60
    assert asked == ["30", "60"]


def test_a_mac_card_with_only_uncommon_rates_opens_at_one_of_them(monkeypatch):
    asked = fake_avfoundation(monkeypatch, [(1920, 1080, 12.0, 12.0), (1920, 1080, 7.5, 7.5)])
    with CaptureSource("0", format="avfoundation") as source:
        assert source.fps == 12
    assert asked == ["30", "12"]  # the rates the card lists, not more guesses


def test_a_mac_capture_of_a_chosen_size_is_retried_at_that_sizes_rates(monkeypatch):
    modes = [(1920, 1080, 1.0, 25.0), (1280, 720, 1.0, 60.0)]
    asked = fake_avfoundation(monkeypatch, modes)
    with CaptureSource("0", format="avfoundation", size=(1920, 1080)) as source:
        assert source.fps == 25
    assert asked == ["30", "25"]  # not 60: 1920x1080 refuses it


def test_a_mac_rate_chosen_is_the_only_one_asked_for(monkeypatch):
    """A rate the user chose is not second-guessed; its refusal names the modes there are,
    each with the one rate avfoundation takes ("@60", not "@1-60", which invites 30)."""
    asked = fake_avfoundation(monkeypatch, [(1920, 1080, 1.0, 60.0)])
    with pytest.raises(VideoOpenError) as error:
        CaptureSource("0", format="avfoundation", fps=25)
    assert asked == ["25"]
    assert str(error.value) == (
        "0: the avfoundation device refuses 25 fps (it offers 1920x1080@60 fps): "
        "choose a frame rate and size it offers in the capture dialog (--fps, --size)"
    )
    with CaptureSource("0", format="avfoundation", fps=60) as source:
        assert source.fps == 60


def test_a_mac_size_refused_is_not_retried_at_other_rates(monkeypatch):
    asked = fake_avfoundation(monkeypatch, [(1920, 1080, 1.0, 60.0)])
    with pytest.raises(VideoOpenError) as error:
        CaptureSource("0", format="avfoundation", size=(1280, 720))
    assert asked == ["30"]
    assert str(error.value) == (
        "0: cannot open avfoundation capture (Selected video size (1280x720) is not supported "
        "by the device) (it offers 1920x1080@60 fps)"
    )


@pytest.mark.parametrize(
    ("logged", "reason"),
    [
        (
            ["Failed to create AV capture input device: Cannot use FaceTime HD Camera"],
            "Failed to create AV capture input device: Cannot use FaceTime HD Camera",
        ),
        ([], "Input/output error"),
    ],
    ids=["logged", "silent"],
)
def test_a_mac_device_that_fails_otherwise_is_not_retried_at_each_rate(monkeypatch, logged, reason):
    """Camera access denied fails with EIO too, with no rate refused in the log: one try,
    and the reason FFmpeg logged (its errno says nothing more)."""
    asked = fake_avfoundation(monkeypatch, PAL_CARD, fail=logged)
    with pytest.raises(VideoOpenError) as error:
        CaptureSource("0", format="avfoundation")
    assert asked == ["30"]
    assert str(error.value) == f"0: cannot open avfoundation capture ({reason})"


def test_opening_other_devices_leaves_ffmpeg_logging_alone(monkeypatch):
    """Reading FFmpeg's log swaps PyAV's process-wide log level and callback, which can stall
    other threads decoding meanwhile (PyAV issues #751, #2276): only avfoundation's lines
    are used, so only its open reads them."""
    swaps = []
    monkeypatch.setattr(av.logging, "set_level", swaps.append)
    with pytest.raises(VideoOpenError):
        CaptureSource("/dev/video-that-does-not-exist", format="v4l2")
    with CaptureSource(TESTSRC, format="lavfi") as source:
        assert source.read() is not None
    assert swaps == []


def test_avfoundation_modes_are_read_from_its_log():
    lines = [
        "Selected framerate (29.970030) is not supported by the device.",
        "Supported modes:",
        "  1920x1080@[1.000000 60.000000]fps",
        "  1920x1080@[1.000000 60.000000]fps",  # the same mode in another pixel format
        "  1920x1080@[60.000000 60.000000]fps",  # the same rate avfoundation takes
        "  1280x720@[59.940060 59.940060]fps",
    ]
    modes = parse_avfoundation_modes(lines)
    assert modes == [CaptureMode(1920, 1080, 60.0), CaptureMode(1280, 720, 59.94006)]
    assert modes_text(modes) == "1920x1080@60, 1280x720@59.94 fps"
    assert modes_text(modes, most=1) == "1920x1080@60, ... fps"
    assert parse_avfoundation_modes(["Invalid device index"]) == []
    assert modes_text([]) == ""


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
