"""Video file source (PyAV): sequential frames, frame-accurate seek, metadata, bad-input handling.

Seeking is by time only in FFmpeg: seek backward to a keyframe, then decode forward until the
frame displayed at the target. Targets are computed in the stream's time base with exact
`Fraction` arithmetic (a float time rounded the wrong way picks the neighbouring frame).

Frame indices count frames from the start of the stream. After a seek the index is the seek
frame's time times the average rate, rounded: exact at a constant frame rate, an estimate
for variable frame rate sources (their `time` is always the true presentation time). The
last frame the file states is the one exception: sought by decoding to the end of the
stream (the average rate puts a variable frame rate file's last frame anywhere near it).

A file that states no duration (an interrupted live recording: Matroska gets its duration
only when the recorder finishes; a raw .h264/.hevc stream) is measured once at open by a pass
over its packets, without decoding (`PacketScan`). Frames of a raw stream carry no
timestamps: they are numbered by the packets that code them, from the first packet that
decodes (a stream cut or dumped mid-GOP starts with packets that reference frames it lacks:
not frames of the video), timed at the frame rate, and sought by the byte positions of
keyframes, which the pass also finds. A packet that does not decode leaves a gap in the
numbers, as a damaged stretch leaves one in time, rather than moving every later frame.

Frames come as players show them, and `width`/`height` are that displayed size: upright
(a display-matrix rotation, as phones tag portrait video, is applied) and with square
pixels (anamorphic video, whose sample aspect ratio says its pixels are not square, as SD
PAL/NTSC and 16:9 DVD video's are, is resized to its display aspect), in the colours
players show (YUV video that states no matrix is decoded with the one they take for its
size: `yuv_matrix`).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import os
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import Colorspace

from engine.arguments import number, require
from engine.video.errors import VideoError, VideoOpenError, describe

#: Decoders FFmpeg picks for plain text files (its "tty" demuxer renders text as video).
TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})
#: A damaged container can make the demuxer fail repeatedly; give up after this many in a row.
MAX_DEMUX_ERRORS_IN_A_ROW = 64
#: Used only when a file states no frame rate at all.
FALLBACK_RATE = Fraction(25)
#: Frames that stop this much (s, and 2% of the time stated) before the duration a header
#: states mean a file cut short (an interrupted copy or recording), not rounding.
SHORT_END_SLACK_S = 0.5


#: Sample aspect ratios beyond this (or under its inverse) are damaged tags, not video
#: (anamorphic formats stay within 2): ignored, rather than frames tens of thousands wide.
MAX_PIXEL_ASPECT = 4


#: The largest frames desmoke reads: 8192 px a side, 8192x4352 pixels in all. Laparoscopic
#: video is at most 4K UHD (3840x2160) today; 8K endoscopes and medical displays exist (8K
#: UHD 7680x4320, DCI 8K 8192x4320, which codecs pad to 4352 rows), and turned upright
#: (4352x8192) that is a portrait recording of one. Beyond it a file is damaged or hostile:
#: a 746 KB PNG states 16000x16000 and took the app to 8 GB, as the panes, the full-size
#: restoration and the export each hold frame-sized buffers (at the limit 107 MB as RGB
#: bytes, four times that as floats).
MAX_FRAME_SIDE = 8192
MAX_FRAME_PIXELS = 8192 * 4352
#: FFmpeg's own bound on what a decoder allocates (its max_pixels option): every frame within
#: the limits decodes (FFmpeg counts the padded size it allocates: 128 px a side to spare),
#: none much larger ever does, whatever the file states. Its refusal does not say the size.
DECODER_OPTIONS = {
    "max_pixels": str((MAX_FRAME_SIDE + 128) * (MAX_FRAME_PIXELS // MAX_FRAME_SIDE + 128))
}
#: Bytes of a file's start read for the size an image states (a JPEG's follows its metadata:
#: EXIF, an ICC profile, rarely more than a few hundred KB).
IMAGE_HEAD_BYTES = 1 << 20


def frame_size_problem(width: int, height: int) -> str:
    """Why desmoke does not read frames of `width`x`height`, to follow a file's name; "" for
    frames within MAX_FRAME_SIDE and MAX_FRAME_PIXELS."""
    if max(width, height) > MAX_FRAME_SIDE:
        limit = f"at most {MAX_FRAME_SIDE} px a side"
    elif width * height > MAX_FRAME_PIXELS:
        most = f"{MAX_FRAME_SIDE}x{MAX_FRAME_PIXELS // MAX_FRAME_SIDE}"
        limit = f"at most {most} = {MAX_FRAME_PIXELS / 1e6:.1f} megapixels"
    else:
        return ""
    return f"{width}x{height} frames are larger than desmoke handles ({limit})"


def check_frame_size(path: str | Path, width: int, height: int) -> None:
    """VideoOpenError naming `path` where frames of `width`x`height` are too large."""
    problem = frame_size_problem(width, height)
    if problem:
        raise VideoOpenError(f"{path}: {problem}")


def stated_image_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(width, height) that a file's header states, from its bytes (`data`: the first
    IMAGE_HEAD_BYTES or more): PNG, JPEG, WebP, BMP, TIFF and YUV4MPEG; None for other
    formats, a TIFF whose directory lies beyond them, or a damaged header. FFmpeg and
    OpenCV learn a still image's size only by decoding it, and refuse one beyond their own
    limits without saying its size (FFmpeg refuses a YUV4MPEG header so, too): this tells
    it before any decoding."""
    head = bytes(memoryview(data)[:IMAGE_HEAD_BYTES])
    for magic, read_size in _SIZE_READERS:
        if head.startswith(magic):
            try:
                return read_size(head)
            except (struct.error, IndexError):
                return None
    return None


def _png_size(head: bytes) -> tuple[int, int]:
    return struct.unpack_from(">II", head, 16)  # the IHDR chunk, always first


#: JPEG start-of-frame markers (0xC4, 0xC8 and 0xCC in that range are other segments).
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """From the start-of-frame segment, found by walking the segments before it."""
    position = 2  # after the start-of-image marker
    while position + 9 <= len(head) and head[position] == 0xFF:
        marker = head[position + 1]
        if marker in _JPEG_FRAME_MARKERS:
            height, width = struct.unpack_from(">HH", head, position + 5)
            return width, height
        if marker == 0xFF:  # a fill byte
            position += 1
        elif 0xD0 <= marker <= 0xD8 or marker == 0x01:  # markers without a segment
            position += 2
        elif marker in (0xD9, 0xDA):  # the end, or the scan: no frame header before it
            return None
        else:
            position += 2 + struct.unpack_from(">H", head, position + 2)[0]
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    if head[8:12] != b"WEBP":
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":  # extended: the canvas, 24-bit sizes less one
        width, height = head[24:27], head[27:30]
        return 1 + int.from_bytes(width, "little"), 1 + int.from_bytes(height, "little")
    if chunk == b"VP8L":  # lossless: 14-bit sizes less one, packed
        (bits,) = struct.unpack_from("<I", head, 21)
        return 1 + (bits & 0x3FFF), 1 + (bits >> 14 & 0x3FFF)
    if chunk == b"VP8 ":  # lossy: the key frame's 14-bit sizes
        width, height = struct.unpack_from("<HH", head, 26)
        return width & 0x3FFF, height & 0x3FFF
    return None


def _y4m_size(head: bytes) -> tuple[int, int] | None:
    line = head.split(b"\n", 1)[0]
    width, height = re.search(rb" W(\d+)", line), re.search(rb" H(\d+)", line)
    return (int(width[1]), int(height[1])) if width and height else None


def _bmp_size(head: bytes) -> tuple[int, int] | None:
    """From the DIB header after the 14-byte file header: OS/2's 16-bit sizes, else 32-bit
    ones (a negative height: rows stored top-down)."""
    (header_size,) = struct.unpack_from("<I", head, 14)
    if header_size == 12:
        return struct.unpack_from("<HH", head, 18)
    width, height = struct.unpack_from("<ii", head, 18)
    return (abs(width), abs(height)) if header_size >= 40 else None


#: TIFF tags of the first image's size, and the field types they come in (SHORT, LONG).
_TIFF_WIDTH, _TIFF_HEIGHT = 256, 257
_TIFF_SIZE_TYPES = {3: "H", 4: "I"}


def _tiff_size(head: bytes) -> tuple[int, int] | None:
    """From the first image's directory, where it lies within `head` (writers put it after
    the pixels as often as before: a small file's is found, a huge one's is not)."""
    order = "<" if head.startswith(b"II") else ">"
    (offset,) = struct.unpack_from(order + "I", head, 4)
    (count,) = struct.unpack_from(order + "H", head, offset)
    sizes = {}
    for entry in range(offset + 2, offset + 2 + 12 * count, 12):
        tag, kind = struct.unpack_from(order + "HH", head, entry)
        if tag in (_TIFF_WIDTH, _TIFF_HEIGHT) and kind in _TIFF_SIZE_TYPES:
            (sizes[tag],) = struct.unpack_from(order + _TIFF_SIZE_TYPES[kind], head, entry + 8)
    if len(sizes) < 2:
        return None
    return sizes[_TIFF_WIDTH], sizes[_TIFF_HEIGHT]


_SIZE_READERS = (
    (b"\x89PNG\r\n\x1a\n", _png_size),
    (b"\xff\xd8", _jpeg_size),
    (b"RIFF", _webp_size),
    (b"YUV4MPEG2 ", _y4m_size),
    (b"BM", _bmp_size),
    (b"II*\0", _tiff_size),
    (b"MM\0*", _tiff_size),
)


def file_head(path: str | Path) -> bytes:
    """The first IMAGE_HEAD_BYTES of `path`; b"" where it cannot be read."""
    try:
        with open(path, "rb") as file:
            return file.read(IMAGE_HEAD_BYTES)
    except OSError:
        return b""


#: A frame that comes this much later (s) than the one before it plus a frame interval
#: follows a gap (frames that did not decode in a damaged file, or a pause): it is numbered
#: by its time, as a seek would number it, not as the next in a count that has lost its
#: place, and marked VideoFrame.after_gap.
RESYNC_S = 1.0
#: A seek's allowance (in stream ticks) for a float time a hair short of a tick.
TICK_SLACK = Fraction(1, 1000)


def missing_tail(ended_at: float, stated_end: float) -> float:
    """Seconds between the end of the last decodable frame (`ended_at`) and the end the
    file states (`stated_end`, 0 when unknown), when the gap shows a cut-short file; else 0."""
    gap = stated_end - ended_at
    return gap if gap > max(SHORT_END_SLACK_S, 0.02 * stated_end) else 0.0


def cut_short_warning(path: str | Path, ended_at: float, stated_end: float) -> str:
    """One line for a file whose frames end before its stated duration, or ""."""
    if not missing_tail(ended_at, stated_end):
        return ""
    return (
        f"{Path(path).name}: the video ends at {ended_at:.2f} s, though the file states "
        f"{stated_end:.2f} s: it looks cut short (an interrupted copy or recording?)"
    )


@dataclass(frozen=True, eq=False)
class VideoFrame:
    """One decoded frame: `rgb` is HxWx3 uint8, C-contiguous; `time` in seconds from the start."""

    index: int
    time: float
    rgb: np.ndarray
    # Frames before it are missing: it comes RESYNC_S or more after the one read before it
    # (a stretch that did not decode, or a pause in the recording). Readers that pace
    # playback go on from it rather than wait out the gap.
    after_gap: bool = False


#: FFmpeg's AVColorSpace values of a frame whose YUV matrix is not stated.
UNTAGGED_COLORSPACES = frozenset({2, 3})  # AVCOL_SPC_UNSPECIFIED, AVCOL_SPC_RESERVED
#: Untagged YUV frames at least this wide, or taller than this, are HD: players (mpv, SDL's
#: ffplay) decode them with the BT.709 matrix, smaller ones with BT.601.
HD_MIN_WIDTH, SD_MAX_HEIGHT = 1280, 576


def yuv_matrix(frame: av.VideoFrame) -> Colorspace | None:
    """The YUV matrix to decode `frame` with, where it states none: BT.709 for HD sizes,
    BT.601 below, as players guess it (swscale's own default is BT.601 at every size: HD
    colours came out up to 17 levels off, and exports, tagged BT.709, kept the shift).
    None where the frame states its matrix (PyAV's reformat then takes the frame's own tag)
    or has no chroma to decode (RGB, grey, palette)."""
    if frame.colorspace not in UNTAGGED_COLORSPACES or not _has_chroma(frame.format.name):
        return None
    hd = frame.width >= HD_MIN_WIDTH or frame.height > SD_MAX_HEIGHT
    return Colorspace.ITU709 if hd else Colorspace.ITU601


@functools.cache
def _has_chroma(pixel_format: str) -> bool:
    return any(component.is_chroma for component in av.VideoFormat(pixel_format).components)


def is_monochrome(pixel_format: str) -> bool:
    """True for grey pixel formats (gray, gray10le, ya8, monob, ...): one colour component."""
    video_format = av.VideoFormat(pixel_format)
    colours = [c for c in video_format.components if not c.is_alpha]
    return len(colours) == 1 and not video_format.has_palette  # pal8: one index, any colour


#: Chroma this close to neutral (128 of 255) is grey: an encoder's rounding.
NEUTRAL_CHROMA_SLACK = 2
#: Luma (limited range, 16-235) above which a sample is lit, and the share of a frame that
#: must be lit for its lack of colour to tell: a dark first frame (a fade-in, a recording
#: started before the scope was in, a recorder's white caption on black) has no colour in
#: a colour video too.
LIT_LUMA, LIT_SHARE = 64, 0.25


def looks_monochrome(frame: av.VideoFrame) -> bool:
    """Whether `frame` is a grey picture in a pixel format with colour: its chroma within
    NEUTRAL_CHROMA_SLACK of neutral throughout, a quarter of it lit or more (a camera's
    black-and-white mode recorded by a generic encoder, as yuv420p). One frame's check, at
    open: a conversion at most (none for yuv420p) and a pass over its planes."""
    try:
        yuv = frame.reformat(format="yuv420p")  # the frame itself where it is yuv420p already
    except (av.FFmpegError, ValueError):
        return False  # a format swscale does not convert: reading it says why
    luma, *chroma = (_plane_samples(plane) for plane in yuv.planes)
    if np.count_nonzero(luma >= LIT_LUMA) < LIT_SHARE * luma.size:
        return False
    return all(np.abs(c.astype(np.int16) - 128).max() <= NEUTRAL_CHROMA_SLACK for c in chroma)


def _plane_samples(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """An 8-bit plane's samples, rows without their padding."""
    rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[: plane.height, : plane.width]


def monochrome_kind(frame: av.VideoFrame) -> str:
    """How a video whose first frame is `frame` is monochrome, for its notice: its grey
    pixel format ("gray"), or a pixel format with colour that holds none ("yuv420p without
    colour in its first frame"); "" for colour video."""
    pixel_format = frame.format.name
    if is_monochrome(pixel_format):
        return pixel_format
    if looks_monochrome(frame):
        return f"{pixel_format} without colour in its first frame"
    return ""


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Any pixel format (grey, 10-bit, 4:4:4, ...) to HxWx3 uint8 RGB, C-contiguous; an
    untagged YUV frame decoded with the matrix players take for its size (`yuv_matrix`)."""
    rgb = frame.to_ndarray(format="rgb24", src_colorspace=yuv_matrix(frame))
    return np.ascontiguousarray(rgb)


#: Counter-clockwise quarter turns -> the cv2.rotate code that applies them.
_QUARTER_TURNS = {
    1: cv2.ROTATE_90_COUNTERCLOCKWISE,
    2: cv2.ROTATE_180,
    3: cv2.ROTATE_90_CLOCKWISE,
}


def quarter_turns(rotation: float) -> int:
    """Counter-clockwise quarter turns (0..3) nearest `rotation` degrees."""
    # The panes are axis-aligned: an odd angle (a rounded or hand-made matrix) snaps.
    return round(rotation / 90) % 4


def upright(rgb: np.ndarray, rotation: float) -> np.ndarray:
    """`rgb` as displayed, given its display-matrix `rotation` (PyAV's `frame.rotation`:
    degrees counter-clockwise, so -90 turns clockwise); C-contiguous."""
    turns = quarter_turns(rotation)
    return cv2.rotate(rgb, _QUARTER_TURNS[turns]) if turns else rgb


def display_rotation(frame: av.VideoFrame) -> float:
    """The frame's display-matrix rotation (degrees counter-clockwise); 0 with a PyAV too
    old to read it (the project asks only for av>=15)."""
    return getattr(frame, "rotation", 0) or 0


def pixel_aspect(stream: av.VideoStream) -> Fraction:
    """Width over height of the stream's pixels (its sample aspect ratio, as players take it:
    FFmpeg's guess, the container's tag else the codec's); 1 when unknown or implausible."""
    sar = stream.sample_aspect_ratio  # None when unknown (0/1 or 0/0); PyAV frames lack one
    if sar and 1 / MAX_PIXEL_ASPECT <= sar <= MAX_PIXEL_ASPECT:
        return Fraction(sar)
    return Fraction(1)


def square_width(width: int, sar: Fraction) -> int:
    """Width in square pixels of a row of `width` pixels of aspect `sar` (height kept)."""
    return max(1, round(width * sar))


def square_pixels(rgb: np.ndarray, sar: Fraction) -> np.ndarray:
    """`rgb` as coded (pixels of aspect `sar`) resized to square pixels: the height kept,
    the width scaled by `sar`. No copy where that changes nothing (`sar` 1)."""
    height, width = rgb.shape[:2]
    shown = square_width(width, sar)
    if shown == width:
        return rgb
    # Shrinking, INTER_AREA averages the columns it merges (no aliasing). Stretching,
    # INTER_CUBIC: edges as sharp as players show them (FFmpeg scales bicubic by default),
    # where linear blurs them, at the same cost in OpenCV (~0.3-0.6 ms at 720x576).
    how = cv2.INTER_AREA if shown < width else cv2.INTER_CUBIC
    return cv2.resize(rgb, (shown, height), interpolation=how)


def displayed_rgb(frame: av.VideoFrame, sar: Fraction) -> np.ndarray:
    """`frame` as players show it: RGB, square pixels (`sar`: the stream's pixel aspect),
    upright."""
    return upright(square_pixels(to_rgb(frame), sar), display_rotation(frame))


def displayed_size(frame: av.VideoFrame, sar: Fraction = Fraction(1)) -> tuple[int, int]:
    """(width, height) of `frame` (pixels of aspect `sar`) with square pixels, upright."""
    width = square_width(frame.width, sar)
    if quarter_turns(display_rotation(frame)) % 2:
        return frame.height, width
    return width, frame.height


def demuxed_packets(
    container: av.container.InputContainer, stream: av.VideoStream, on_error
) -> Iterator[av.Packet]:
    """Packets of `stream`; calls `on_error()` for each demuxer error, then resyncs (gives up
    after MAX_DEMUX_ERRORS_IN_A_ROW in a row)."""
    errors_in_a_row = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.FFmpegError, OSError):
            errors_in_a_row += 1
            if errors_in_a_row > MAX_DEMUX_ERRORS_IN_A_ROW:
                return
            on_error()
            packets = container.demux(stream)  # the demuxer carries on from where it failed
            continue
        errors_in_a_row = 0
        yield packet


def decoded_frames(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    on_skip,
    number_from: int | None = None,
) -> Iterator[av.VideoFrame]:
    """Frames of `stream` in display order; calls `on_skip()` for each packet that fails to
    decode, each frame the decoder flags corrupt, and each demuxer error (then resyncs).

    number_from: packets (of a raw stream, which carry no pts) get pts number_from, +1, ...
    in decoding order; the decoder hands each to the frame the packet codes.
    """
    numbers = None if number_from is None else itertools.count(number_from)
    for packet in demuxed_packets(container, stream, on_skip):
        if numbers is not None and packet.size:
            packet.pts = next(numbers)
        try:
            frames = packet.decode()
        except (av.FFmpegError, OSError):
            on_skip()
            continue
        for frame in frames:
            if frame.is_corrupt:
                on_skip()
                continue
            yield frame


@dataclass(frozen=True)
class PacketScan:
    """A pass over a video stream's packets, without decoding.

    frames: packets that carry data, one a frame. end: stream ticks where the last frame
    ends (the latest pts plus its duration); None when packets carry no timestamps.
    keyframes: (packet number, byte position) of each keyframe of a stream without
    timestamps, frame 0 at byte 0 first. The packet number is the count of frames before it
    in decoding order, which all show before it; in an open GOP the frames just after it
    (its leading frames) show before it too.
    """

    frames: int
    end: int | None
    keyframes: tuple[tuple[int, int], ...]


def scan_packets(path: Path, stream_index: int, frame_ticks: int) -> PacketScan:
    """Pass over the packets of stream `stream_index` of `path` (a container of its own: the
    source's stays at its first frame). `frame_ticks`: the duration of a packet that states
    none. Demuxer errors are skipped, as in decoding."""
    frames, end, keyframes = 0, None, [(0, 0)]
    with _open_container(path) as container:
        stream = container.streams[stream_index]
        for packet in demuxed_packets(container, stream, lambda: None):
            if not packet.size:
                continue
            if packet.pts is not None:
                ends = packet.pts + (packet.duration or frame_ticks)
                end = ends if end is None else max(end, ends)
            elif frames and packet.is_keyframe and packet.pos is not None:
                keyframes.append((frames, packet.pos))  # only a raw stream seeks by byte
            frames += 1
    return PacketScan(frames, end, tuple(keyframes))


def _open_container(path: Path) -> av.container.InputContainer:
    # os.path, not Path: on a name too long for the file system Python 3.11's Path raises.
    if not os.path.exists(path):
        raise VideoOpenError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise VideoOpenError(f"{path}: not a file")
    try:
        # metadata_errors="replace": damaged tags must not stop the video from opening.
        # DECODER_OPTIONS bound the frame FFmpeg decodes as it opens the file, to learn what
        # its header does not state (a still image's size).
        return av.open(str(path), metadata_errors="replace", options=DECODER_OPTIONS)
    except (av.FFmpegError, OSError, ValueError, IndexError) as error:
        stated = stated_image_size(file_head(path))
        if stated:  # FFmpeg refuses a size beyond its own limit without saying it (y4m)
            check_frame_size(path, *stated)
        raise VideoOpenError(f"{path}: not a readable video ({describe(error)})") from error


def video_streams(container: av.container.InputContainer) -> list[av.VideoStream]:
    """The container's video streams, cover art (an MP3's or MKV's attached picture) left out:
    the ones `video_stream` numbers."""
    return [s for s in container.streams.video if not _is_cover_art(s)]


class MissingVideoStream(VideoOpenError):
    """A video stream number the file does not have. Its line is in the API's words
    (`video_stream`, from 0); a front end with an option of its own words it from `path`,
    `number` (from 0) and `count` (the video streams the file has)."""

    def __init__(self, path: Path, number: int, count: int) -> None:
        self.path, self.number, self.count = path, number, count
        super().__init__(
            f"{path}: video_stream={number} asks for video stream {number + 1}, but the file "
            f"has {_streams(count)} (video_stream 0 to {count - 1})"
        )


def _streams(count: int) -> str:
    return "1 video stream" if count == 1 else f"{count} video streams"


def pick_video_stream(
    path: Path, container: av.container.InputContainer, number: int
) -> av.VideoStream:
    """Video stream `number` (0: the first; cover art not counted)."""
    streams = video_streams(container)
    if not streams:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
        raise VideoOpenError(f"{path}: no video stream (it contains {kinds})")
    if number >= len(streams):
        raise MissingVideoStream(path, number, len(streams))
    stream = streams[number]
    if container.format.name == "tty" or stream.codec_context.name in TEXT_CODECS:
        raise VideoOpenError(f"{path}: not a video (FFmpeg reads it as a text file)")
    return stream


@dataclass(frozen=True)
class StreamChoice:
    """One video stream of a file, as a front end lists them to choose from: its size with
    square pixels (as coded: a display rotation shows only once a frame decodes) and its
    average frame rate."""

    width: int
    height: int
    fps: float


def stream_choice(stream: av.VideoStream) -> StreamChoice:
    """What `stream` is, from its header (nothing decoded)."""
    context = stream.codec_context
    width = square_width(context.width, pixel_aspect(stream)) if context.width else 0
    return StreamChoice(width, context.height, float(_frame_rate(stream)))


def _finite_time(name: str, value: object) -> float:
    """`value` (seconds) as a float; ValueError naming `name` for NaN or an infinity: a NaN
    `until` compared false with every frame's time and read() decoded the whole file."""
    seconds = number(name, value)
    require(math.isfinite(seconds), name, "a finite time in seconds", value)
    return seconds


def _check_stream_number(video_stream: object) -> int:
    if isinstance(video_stream, bool) or not isinstance(video_stream, int) or video_stream < 0:
        raise ValueError(f"video_stream must be an int, 0 or more, got {video_stream!r}")
    return video_stream


def _is_cover_art(stream: av.VideoStream) -> bool:
    attached = getattr(getattr(av.stream, "Disposition", None), "attached_pic", 0)
    return bool(attached and stream.disposition & attached)


def _frame_rate(stream: av.VideoStream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    return FALLBACK_RATE


def last_frame_before(
    seek_frame: Callable[[int], VideoFrame | None], index: int
) -> VideoFrame | None:
    """The last frame that decodes before frame `index` (which does not), or None, by
    `seek_frame`; the source reads on after it. A bisection: a dozen seeks, however far the
    end is (stepping back frame by frame took minutes, silently, on a file cut to a third);
    the first probe is the frame before, as a frame count that is an estimate is most often
    just one over."""
    low, high = -1, index  # frames up to `low` decode (none known yet), `high` does not
    frame, positioned = None, False  # positioned: the source reads on after `frame`
    probe = index - 1
    while high - low > 1:
        found = seek_frame(probe)
        positioned = found is not None
        if positioned:
            low, frame = probe, found
        else:
            high = probe
        probe = (low + high) // 2
    if frame is None or positioned:
        return frame
    return seek_frame(low)


class FileSource:
    """Decodes a video file frame by frame (threaded); context manager.

    Attributes: path, width, height, fps (average), duration (s; measured at open when the
    file states none; video_duration: what the video stream states, 0 when nothing),
    frame_count (exact when the container states it, or counted in a raw stream, from its
    first packet that decodes: `frame_count_exact`), codec, pixel_format, has_audio,
    is_live (False), skipped_frames (undecodable packets / corrupt frames skipped so far),
    last_index and end_time (where the frames that decode end, once found), video_stream
    (which video stream is shown: 0 the first, cover art not counted; the argument picks
    another: MissingVideoStream where the file has no such stream), stream_choices (a
    StreamChoice for each video stream, to choose from), notices (one-line warnings about
    the file for the user: several video streams, a monochrome video, whether its pixel
    format is grey or its first frame holds no colour; `notices_saying` words the first
    with a front end's way to switch streams).

    A file can end before the frames it states: cut short (an interrupted copy or
    recording), or with a frame count that is an estimate. seek_frame to a stated frame past
    its end shows its last frame instead, found once and remembered.

    Frames beyond MAX_FRAME_SIDE or MAX_FRAME_PIXELS are refused at open (VideoOpenError
    saying their size): from the size the file states, before decoding, where it states one.
    """

    is_live = False

    def __init__(self, path: str | Path, video_stream: int = 0) -> None:
        self.path = Path(path)
        self.video_stream = _check_stream_number(video_stream)
        self.skipped_frames = 0
        self._closed = False
        self._unstamped = False  # known from the first frame
        self._container = _open_container(self.path)
        try:
            self._stream = pick_video_stream(self.path, self._container, self.video_stream)
            self._stream.thread_type = "AUTO"
            self._stream.codec_context.options = dict(DECODER_OPTIONS)
            self._sar = pixel_aspect(self._stream)
            stated = self._stated_size()
            if stated:
                check_frame_size(self.path, *stated)  # before a frame of it is decoded
            self._dts_clock = self._container.format.name == "avi"
            self._time_base = Fraction(self._stream.time_base or Fraction(1, 1000))
            first = self._first_frame()
            check_frame_size(self.path, *displayed_size(first, self._sar))
            self._origin = self._origin_of(first)
            self._read_metadata(first)
            self.stream_choices = self._video_streams_found()
            self._monochrome = monochrome_kind(first)
            self.notices = self.notices_saying("")
        except BaseException:
            self._container.close()
            raise
        self._pending: av.VideoFrame | None = first
        self._next_index = 0
        self._fresh = True
        # (index, time) of the frame read() goes on after; None after a seek that found none.
        self._shown: tuple[int, float] | None = None
        # (index, time) of the last frame that decodes, once a read or a seek has met it.
        self._end: tuple[int, float] | None = None

    def _stated_size(self) -> tuple[int, int] | None:
        """The frame size the file states before decoding (with square pixels), or None: the
        stream's header, else the image's own (FFmpeg learns a still image's size only by
        decoding it, which DECODER_OPTIONS refuses for one too large, without its size)."""
        context = self._stream.codec_context
        if context.width and context.height:
            return square_width(context.width, self._sar), context.height
        return stated_image_size(file_head(self.path))

    def _first_frame(self) -> av.VideoFrame:
        """The first frame that decodes. A raw stream's frames carry no timestamps: decoded
        again with its packets numbered (as seeks number them), as frames are numbered by
        packet from the one that codes this frame; `_lead_packets` come before it (a stream
        cut mid-GOP: they reference frames it lacks)."""
        self._frames = self._restart_decoding()
        first = next(self._frames, None)
        if first is not None and self._ts(first) is None:
            self._unstamped = True
            self.skipped_frames = 0  # the packets before it are skipped again
            self._restart_at(0, number_from=0, unsupported_byte_offset=True)
            first = next(self._frames, None)
        if first is None:
            # Where no size is stated, the frames may be ones DECODER_OPTIONS refused, silently.
            unsized = not self._stream.codec_context.width
            why = " (damaged, or its frames are too large for desmoke)" if unsized else ""
            raise VideoOpenError(f"{self.path}: the video stream has no decodable frame{why}")
        self._lead_packets = first.pts if self._unstamped else 0
        return first

    def _origin_of(self, first: av.VideoFrame) -> int:
        """Stream ticks of time 0: the stream's start, unless its first frame comes earlier
        (the first decodable frame comes later when the first ones are damaged)."""
        if self._dts_clock and first.dts is not None:
            return first.dts  # carries the decoder's delay, which every later frame shares
        starts = [t for t in (self._stream.start_time, self._ts(first)) if t is not None]
        return min(starts, default=0)

    def _read_metadata(self, first: av.VideoFrame) -> None:
        stream, container = self._stream, self._container
        self.width, self.height = displayed_size(first, self._sar)
        self.rate = _frame_rate(stream)
        self.fps = float(self.rate)
        # What the video stream itself states (0: only the container's, which covers every
        # stream): the end a cut-short file is told by.
        self.video_duration = float(stream.duration * self._time_base) if stream.duration else 0.0
        # Stream ticks where the last frame ends, as the video stream states it (from time
        # 0, as frame times count: an AVI's dts clock starts at the decoder's delay) or the
        # scan measures it; None when unknown (only the container's duration, which covers
        # every stream). The search for the last frame starts there: see _seek_last.
        self._end_ticks = self._origin + stream.duration if stream.duration else None
        self.duration = self.video_duration or self._container_duration()
        self.frame_count_exact = bool(stream.frames)
        self.frame_count = stream.frames
        # (frame number, byte position) of the keyframes to seek a raw stream by, and the
        # numbers of those seen to have no leading frames (decoding can start at them).
        self._keyframes: tuple[tuple[int, int], ...] = ()
        self._closed_keyframes: set[int] = set()
        if self._unstamped or not self.duration:
            self._measure()
        self.frame_count = self.frame_count or max(1, round(self.duration * self.fps))
        self.codec = stream.codec_context.name
        self.pixel_format = stream.codec_context.pix_fmt or first.format.name
        self.has_audio = bool(container.streams.audio)

    def _container_duration(self) -> float:
        """Seconds from time 0 (the first frame) to where the container states it ends; 0
        when it states no duration. FFmpeg's duration counts from the container's start,
        except Matroska's (and WebM's): FFmpeg reads its header's duration as is, and its
        own muxer writes the end there, the last timestamp, not counting from the first (a
        capture recorded with -copyts, from 3600 s, "lasts" 3600.48 s)."""
        container = self._container
        if not container.duration:
            return 0.0
        stated = Fraction(container.duration, av.time_base)
        start = Fraction(container.start_time or 0, av.time_base)
        # A stated end before the start is a Matroska writer's that wrote the length.
        states_the_end = "matroska" in container.format.name.split(",") and stated > start
        ends_at = stated if states_the_end else start + stated
        return max(0.0, float(ends_at - self._zero_ticks() * self._time_base))

    def _zero_ticks(self) -> int:
        """Time 0 in the stream's presentation timestamps."""
        if self._dts_clock and self._stream.start_time is not None:
            return self._stream.start_time  # the dts origin carries the decoder's delay
        return self._origin

    def _video_streams_found(self) -> tuple[StreamChoice, ...]:
        """The file's video streams to choose from; the one shown as it shows (upright)."""
        choices = [stream_choice(stream) for stream in video_streams(self._container)]
        choices[self.video_stream] = StreamChoice(self.width, self.height, self.fps)
        return tuple(choices)

    def notices_saying(self, how_to_switch: str, desmoking: bool = True) -> tuple[str, ...]:
        """`notices`, the one about several video streams (if any) saying `how_to_switch`
        to another: a front end's menu or option (the engine has neither). Streams are
        numbered from 1 there, as users count. Without `desmoking` (a tool that reads the
        file for another purpose, e.g. synthesising smoke over it) the advice about
        desmoking a monochrome video is left out."""
        name, notices = self.path.name, []
        count = len(self.stream_choices)
        if count > 1:
            notice = (
                f"{name}: the file has {count} video streams (a stereo recording?): desmoke "
                f"uses video stream {self.video_stream + 1} of {count}; the others are not used"
            )
            notices.append(f"{notice} ({how_to_switch})" if how_to_switch else notice)
        if self._monochrome and desmoking:
            notices.append(
                f"{name}: a monochrome video ({self._monochrome}): desmoke's models learned "
                "on colour video and may darken it; judge the result against the original pane"
            )
        return tuple(notices)

    def _measure(self) -> None:
        """Duration from a pass over the packets (no decoding: a tenth of a second for ten
        minutes of 720p); a raw stream's frame count and keyframes too (a duration a raw
        stream states is a guess from its bit rate)."""
        scan = scan_packets(self.path, self._stream.index, self._interval_ticks())
        if self._unstamped:
            self.frame_count = scan.frames - self._lead_packets
            self.frame_count_exact = True
            self.duration = self.frame_count / self.fps
            self._keyframes = scan.keyframes
        elif scan.end is not None:
            self.duration = max(0.0, float((scan.end - self._origin) * self._time_base))
            self._end_ticks = scan.end

    def _count_skip(self) -> None:
        self.skipped_frames += 1

    def _restart_decoding(self, number_from: int | None = None) -> Iterator[av.VideoFrame]:
        frames = decoded_frames(self._container, self._stream, self._count_skip, number_from)
        return self._fill_dts(frames) if self._dts_clock else frames

    def _fill_dts(self, frames: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        """Frames flushed out of the decoder at the end carry no dts: continue the count."""
        last = None
        for frame in frames:
            if frame.dts is None and last is not None:
                frame.dts = last + 1
            last = frame.dts
            yield frame

    def _ts(self, frame: av.VideoFrame) -> int | None:
        """Presentation timestamp. AVI stores no pts: FFmpeg's guess is out of order with
        B-frames, while the packet dts passed through the decoder counts frames in order.
        A raw stream has none (a seek numbers its packets, not timestamps)."""
        if self._unstamped:
            return None
        return frame.dts if self._dts_clock else frame.pts

    def _time_of(self, frame: av.VideoFrame, index: int) -> float:
        ts = self._ts(frame)
        if ts is None:
            return index / self.fps
        return float((ts - self._origin) * self._time_base)

    def _index_of(self, frame: av.VideoFrame) -> int:
        if self._unstamped:
            return max(self._next_index, self._packet_floor(frame))
        return round((self._ts(frame) - self._origin) * self._time_base * self.rate)

    def _packet_floor(self, frame: av.VideoFrame) -> int:
        """The least index a raw stream's frame can have, by the number of the packet that
        codes it (its pts: `decoded_frames`): that number, where the decoder shows frames as
        it decodes them; else the number of the last keyframe before it (a keyframe's is the
        index of the first frame shown from it on: its first leading frame in an open GOP),
        as a B-frame's packet number is not where it shows. Less `_lead_packets`."""
        number = frame.pts
        if self._stream.codec_context.has_b_frames:  # frames shown out of decoding order
            anchor = bisect.bisect_right(self._keyframes, (number, math.inf)) - 1
            number = max(self._keyframes[anchor][0], self._lead_packets)
        return number - self._lead_packets

    def _wrap(self, frame: av.VideoFrame, index: int, after_gap: bool = False) -> VideoFrame:
        self._pass(frame, index)
        # Here, not in to_rgb: CaptureSource shares to_rgb but takes its size from the device.
        # Square pixels first: the sample aspect ratio is of the coded frame's x axis.
        rgb = displayed_rgb(frame, self._sar)
        return VideoFrame(index=index, time=self._shown[1], rgb=rgb, after_gap=after_gap)

    def _pass(self, frame: av.VideoFrame, index: int) -> None:
        """Go past `frame`, numbered `index`: read() goes on after it."""
        self._next_index = index + 1
        self._shown = (index, self._time_of(frame, index))

    @property
    def last_index(self) -> int | None:
        """Index of the last frame that decodes, once found (a read that reached the end, or a
        seek_frame past it); None while unknown."""
        return None if self._end is None else self._end[0]

    @property
    def end_time(self) -> float | None:
        """When the frames that decode end (s): the last one's time plus a frame interval at
        the average rate, once found (as `last_index`); None while unknown."""
        return None if self._end is None else self._end[1] + 1 / self.fps

    def _check_open(self) -> None:
        # Decoding from a closed container crashes the process (a segfault inside PyAV).
        if self._closed:
            raise VideoError(f"{self.path}: the source is closed")

    def read(self, until: float | None = None) -> VideoFrame | None:
        """The next frame, or None at the end; VideoError once the source is closed.

        until (s): a player behind its clock, at `until`. Where frames after the next one
        start by then too, the last of them (the frame displayed then) instead: the frames
        before it are decoded (later ones may reference them) and numbered, read() goes on
        after them as after frames it returned, but they are not converted to RGB. Never
        past a frame after a gap (`after_gap`): read() returns it.
        """
        self._check_open()
        if until is not None:
            until = _finite_time("until", until)
        self._fresh = False
        frame = self._next_decoded()
        if frame is None:
            if self._shown is not None:  # read on from a frame, and none follows: the end
                self._end = self._shown
            return None
        index, after_gap = self._number(frame)
        if until is not None and not after_gap:
            frame, index = self._drop_until(frame, index, until)
        return self._wrap(frame, index, after_gap)

    def _next_decoded(self) -> av.VideoFrame | None:
        frame = self._pending if self._pending is not None else next(self._frames, None)
        self._pending = None
        return frame

    def _number(self, frame: av.VideoFrame) -> tuple[int, bool]:
        """(index, after_gap) of `frame`, read next."""
        index = self._index_of(frame)
        after_gap = bool(self._next_index) and index - self._next_index > self.rate * RESYNC_S
        if self._next_index and not after_gap and not self._unstamped:
            # In sequence: the count, not a rounded time, numbers it (a raw stream's frames
            # are counted by _index_of, which skips the numbers of packets that did not decode).
            index = self._next_index
        return index, after_gap

    def _drop_until(
        self, frame: av.VideoFrame, index: int, until: float
    ) -> tuple[av.VideoFrame, int]:
        """The last frame from `frame` (numbered `index`) on that starts at or before `until`
        (s), and its index; the ones before it passed unconverted. The one after it, decoded
        to tell, stays pending; so does a frame after a gap."""
        while True:
            later = self._pending = next(self._frames, None)
            if later is None:
                return frame, index
            self._pass(frame, index)  # numbered from here, as read() numbers what follows
            later_index, after_gap = self._number(later)
            if after_gap or self._time_of(later, later_index) > until:
                return frame, index
            frame, index, self._pending = later, later_index, None

    def frames(self, start: float = 0.0, end: float | None = None) -> Iterator[VideoFrame]:
        """Frames from the one displayed at `start` to the last one before `end` (seconds;
        None or infinity: to the end of the file)."""
        start = _finite_time("start", start)
        if end is not None:
            require(not math.isnan(number("end", end)), "end", "a time in seconds", end)
        frame = self.read() if start <= 0 and self._fresh else self.seek(start)
        while frame is not None and (end is None or frame.time < end):
            yield frame
            frame = self.read()

    def seek(self, time: float) -> VideoFrame | None:
        """The frame displayed at `time` (s), or None past the end; read() continues after it."""
        # The tick at or before `time` (the frame shown then began at or before it; rounding
        # to the nearest skipped it where a tick is a frame, as in a 2 fps AVI), with
        # TICK_SLACK to spare: a float time is never exact, and 0.12 s as a float is a hair
        # under 3 ticks of 1/25 s.
        time = _finite_time("time", time)
        ticks = math.floor(Fraction(max(0.0, time)) / self._time_base + TICK_SLACK)
        if self._unstamped:  # frames timed by their count: the one shown at that time
            return self._seek_index(int(ticks * self._time_base * self.rate))
        return self._seek_pts(self._origin + ticks)

    def seek_frame(self, index: int) -> VideoFrame | None:
        """Frame number `index` (at the average rate; the last, `frame_count` - 1, is the
        last that decodes, in a variable frame rate file too); read() continues after it.

        Past the last frame that decodes, for an index below `frame_count` (a file cut short,
        or a frame count that is an estimate): that last frame, found by a dozen seeks the
        first time (`last_index` then tells it), at once afterwards. None past `frame_count`,
        or where no frame decodes at or before `index`.
        """
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}")
        stated = index < self.frame_count
        known_end = self._end is not None and stated
        target = min(index, self._end[0]) if known_end else index  # straight to a known end
        frame = self._seek_index(target)
        if frame is None and stated and target > 0:
            frame = last_frame_before(self._seek_index, target)
            if frame is not None:
                self._end = (frame.index, frame.time)
        return frame

    def _seek_index(self, index: int) -> VideoFrame | None:
        if self._unstamped:
            return self._seek_counting(index)
        # Aim at the middle of the frame's interval: robust to pts rounded by a tick or two.
        ticks = self._origin + int(Fraction(2 * index + 1, 2) / self.rate / self._time_base)
        if index == self.frame_count - 1:
            return self._seek_last(index, ticks if self._end_ticks is None else self._end_ticks)
        return self._seek_pts(ticks)

    def _seek_pts(self, target: int) -> VideoFrame | None:
        """Seek to the keyframe before `target` (stream ticks), decode forward to it."""
        shown = self._seek_and_decode(target, self._decode_until)
        return None if shown is None else self._wrap(shown, self._index_of(shown))

    def _seek_last(self, index: int, target: int) -> VideoFrame | None:
        """The last frame that decodes, numbered `index` (the last the file states; by its
        time where the file is cut short), decoded from the keyframe before `target` (stream
        ticks: where the stream states it ends) to the end of the stream; its end is then
        known (`last_index`). Neither the average rate nor a stated duration tells where a
        variable frame rate file's last frame is (End showed the one before it)."""
        shown = self._seek_and_decode(target, lambda _target: self._decode_to_the_end())
        if shown is None:
            return None
        cut_short = missing_tail(self._time_of(shown, index) + 1 / self.fps, self.duration)
        frame = self._wrap(shown, self._index_of(shown) if cut_short else index)
        self._end = (frame.index, frame.time)
        return frame

    def _seek_and_decode(
        self, target: int, decode: Callable[[int], tuple[av.VideoFrame | None, str]]
    ) -> av.VideoFrame | None:
        """Seek to the keyframe before `target` (stream ticks), then `decode(target)` (as
        `_decode_until`): the frame it shows, or None (read() then finds none)."""
        self._check_open()
        self._fresh = False
        margin = 0
        floor = min(self._origin, 0)  # seeking to a negative time fails (EPERM)
        while True:
            start = max(target - margin, floor)
            self._restart_at(start, stream=self._stream, backward=True)
            shown, state = decode(target)
            if state in ("found", "past_end"):
                break
            if start <= floor:  # cannot start earlier than this
                if state == "late":  # the target is before the first frame: show that one
                    shown, self._pending = self._pending, None
                break
            # Index-less containers (MPEG-TS) can land after the target's keyframe: the
            # decoder then shows nothing until a later keyframe. Start earlier.
            margin = max(2 * margin, int(1 / self._time_base))
        if shown is None:
            self._shown = None  # the decoder is past the end: a read now finds no frame
        return shown

    def _seek_counting(self, index: int) -> VideoFrame | None:
        """Frame `index` of a raw stream (no timestamps), from the last keyframe at or before
        it (byte positions from the scan), numbered as read() numbers it. Where no frame
        from that keyframe on decodes up to `index` (a damaged keyframe), the frame shown
        then: the last one before the keyframe."""
        self._check_open()
        self._fresh = False
        while True:
            key_number = self._restart_for(index)
            shown, state = self._count_until(index, key_number)
            if state != "late" or key_number <= self._lead_packets:
                break
            index = key_number - self._lead_packets - 1
        if state != "found":
            self._shown = None  # the decoder is past the end: a read now finds no frame
            return None
        return self._wrap(*shown)

    def _restart_for(self, index: int) -> int:
        """Restart decoding a raw stream for frame `index`; the packet number of the last
        keyframe at or before it. Decoding starts at the keyframe before that one, so that
        the decoder shows its leading frames too (an open GOP's: a decoder starting at it
        drops them); at the keyframe itself once it is seen to have none (closed GOPs:
        every one)."""
        target = index + self._lead_packets
        anchor = max(0, bisect.bisect_right(self._keyframes, (target, math.inf)) - 1)
        key_number = self._keyframes[anchor][0]
        start = anchor if key_number in self._closed_keyframes else max(0, anchor - 1)
        number, position = self._keyframes[start]
        self._restart_at(position, number_from=number, unsupported_byte_offset=True)
        return key_number

    def _count_until(
        self, index: int, key_number: int
    ) -> tuple[tuple[av.VideoFrame, int] | None, str]:
        """Decode a raw stream to the last frame numbered `index` or less, keep the next one
        pending. Frames count from the first one of packet `key_number` (a keyframe) or a
        later one, numbered as read() numbers them: those before are decoded only as the
        references of its leading frames. State as in `_decode_until`."""
        shown = None
        self._next_index = 0  # the count starts again, from the keyframe's number
        for frame in itertools.dropwhile(lambda f: f.pts < key_number, self._frames):
            if shown is None and frame.pts == key_number:
                self._closed_keyframes.add(key_number)  # shown first: no leading frames
            number = self._index_of(frame)
            if number > index:
                self._pending = frame
                return shown, "found" if shown is not None else "late"
            shown, self._next_index = (frame, number), number + 1
        if shown is None:
            return None, "empty"
        return shown, "found" if shown[1] == index else "past_end"

    def _restart_at(self, offset: int, number_from: int | None = None, **how: object) -> None:
        """Seek the container (`how`: PyAV's seek options); decoding restarts from there,
        numbering packets from `number_from` (a raw stream's) when given."""
        try:
            self._container.seek(offset, **how)
        except (av.FFmpegError, OSError) as error:
            raise VideoError(f"{self.path}: cannot seek ({describe(error)})") from error
        self._frames = self._restart_decoding(number_from)
        self._pending = None

    def _decode_until(self, target: int) -> tuple[av.VideoFrame | None, str]:
        """Decode to the last frame with pts <= target and keep the next one pending.

        State: "found"; "late" (the first frame is after the target, now pending);
        "past_end" (the target is after the end of the last frame); "empty" (no frame).
        """
        shown = None
        for frame in self._frames:
            ts = self._ts(frame)
            if ts is None:
                continue
            if ts > target:
                self._pending = frame
                return shown, "found" if shown is not None else "late"
            shown = frame
        if shown is None:
            return None, "empty"
        if target >= self._ts(shown) + self._frame_ticks(shown):
            return None, "past_end"
        return shown, "found"

    def _decode_to_the_end(self) -> tuple[av.VideoFrame | None, str]:
        """Decode to the last frame; state "found", or "empty" (no frame)."""
        shown = None
        for frame in self._frames:
            if self._ts(frame) is not None:
                shown = frame
        return shown, "empty" if shown is None else "found"

    def _frame_ticks(self, frame: av.VideoFrame) -> int:
        return frame.duration or self._interval_ticks()

    def _interval_ticks(self) -> int:
        """A frame interval at the average rate, in stream ticks."""
        return max(1, round(1 / (self.rate * self._time_base)))

    def close(self) -> None:
        """Release the file; closing again does nothing. Reading or seeking afterwards
        raises VideoError."""
        if self._closed:
            return
        self._closed = True
        self._pending = None
        # The decoding generator refers back to the source (its skip counter): dropped here,
        # or the pair, FFmpeg's decoder threads and their frames included, would wait for
        # the garbage collector's next full pass (a hundred threads after 300 files opened).
        frames, self._frames = self._frames, iter(())
        getattr(frames, "close", lambda: None)()
        self._container.close()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"FileSource({str(self.path)!r}, {self.width}x{self.height}, {self.fps:.3f} fps, "
            f"{self.duration:.2f} s, {self.codec})"
        )
