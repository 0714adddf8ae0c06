"""Small generated clips for tests: every frame encodes its own index in big grey blocks.

The code is a grid of 5 x 2 cells (10 bits, frames 0..1023), each cell dark (bit 0) or
light (bit 1), big enough to survive H.264 compression, chroma subsampling and odd sizes
down to ~20x10 px. `read_index` decodes it from an RGB frame of any size.

Plain functions, no pytest: the video, pipeline and app tests all reuse them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CODE_COLUMNS = 5
CODE_ROWS = 2
CODE_BITS = CODE_COLUMNS * CODE_ROWS
DARK, LIGHT = 32, 224


def _cells(height: int, width: int) -> list[tuple[slice, slice]]:
    """Pixel ranges of the code cells, most significant bit first."""
    ys = np.linspace(0, height, CODE_ROWS + 1).round().astype(int)
    xs = np.linspace(0, width, CODE_COLUMNS + 1).round().astype(int)
    return [
        (slice(ys[r], ys[r + 1]), slice(xs[c], xs[c + 1]))
        for r in range(CODE_ROWS)
        for c in range(CODE_COLUMNS)
    ]


def index_frame(index: int, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 frame (size = (w, h)) whose cells spell `index` in binary."""
    if not 0 <= index < 2**CODE_BITS:
        raise ValueError(f"index {index} does not fit in {CODE_BITS} bits")
    width, height = size
    rgb = np.full((height, width, 3), DARK, np.uint8)
    for bit, (rows, cols) in enumerate(_cells(height, width)):
        if index >> (CODE_BITS - 1 - bit) & 1:
            rgb[rows, cols] = LIGHT
    return rgb


def read_index(rgb: np.ndarray) -> int:
    """Index spelled by a frame made with `index_frame` (after lossy coding too)."""
    height, width = rgb.shape[:2]
    value = 0
    for rows, cols in _cells(height, width):
        # Sample the middle half of the cell: its edges bleed under compression.
        r0, r1 = rows.start, rows.stop
        c0, c1 = cols.start, cols.stop
        rq, cq = (r1 - r0) // 4, (c1 - c0) // 4
        centre = rgb[r0 + rq : max(r1 - rq, r0 + rq + 1), c0 + cq : max(c1 - cq, c0 + cq + 1)]
        value = value << 1 | int(centre.mean() > (DARK + LIGHT) / 2)
    return value


def coded_for_rotation(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """The frame to encode so that a player applying a display `rotation` (degrees
    counter-clockwise, FFmpeg's and PyAV's sign) shows `rgb`: turned the other way."""
    return np.ascontiguousarray(np.rot90(rgb, -(rotation // 90)))


def _video_stream(
    out: av.container.OutputContainer,
    codec: str,
    rate: Fraction,
    size: tuple[int, int],
    pix_fmt: str,
    gop: int,
    bframes: int,
    open_gop: bool = False,
) -> av.VideoStream:
    stream = out.add_stream(codec, rate=rate)
    stream.width, stream.height = size
    stream.pix_fmt = pix_fmt
    if codec == "libx264":
        # Fixed GOP with B-frames, no scene-cut keyframes: seeking must decode forward.
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"
        stream.options = {
            "x264-params": params + (":open-gop=1" if open_gop else ""),
            "crf": "18",
            "preset": "veryfast",
        }
    else:
        stream.codec_context.gop_size = gop
    return stream


def _audio_stream(out: av.container.OutputContainer) -> av.AudioStream:
    stream = out.add_stream("aac", rate=48000)
    stream.layout = "mono"
    return stream


def _mux_tone(out: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    """A 440 Hz tone of `seconds`, in 1024-sample frames."""
    total = int(seconds * 48000)
    t = np.arange(total) / 48000
    samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, total, 1024):
        chunk = samples[start : start + 1024][None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = 48000
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def make_index_clip(
    path: str | Path,
    n_frames: int = 48,
    size: tuple[int, int] = (160, 96),
    fps: float = 25,
    gop: int = 12,
    bframes: int = 2,
    audio: bool = False,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    live: bool = False,
    open_gop: bool = False,
    sample_aspect_ratio: Fraction | None = None,
) -> Path:
    """Clip whose frame i shows index i; container from the suffix (.mp4 gets +faststart;
    .h264 is a raw stream: no container, no timestamps).

    Grayscale: codec="ffv1", pix_fmt="gray" in .mkv; 10-bit: pix_fmt="yuv420p10le";
    odd sizes need a codec/pix_fmt without chroma subsampling (e.g. libx264 yuv444p).
    `rotation` (a multiple of 90, counter-clockwise) tags the stream with a display matrix,
    as phones do for portrait video (MP4, MOV, MKV): the index reads right only once the
    frame is turned upright, and `size` is the displayed size.
    `live`: Matroska as a live recorder writes it (no duration, no index); cut its bytes
    (`corrupt_clip`, flips=0) for a recording that was interrupted.
    `open_gop` (libx264): keyframes after the first are recovery points, not IDR pictures:
    the B-frames after one in decoding order are shown before it and need the frame before.
    `sample_aspect_ratio` tags the pixels as that wide over tall (anamorphic SD video; libx264
    writes it into the H.264 stream, so every container keeps it): a player shows the coded
    frame that many times as wide, its index still readable; `size` counts coded pixels.
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    options = {"movflags": "+faststart"} if path.suffix == ".mp4" else {}
    if live:
        options["live"] = "1"
    coded_size = (size[1], size[0]) if rotation % 180 else size
    with av.open(str(path), "w", options=options) as out:
        stream = _video_stream(out, codec, rate, coded_size, pix_fmt, gop, bframes, open_gop)
        if rotation:
            stream.set_display_rotation(rotation)
        if sample_aspect_ratio is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        sound = _audio_stream(out) if audio else None
        for i in range(n_frames):
            rgb = coded_for_rotation(index_frame(i, size), rotation)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if sound is not None:
            _mux_tone(out, sound, float(n_frames / rate))
    return path


def make_vfr_clip(
    path: str | Path, times: Sequence[float], size: tuple[int, int] = (160, 96)
) -> Path:
    """Variable frame rate clip: frame i shows index i at `times[i]` seconds (ms precision)."""
    path = Path(path)
    time_base = Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        stream = _video_stream(out, "libx264", Fraction(25), size, "yuv420p", 12, 0)
        stream.codec_context.time_base = time_base
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(index_frame(i, size), format="rgb24")
            frame.pts = round(t * 1000)
            frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def make_zero_frame_clip(path: str | Path, size: tuple[int, int] = (64, 48)) -> Path:
    """Matroska file with a video stream that has no frames (and half a second of audio).

    The audio keeps the file well-formed: a Matroska file with no packets at all does not
    open, and the MP4 muxer drops an empty track; here the video stream exists but is empty.
    """
    path = Path(path)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        _mux_tone(out, _audio_stream(out), 0.5)
    return path


def corrupt_clip(
    source: str | Path, target: str | Path, keep: float = 0.6, flips: int = 40, seed: int = 0
) -> Path:
    """Copy of `source` cut at `keep` of its length, with bytes flipped in its second quarter."""
    data = bytearray(Path(source).read_bytes())
    data = data[: int(len(data) * keep)]
    rng = random.Random(seed)
    quarter = len(data) // 4
    for _ in range(flips):
        data[rng.randrange(quarter, 2 * quarter)] ^= 0xFF
    target = Path(target)
    target.write_bytes(bytes(data))
    return target


def raw_packets(path: str | Path) -> list[int]:
    """Byte positions of the packets (frames) of a raw stream, in decoding order."""
    with av.open(str(path)) as container:
        return [p.pos for p in container.demux(container.streams.video[0]) if p.size]


def cut_raw_stream(source: str | Path, target: str | Path, packet: int) -> Path:
    """Copy of raw stream `source` from its packet number `packet` on: a stream cut or
    dumped mid-GOP, whose first packets reference frames (and parameter sets) it lacks."""
    target = Path(target)
    target.write_bytes(Path(source).read_bytes()[raw_packets(source)[packet] :])
    return target


#: FFmpeg tells a raw H.264 stream by its first 2 KB, and takes none with a bad slice there.
H264_PROBE_BYTES = 2048


def break_packet(source: str | Path, target: str | Path, packet: int) -> Path:
    """Copy of raw H.264 stream `source` whose packet number `packet` does not decode: its
    slice states a slice type that does not exist (10). It stays a packet of its own (the
    parser splits frames by other fields); it must lie past H264_PROBE_BYTES."""
    data = bytearray(Path(source).read_bytes())
    position = raw_packets(source)[packet]
    if position < H264_PROBE_BYTES:
        raise ValueError(f"packet {packet} is within FFmpeg's probe of the stream")
    nal = data.index(b"\0\0\1", position) + 3
    while data[nal] & 0x1F not in (1, 5):  # to the slice, past parameter sets and SEI
        nal = data.index(b"\0\0\1", nal) + 3
    data[nal + 1] = 0b1_0001011  # first_mb_in_slice 0, slice_type 10 (Exp-Golomb codes)
    target = Path(target)
    target.write_bytes(bytes(data))
    return target


def damaged_clip(folder: Path, size: tuple[int, int] = (160, 96)) -> Path:
    """30 s of index frames (25 fps) whose middle bytes are noise (its index, at the front,
    is intact): frames decode to about 1.8 s, then none until about 26 s."""
    path = make_index_clip(folder / "damaged.mp4", 750, size, 25, gop=25)
    data = bytearray(path.read_bytes())
    start, stop = int(0.3 * len(data)), int(0.9 * len(data))
    data[start:stop] = random.Random(0).randbytes(stop - start)
    path.write_bytes(bytes(data))
    return path


def size_changing_clip(folder: Path) -> Path:
    """A raw H.264 stream of 10 frames of 160x96, 10 of 96x64, then 5 of 160x96 (three
    streams appended, as a recorder restarted at another resolution writes them); each part's
    frames show the indices 0, 1, ... of their own."""
    sizes = [(10, (160, 96)), (10, (96, 64)), (5, (160, 96))]
    parts = [
        make_index_clip(folder / f"part{i}.h264", n_frames=n, size=size)
        for i, (n, size) in enumerate(sizes)
    ]
    clip = folder / "sizes.h264"
    clip.write_bytes(b"".join(part.read_bytes() for part in parts))
    return clip
