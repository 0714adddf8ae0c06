"""One frame-size limit for everything desmoke reads (engine.video.MAX_FRAME_SIDE and
MAX_FRAME_PIXELS): files that state huge frames (a 746 KB PNG of 16000x16000, a YUV4MPEG
header) are refused in one line that says the size, before any frame is decoded."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.video import (
    MAX_FRAME_PIXELS,
    MAX_FRAME_SIDE,
    CaptureSource,
    FileSource,
    VideoOpenError,
    VideoWriteError,
    frame_size_problem,
    stated_image_size,
)
from engine.video import file_source as file_source_module
from tests.frames import write_video
from training import data as training_data
from training.data import DataError, read_image

REPO = Path(__file__).resolve().parents[1]


def too_large(path: Path | str, width: int, height: int) -> str:
    limit = "at most 8192 px a side"
    return f"{path}: {width}x{height} frames are larger than desmoke handles ({limit})"


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_stating(path: Path, width: int, height: int, rows: int | None = None) -> Path:
    """An 8-bit RGB PNG of `width`x`height` whose pixels are all black: `rows` of them (all
    by default) coded, the rest missing. Zeros compress ~200:1, so the file is small."""
    compressor = zlib.compressobj(1)
    row = b"\0" * (1 + 3 * width)
    coded = [compressor.compress(row) for _ in range(height if rows is None else rows)]
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"".join(coded) + compressor.flush())
        + png_chunk(b"IEND", b"")
    )
    return path


def y4m_stating(path: Path, width: int, height: int) -> Path:
    """A YUV4MPEG header stating `width`x`height`, and a few bytes of a frame."""
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F25:1 C420jpeg\nFRAME\n".encode() + bytes(64))
    return path


def encoded(path: Path, image: np.ndarray, *params: int) -> Path:
    ok, data = cv2.imencode(path.suffix, image, list(params))
    assert ok
    data.tofile(path)
    return path


@pytest.fixture
def no_decoding(monkeypatch) -> None:
    """FileSource fails the test if it starts to decode frames."""

    def decode(*args, **kwargs):
        raise AssertionError("a frame was decoded")

    monkeypatch.setattr(file_source_module, "decoded_frames", decode)


# ---------------------------------------------------------------------------- the limit


def test_the_limit_takes_8k_and_says_what_it_refuses() -> None:
    for width, height in [(8192, 4352), (4352, 8192), (7680, 4320), (3840, 2160), (8192, 16)]:
        assert frame_size_problem(width, height) == ""
    assert frame_size_problem(16000, 16000) == (
        "16000x16000 frames are larger than desmoke handles (at most 8192 px a side)"
    )
    assert frame_size_problem(8192, 4353) == (
        "8192x4353 frames are larger than desmoke handles (at most 8192x4352 = 35.7 megapixels)"
    )
    assert MAX_FRAME_SIDE == 8192 and MAX_FRAME_PIXELS == 8192 * 4352


def test_image_headers_state_their_sizes(tmp_path) -> None:
    image = np.zeros((23, 37, 3), np.uint8)
    with_alpha = np.zeros((23, 37, 4), np.uint8)
    files = [
        encoded(tmp_path / "a.png", image),
        encoded(tmp_path / "a.jpg", image),
        encoded(tmp_path / "b.jpg", image, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        encoded(tmp_path / "a.webp", image),  # lossy: VP8
        encoded(tmp_path / "b.webp", image, cv2.IMWRITE_WEBP_QUALITY, 101),  # lossless: VP8L
        encoded(tmp_path / "c.webp", with_alpha),  # lossy with alpha: VP8X
        y4m_stating(tmp_path / "a.y4m", 37, 23),
        encoded(tmp_path / "a.bmp", image),
    ]
    for path in files:
        assert stated_image_size(path.read_bytes()) == (37, 23), path.name
    tiff = encoded(tmp_path / "a.tiff", image).read_bytes()
    assert stated_image_size(tiff) == (37, 23)
    assert stated_image_size(tiff[:12]) is None  # its directory (after the pixels) cut off
    assert stated_image_size(b"\x89PNG\r\n\x1a\n\0\0") is None  # cut short
    assert stated_image_size(b"") is None
    # A BMP stating 60000x60000 (10.8 GB decoded) in its 54 bytes of headers, top-down.
    bomb = b"BM" + bytes(12) + struct.pack("<Iii", 40, 60000, -60000) + bytes(28)
    assert stated_image_size(bomb) == (60000, 60000)
    # A big-endian TIFF stating 70000x50000 (LONG, SHORT) in its one directory, at byte 8.
    entries = struct.pack(">HHII", 256, 4, 1, 70000) + struct.pack(">HHIHH", 257, 3, 1, 50000, 0)
    big_endian = b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 2) + entries
    assert stated_image_size(big_endian) == (70000, 50000)


# ---------------------------------------------------------------------------- FileSource


def test_a_png_stating_huge_frames_is_refused_from_its_header(tmp_path, no_decoding) -> None:
    """16000x16000 (the QA file's size), its first rows only: the header is enough."""
    path = png_stating(tmp_path / "bomb.png", 16000, 16000, rows=8)
    with pytest.raises(VideoOpenError) as error:
        FileSource(path)
    assert str(error.value) == too_large(path, 16000, 16000)


def test_a_png_beyond_ffmpegs_own_limit_is_refused_with_its_size(tmp_path) -> None:
    """FFmpeg decodes no 30000x30000 frame at all: it said 'no decodable frame'."""
    path = png_stating(tmp_path / "bomb30k.png", 30000, 30000, rows=8)
    with pytest.raises(VideoOpenError) as error:
        FileSource(path)
    assert str(error.value) == too_large(path, 30000, 30000)


def test_a_wide_png_is_refused_before_decoding(tmp_path, no_decoding) -> None:
    path = png_stating(tmp_path / "wide.png", 9000, 100)
    with pytest.raises(VideoOpenError) as error:
        FileSource(path)
    assert str(error.value) == too_large(path, 9000, 100)


def test_a_y4m_stating_huge_frames_says_the_size(tmp_path) -> None:
    """FFmpeg refuses the header with 'Device or resource busy'."""
    path = y4m_stating(tmp_path / "states16k.y4m", 16384, 16384)
    with pytest.raises(VideoOpenError) as error:
        FileSource(path)
    assert str(error.value) == too_large(path, 16384, 16384)


def test_a_stream_header_over_the_pixel_limit_is_refused_before_decoding(
    tmp_path, no_decoding
) -> None:
    """FFmpeg opens this header (within its own limit): the stream states the size."""
    path = y4m_stating(tmp_path / "tall.y4m", 8192, 4353)
    with pytest.raises(VideoOpenError, match=r"tall\.y4m: 8192x4353 frames are larger than "):
        FileSource(path)


def test_frames_of_a_size_no_header_states_are_checked_once_decoded(tmp_path) -> None:
    """TIFF: neither FFmpeg nor stated_image_size reads its size before decoding."""
    path = encoded(tmp_path / "wide.tiff", np.zeros((16, 8200, 3), np.uint8))
    with pytest.raises(VideoOpenError) as error:
        FileSource(path)
    assert str(error.value) == too_large(path, 8200, 16)


def test_frames_at_the_limit_open(tmp_path) -> None:
    path = png_stating(tmp_path / "edge.png", MAX_FRAME_SIDE, 16)
    with FileSource(path) as source:
        assert (source.width, source.height) == (MAX_FRAME_SIDE, 16)
        assert source.read().rgb.shape == (16, MAX_FRAME_SIDE, 3)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_a_decompression_bomb_is_refused_in_little_memory(tmp_path) -> None:
    """A real 16000x16000 PNG (3 MB; FFmpeg decoded it as it opened the file: 768 MB, and
    the app reached 8 GB); read with its header read (the size said) and, as a format
    whose header is not read would be, without (the decoders' own bound refuses it). In a
    process of its own: its peak memory is this file's alone (ru_maxrss would carry the
    test process's across the exec)."""
    path = png_stating(tmp_path / "bomb.png", 16000, 16000)
    script = textwrap.dedent(
        f"""
        import re
        from engine.video import FileSource, VideoOpenError
        from engine.video import file_source
        messages = []
        for read_header in (True, False):
            if not read_header:
                file_source.stated_image_size = lambda data: None
            try:
                FileSource({str(path)!r})
            except VideoOpenError as error:
                messages.append(str(error))
        status = open("/proc/self/status").read()  # the peak of this process's memory
        print(int(re.search(r"VmHWM:\\s*(\\d+) kB", status)[1]) // 1024)
        print("\\n".join(messages))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    peak_mb, *messages = result.stdout.splitlines()
    assert int(peak_mb) < 300  # one decoded frame is 768 MB
    assert messages == [
        too_large(path, 16000, 16000),
        f"{path}: the video stream has no decodable frame "
        "(damaged, or its frames are too large for desmoke)",
    ]


# ---------------------------------------------------------------------------- export, capture


class NoDesmoking:
    """A Desmoker that fails the test if a frame reaches it."""

    def process(self, rgb):
        raise AssertionError("a frame was processed")


def test_export_refuses_huge_frames_before_any_is_processed(tmp_path, no_decoding) -> None:
    from engine.export import export_video

    path = png_stating(tmp_path / "bomb.png", 16000, 16000, rows=8)
    out = tmp_path / "out.mp4"
    with pytest.raises(VideoOpenError, match="16000x16000 frames are larger"):
        export_video(path, out, NoDesmoking())
    assert list(tmp_path.iterdir()) == [path]


def test_export_says_the_h264_limit_before_any_frame_is_processed(tmp_path) -> None:
    """8192 px wide frames are read, but 3 of them side by side are beyond H.264's 16384."""
    from engine.export import export_video

    source = write_video(tmp_path / "wide.mkv", [np.zeros((16, 8192, 3), np.uint8)] * 2)
    out = tmp_path / "out.mp4"

    with pytest.raises(VideoWriteError, match=r"the 3up layout of 8192x16 frames is 24576x16"):
        export_video(source, out, NoDesmoking())
    assert not out.exists()


def test_capture_refuses_a_size_over_the_limit_before_opening(monkeypatch) -> None:
    def open_device(*args, **kwargs):
        raise AssertionError("the device was opened")

    monkeypatch.setattr(CaptureSource, "_open", open_device)
    with pytest.raises(VideoOpenError) as error:
        CaptureSource("/dev/video0", format="v4l2", size=(16000, 16000))
    assert str(error.value) == too_large("/dev/video0", 16000, 16000)


def test_capture_refuses_a_device_that_sends_frames_over_the_limit() -> None:
    graph = "testsrc=size=8200x16:rate=5"
    with pytest.raises(VideoOpenError) as error:
        CaptureSource(graph, format="lavfi")
    assert str(error.value) == too_large(graph, 8200, 16)


# ---------------------------------------------------------------------------- training images


def test_training_images_stating_huge_frames_are_refused_before_decoding(
    tmp_path, monkeypatch
) -> None:
    def imdecode(*args):
        raise AssertionError("the image was decoded")

    path = png_stating(tmp_path / "bomb.png", 16000, 16000, rows=8)
    monkeypatch.setattr(training_data.cv2, "imdecode", imdecode)
    with pytest.raises(DataError) as error:
        read_image(path)
    assert str(error.value) == too_large(path, 16000, 16000)


def test_training_images_of_a_format_without_a_read_header_are_checked_decoded(tmp_path) -> None:
    path = encoded(tmp_path / "wide.tiff", np.zeros((16, 8200, 3), np.uint8))
    with pytest.raises(DataError) as error:
        read_image(path)
    assert str(error.value) == too_large(path, 8200, 16)
    assert read_image(png_stating(tmp_path / "edge.png", MAX_FRAME_SIDE, 4)).shape == (4, 8192, 3)
