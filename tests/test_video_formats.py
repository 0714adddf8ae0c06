"""FileSource on inputs whose format needs care: timestamps that start late, untagged YUV
matrices, monochrome video, files with several video streams."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import Colorspace

from engine.video import FileSource, VideoOpenError
from engine.video.file_source import is_monochrome, to_rgb, yuv_matrix
from tests.clips import index_frame, make_index_clip, read_index

FPS = 25
SIZE = (160, 96)
#: FFmpeg's AVColorSpace tags (pixfmt.h): no tag, and the ones written below.
UNTAGGED, BT709_TAG, SMPTE170M_TAG = 2, 1, 6


def encode(
    path: Path,
    frames: list[np.ndarray],
    *,
    codec: str = "libx264",
    first_pts: int = 0,
    time_base: Fraction = Fraction(1, FPS),
    matrix: Colorspace | None = None,
    tag: int | None = None,
) -> Path:
    """A clip of `frames` (RGB) at FPS; the first one at `first_pts` (in `time_base`), the
    others a frame interval apart. `matrix`: the YUV matrix they are converted with (None:
    swscale's default); `tag`: the AVColorSpace the stream states (None: none)."""
    step = round(1 / (FPS * time_base))
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        stream.options = {"crf": "0"} if codec == "libx264" else {"lossless": "1"}
        if tag is not None:
            stream.codec_context.colorspace = tag
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace=matrix)
            frame.pts, frame.time_base = first_pts + i * step, time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


# -- 1. Timestamps that do not start at 0 ----------------------------------------------------


@pytest.mark.parametrize("start_s", [10, 3600])
@pytest.mark.parametrize(
    ("suffix", "codec"),
    [(".mkv", "libx264"), (".webm", "libvpx-vp9"), (".mp4", "libx264"), (".ts", "libx264")],
)
def test_a_late_start_is_not_counted_in_the_duration(tmp_path, suffix, codec, start_s):
    """A capture recorded with -copyts: 12 frames (0.48 s) whose timestamps start at
    `start_s`. Matroska states where it ends (3600.48 s), not how long it lasts: it was
    taken for the duration (frame_count 90012; an export from 5 s found no frame)."""
    n_frames, time_base = 12, Fraction(1, 90000)
    frames = [index_frame(i, SIZE) for i in range(n_frames)]
    path = encode(
        tmp_path / f"late{suffix}",
        frames,
        codec=codec,
        first_pts=start_s * 90000,
        time_base=time_base,
    )
    with av.open(str(path)) as container:  # the case at hand: the file's clock starts late
        assert container.start_time / av.time_base == pytest.approx(start_s, abs=0.1)
    with FileSource(path) as source:
        assert source.duration == pytest.approx(n_frames / FPS, abs=0.01)
        assert source.frame_count == n_frames
        shown = list(source.frames())
        assert [read_index(f.rgb) for f in shown] == list(range(n_frames))
        assert [f.time for f in shown] == pytest.approx([i / FPS for i in range(n_frames)])
        assert read_index(source.seek(0.2).rgb) == 5
        last = source.seek_frame(source.frame_count - 1)
        assert last.index == n_frames - 1 and read_index(last.rgb) == n_frames - 1
        assert source.seek(5.0) is None  # past the end


# -- 2. The YUV matrix of untagged video -----------------------------------------------------

#: Saturated colours, where the BT.601 and BT.709 matrices differ most (up to ~28 levels).
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (220, 180, 60), (90, 30, 160)]


@pytest.mark.parametrize(
    ("size", "matrix", "tag"),
    [
        ((1280, 720), Colorspace.ITU709, None),  # untagged HD: players take BT.709
        ((720, 1280), Colorspace.ITU709, None),  # portrait HD too
        ((640, 480), Colorspace.ITU601, None),  # untagged SD: BT.601
        ((1280, 720), Colorspace.ITU601, SMPTE170M_TAG),  # a tag wins over the size
        ((640, 480), Colorspace.ITU709, BT709_TAG),
    ],
    ids=["untagged-720p", "untagged-portrait", "untagged-480p", "601-tag-720p", "709-tag-480p"],
)
def test_yuv_is_decoded_with_the_matrix_players_use(tmp_path, size, matrix, tag):
    """Flat frames of saturated colours; each decodes to its colour within swscale's
    rounding. Untagged HD came out BT.601-decoded: this red 15-17 levels off, real
    footage 4-5 on average (exports, tagged BT.709, kept the shift)."""
    width, height = size
    frames = [np.full((height, width, 3), colour, np.uint8) for colour in COLOURS]
    path = encode(tmp_path / "colours.mp4", frames, matrix=matrix, tag=tag)
    with av.open(str(path)) as container:
        assert next(container.decode(video=0)).colorspace == (UNTAGGED if tag is None else tag)
    with FileSource(path) as source:
        for colour, frame in zip(COLOURS, source.frames(), strict=True):
            mean = frame.rgb.reshape(-1, 3).mean(axis=0)
            assert np.abs(mean - colour).max() < 2.5, (colour, mean.round(1))


def test_yuv_matrix_only_for_untagged_yuv():
    def frame(pixel_format, width, height, colorspace=UNTAGGED):
        made = av.VideoFrame(width, height, pixel_format)
        made.colorspace = colorspace
        return made

    assert yuv_matrix(frame("yuv420p", 1280, 720)) == Colorspace.ITU709
    assert yuv_matrix(frame("yuv420p", 1024, 576)) == Colorspace.ITU601
    assert yuv_matrix(frame("yuv420p", 1024, 578)) == Colorspace.ITU709  # above SD's 576
    assert yuv_matrix(frame("yuv420p", 1280, 720, BT709_TAG)) is None  # its own tag
    for no_chroma in ("rgb24", "gray", "gray10le", "bgr0"):
        assert yuv_matrix(frame(no_chroma, 1920, 1080)) is None
    rgb = to_rgb(frame("yuv420p10le", 1920, 1080))  # still any format in, RGB out
    assert rgb.shape == (1080, 1920, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous


# -- 3. Monochrome video ---------------------------------------------------------------------


@pytest.mark.parametrize("pix_fmt", ["gray", "gray10le"])
def test_a_monochrome_video_comes_with_a_notice(tmp_path, pix_fmt):
    """NIR/ICG modes record grey: the models, trained on colour, darken it (fast: ~17
    levels). The user is told at open, the video shown as it is."""
    path = make_index_clip(tmp_path / "grey.mkv", n_frames=4, codec="ffv1", pix_fmt=pix_fmt)
    with FileSource(path) as source:
        assert len(source.notices) == 1
        notice = source.notices[0]
        assert "\n" not in notice and notice.startswith("grey.mkv: a monochrome video")
        assert pix_fmt in notice
        assert read_index(source.read().rgb) == 0


def test_colour_video_comes_with_no_notice(tmp_path):
    with FileSource(make_index_clip(tmp_path / "colour.mp4", n_frames=4)) as source:
        assert source.notices == ()


def test_is_monochrome():
    for grey in ("gray", "gray10le", "gray16be", "ya8", "monob", "grayf32le"):
        assert is_monochrome(grey), grey
    for colour in ("yuv420p", "yuvj422p", "rgb24", "bgr0", "gbrp", "pal8", "nv12"):
        assert not is_monochrome(colour), colour


# -- 4. Several video streams ----------------------------------------------------------------


@pytest.fixture(scope="module")
def two_streams(tmp_path_factory) -> Path:
    """A Matroska file with two video streams, as a stereo laparoscope records: the first
    160x96 showing indices 0.., the second 96x64 showing 100.."""
    path = tmp_path_factory.mktemp("streams") / "stereo.mkv"
    with av.open(str(path), "w") as out:
        streams = []
        for size in (SIZE, (96, 64)):
            stream = out.add_stream("libx264", rate=FPS)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"
            streams.append(stream)
        for i in range(10):
            for offset, stream in zip((0, 100), streams, strict=True):
                size = (stream.width, stream.height)
                frame = av.VideoFrame.from_ndarray(index_frame(i + offset, size), "rgb24")
                frame.pts = i
                out.mux(stream.encode(frame))
        for stream in streams:
            out.mux(stream.encode(None))
    return path


def test_the_first_of_several_video_streams_is_used_and_said(two_streams):
    """A stereo recording's second eye was dropped without a word."""
    with FileSource(two_streams) as source:
        assert source.video_stream == 0
        assert (source.width, source.height) == SIZE
        assert read_index(source.read().rgb) == 0
        assert source.notices == (
            "stereo.mkv: the file has 2 video streams (a stereo recording?): desmoke uses "
            "video stream 1 of 2; the others are not used",
        )


def test_another_video_stream_can_be_asked_for(two_streams):
    with FileSource(two_streams, video_stream=1) as source:
        assert (source.width, source.height) == (96, 64)
        assert [read_index(f.rgb) for f in source.frames()] == list(range(100, 110))
        assert "uses video stream 2 of 2" in source.notices[0]
        assert read_index(source.seek_frame(4).rgb) == 104


def test_a_video_stream_the_file_lacks_is_a_one_line_error(two_streams, tmp_path):
    with pytest.raises(VideoOpenError) as error:
        FileSource(two_streams, video_stream=2)
    message = str(error.value)
    assert "\n" not in message and str(two_streams) in message
    assert (
        "video_stream=2 asks for video stream 3, but the file has 2 video streams "
        "(video_stream 0 to 1)"
    ) in message
    single = make_index_clip(tmp_path / "one.mp4", n_frames=2)
    with pytest.raises(
        VideoOpenError,
        match="video_stream=1 asks for video stream 2, but the file has 1 video stream ",
    ):
        FileSource(single, video_stream=1)
    with FileSource(single) as source:  # one stream: nothing to say
        assert source.notices == ()


@pytest.mark.parametrize("wrong", [-1, 1.0, "1", True, None])
def test_video_stream_must_be_a_whole_number(two_streams, wrong):
    with pytest.raises(ValueError, match="video_stream must be an int, 0 or more"):
        FileSource(two_streams, video_stream=wrong)
