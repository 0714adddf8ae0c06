"""H.264 MP4 writers with atomic output: Mp4Writer for finished RGB frames (synthetic-smoke
clips), SideBySideWriter for the comparison panes (exports). yuv420p, BT.709, +faststart,
the source's audio copied across.

Frames are encoded into a hidden temporary file of the writer's own beside the target
(engine.files.new_temporary: two writers to one target never share it), renamed onto `path`
only when the file is complete; any failure or interruption removes it. A writer never writes
over the video its frames come from. Encoder "auto" tries h264_nvenc (NVIDIA GPUs) and falls
back to libx264: the PyAV wheel has NVENC compiled in, but it only opens where an NVIDIA
driver is present.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import numbers
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from av.video.reformatter import Colorspace, Interpolation

from engine.files import discard, move_into_place, new_temporary, same_file
from engine.video.errors import VideoWriteError, describe
from engine.video.file_source import DECODER_OPTIONS, pick_video_stream, video_streams
from engine.video.layout import LAYOUTS, compose_panes, composed_size

log = logging.getLogger(__name__)

AUTO_ENCODERS = ("h264_nvenc", "libx264")
#: NVENC's H.264 limit; a 3-up 1080p export (5760 px) needs libx264.
NVENC_MAX_SIDE = 4096
#: libx264's limit, the widest and tallest frame H.264 is encoded at here (measured: 16384
#: opens, 16386 does not, whatever the other side); a 3-up 8K export (23040 px) is beyond it.
H264_MAX_SIDE = 16384
#: FFmpeg's AVCOL_SPC/PRI/TRC_BT709 and AVCOL_RANGE_MPEG (tags written in the stream).
BT709, LIMITED_RANGE = 1, 1
#: Names players open as MP4 (the container is always MP4, whatever the name says).
MP4_SUFFIXES = (".mp4", ".m4v", ".mov")


def _rate(fps: float | Fraction) -> Fraction:
    """Exact frame rate: 29.97... floats come back as 30000/1001."""
    if not isinstance(fps, numbers.Real) or not math.isfinite(fps):
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


#: H.264 quality (constant rate factor, 0-51: lower is better and larger; about 18 looks
#: lossless). 20 suits viewing; pass a lower one for material to be measured or published.
DEFAULT_CRF = 20
MAX_CRF = 51
#: libx264's crf 0: lossless, which needs the High 4:4:4 Predictive profile.
LOSSLESS_CRF = 0


def check_crf(crf: object) -> int:
    """`crf` when it is a whole number 0-MAX_CRF; else ValueError saying what is allowed.
    The one check of the setting: a fraction (20.5) or a string is a caller's mistake,
    refused here rather than passed on to an encoder as text."""
    if isinstance(crf, bool) or not isinstance(crf, numbers.Integral) or not 0 <= crf <= MAX_CRF:
        raise ValueError(
            f"crf (quality) must be a whole number 0-{MAX_CRF}, lower is better; got {crf!r}"
        )
    return int(crf)


#: libx264 preset: measured on 2 shared cores at 3840x720 (3-up 720p), crf 20: veryfast
#: 11 fps, superfast 29 fps (files ~1.5x larger), ultrafast 96 fps (~2.1x larger).
DEFAULT_PRESET = "superfast"
#: libx264's presets, fastest first (another name fails to open the encoder, and would be
#: reported as no usable encoder at all).
X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium", "slow", "slower", "veryslow", "placebo",
)  # fmt: skip


def check_preset(preset: object) -> str:
    """`preset` when it is one of X264_PRESETS; else ValueError listing them."""
    if preset not in X264_PRESETS:
        raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}; got {preset!r}")
    return str(preset)


def _encoder_options(name: str, crf: int, preset: str = DEFAULT_PRESET) -> dict[str, str]:
    if name == "libx264":
        return {"crf": str(crf), "preset": preset}
    if name == "h264_nvenc":  # cq 0 is NVENC's "automatic", not its best: that is 1
        return {"preset": "p4", "rc": "vbr", "cq": str(max(1, crf))}
    return {}


def _encoder_opens(
    name: str, size: tuple[int, int], rate: Fraction, crf: int, preset: str = DEFAULT_PRESET
) -> bool:
    """Whether `name` opens with these settings (probed on a throwaway context: a stream
    added to the container cannot be removed again)."""
    if name == "h264_nvenc" and max(size) > NVENC_MAX_SIDE:
        return False
    try:
        context = av.CodecContext.create(name, "w")
        context.width, context.height = size
        context.pix_fmt = "yuv420p"
        context.time_base = 1 / rate
        context.options = _encoder_options(name, crf, preset)
        context.open()
    except (av.FFmpegError, OSError, ValueError):
        return False
    return True


def h264_size_problem(size: tuple[int, int]) -> str:
    """Why no H.264 encoder takes frames of `size` (width, height), or ""."""
    width, height = size
    if max(width, height) <= H264_MAX_SIDE:
        return ""
    which = "wider" if width > H264_MAX_SIDE else "taller"
    return f"{which} than H.264 allows ({H264_MAX_SIDE} px at most)"


def pick_encoder(
    encoder: str, size: tuple[int, int], rate: Fraction, crf: int, preset: str = DEFAULT_PRESET
) -> str:
    """The encoder name to use; raises VideoWriteError when none opens (saying why, where
    the frames are too large for H.264)."""
    problem = h264_size_problem(size)
    if problem:  # said first: "no usable encoder" would send one looking for a driver
        raise VideoWriteError(f"{size[0]}x{size[1]} is {problem}")
    candidates = AUTO_ENCODERS if encoder == "auto" else (encoder,)
    for name in candidates:
        if _encoder_opens(name, size, rate, crf, preset):
            return name
    raise VideoWriteError(
        f"no usable H.264 encoder among {', '.join(candidates)} for {size[0]}x{size[1]}"
    )


def _start_seconds(streams: Sequence[av.stream.Stream]) -> float:
    """Start time of the first of `streams` that states one, in seconds; 0 where none does."""
    for stream in streams:
        if stream.start_time is not None:
            return float(stream.start_time * stream.time_base)
    return 0.0


#: Timestamps of frames written at their source's times (exports, synthesised clips), in
#: 1/90000 s (MPEG's clock): every common frame rate, NTSC's 30000/1001 included, is a
#: whole number of ticks, and a variable rate keeps its times.
SOURCE_TIME_BASE = Fraction(1, 90000)
#: How far before a range's start the audio copy seeks (s): to the packet before the one the
#: range starts in, which the decoder needs (AAC frames overlap their neighbours), whatever
#: the packet size. FFmpeg's MP4 demuxer reads the same second before an edit list's start.
AUDIO_WARM_UP_S = 1.0
#: FFmpeg's default layout for a channel count: audio stored without one (PCM in AVI) is
#: refused by the MP4 muxer, and only when the file is finished.
DEFAULT_LAYOUTS = {
    1: "mono",
    2: "stereo",
    3: "2.1",
    4: "4.0",
    5: "5.0",
    6: "5.1",
    7: "6.1",
    8: "7.1",
}


def _add_audio_stream(output: av.container.OutputContainer, template: av.AudioStream):
    """An output stream for copying `template`'s packets, with a channel layout."""
    stream = output.add_stream_from_template(template)
    channels = template.codec_context.channels
    if template.codec_context.layout.name == f"{channels} channels":  # no layout stated
        if channels in DEFAULT_LAYOUTS:
            stream.codec_context.layout = DEFAULT_LAYOUTS[channels]
    return stream


def audio_copy_problem(template: av.AudioStream, packets: Iterator[av.Packet]) -> str:
    """Why the audio of `template` cannot be copied into an MP4 as it is (a codec MP4 does
    not carry), or "": its first packet (read from `packets`, its demuxer) into an in-memory
    MP4, so that the export does not fail at its very end."""
    try:
        packet = next((p for p in packets if p.size), None)
        with av.open(io.BytesIO(), "w", format="mp4") as probe:
            stream = _add_audio_stream(probe, template)
            if packet is not None:
                packet = _copy_of(packet)
                packet.stream = stream
                probe.mux(packet)
    except (av.FFmpegError, ValueError) as error:
        codec = template.codec_context.name
        return f"{codec} audio cannot go into an MP4 as it is ({describe(error)})"
    return ""


def _copy_of(packet: av.Packet) -> av.Packet:
    """A copy of `packet`, for the probe: muxing rebases a packet to its new stream's time
    base, and the original is still to be copied into the export."""
    copy = av.Packet(bytes(packet))
    copy.pts, copy.dts, copy.duration = packet.pts, packet.dts, packet.duration
    copy.time_base = packet.time_base
    copy.is_keyframe = packet.is_keyframe
    # Side data (e.g. new extradata) travels too, where this PyAV can copy it (not 15).
    for side_data in getattr(packet, "iter_sidedata", tuple)():
        copy.set_sidedata(side_data)
    return copy


class _AudioCopy:
    """Copies the audio packets of a source's time range into the output, unchanged.

    Each packet keeps its place relative to the start of the range: one that began before
    it starts before 0 in the output, and so does the packet before that one, which an AAC
    decoder needs to decode the first (its priming packet, at the start of a file). The MP4
    muxer writes an edit list for times before 0: players decode those samples and drop them.
    """

    def __init__(
        self,
        source: av.container.InputContainer,
        packets: Iterator[av.Packet],
        output: av.container.OutputContainer,
        start: float,
        end: float | None,
        video: av.VideoStream | None,
    ) -> None:
        """`packets`: the first audio stream's, from the beginning of `source` (which the
        writer owns and closes); `video`: the video stream the frames come from (None: the
        audio's own start is time 0)."""
        self._in_stream = source.streams.audio[0]
        self._time_base = self._in_stream.time_base
        self.stream = _add_audio_stream(output, self._in_stream)
        # Times are relative to the start of the video stream the frames come from (as
        # FileSource gives them), so the range stays in sync where it does not start at 0
        # (MPEG-TS starts at ~1.4 s; the second video stream of a stereo recording may start
        # after the first).
        origin = _start_seconds([stream for stream in (video, self._in_stream) if stream])
        self._start, self._end = start + origin, None if end is None else end + origin
        self._offset = round(self._start / self._time_base)  # stream ticks of output 0
        if start > AUDIO_WARM_UP_S:  # else read from the beginning: a seek before it fails
            # Far enough back for the packet before the one the range starts in (AVI's
            # demuxer refuses a seek to before 0: EPERM).
            ticks = round((self._start - AUDIO_WARM_UP_S) / self._time_base)
            source.seek(ticks, stream=self._in_stream, backward=True)
            packets = source.demux(self._in_stream)
        self._packets = packets
        self._before: av.Packet | None = None  # the latest packet ending before the range
        self._started = False
        self._done = False

    def mux_until(self, output: av.container.OutputContainer, time: float | None) -> None:
        """Mux the packets that start before `time` seconds of output (None: all the rest)."""
        while not self._done:
            packet = next(self._packets, None)
            if packet is None or packet.pts is None or packet.size == 0:
                self._done = packet is None
                continue
            start = float(packet.pts * self._time_base)
            end = start + float((packet.duration or 0) * self._time_base)
            if end <= self._start and not self._started:
                self._before = packet  # the decoder's warm-up, should the next one start it
                continue
            if self._end is not None and start >= self._end:
                self._done = True
                break
            if not self._started:
                self._started = True
                if self._before is not None:
                    self._mux(output, self._before)
                    self._before = None
            self._mux(output, packet)
            if time is not None and start - self._start >= time:
                break  # interleave: the video catches up first

    def _mux(self, output: av.container.OutputContainer, packet: av.Packet) -> None:
        packet.pts -= self._offset
        packet.dts = packet.pts if packet.dts is None else packet.dts - self._offset
        packet.stream = self.stream
        output.mux(packet)


class Mp4Writer:
    """Encode RGB uint8 frames of one size into an H.264 MP4 at `path`, atomically.

    Context manager: a normal exit calls close() (finish, rename); an exception, Ctrl-C
    included, calls abort() (temporary file removed, nothing left at `path`).
    `source`: the video the frames are made from: never written over, and (with
    `copy_audio`) its audio from `audio_start` to `audio_end` (seconds from the start of
    its video stream number `video_stream`, 0 the first, as FileSource counts them) is
    copied across when it has any.
    `size` is (width, height); odd sizes are padded to even (black) for yuv420p.
    `preset` applies to libx264 (speed against file size).
    `time_base`: the unit of the frames' timestamps; default one frame (1/fps, a constant
    rate). A recording stamped with the moments frames were shown passes a finer one
    (1/1000): in frame units, frames closer than a frame apart would be pushed later.
    `ends_at`: when the last frame stops showing, in seconds (the end of the range an
    export was asked for); used where it is within one frame (1/fps) after that frame's
    start, else the last frame lasts one frame. Each other frame lasts until the next.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float | Fraction,
        size: tuple[int, int],
        source: str | Path | None = None,
        audio_start: float = 0.0,
        audio_end: float | None = None,
        video_stream: int = 0,
        copy_audio: bool = True,
        encoder: str = "auto",
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        time_base: Fraction | None = None,
        ends_at: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        crf = check_crf(crf)
        preset = check_preset(preset)
        if min(self.size) < 1:
            raise ValueError(f"frame size must be positive, got {self.size[0]}x{self.size[1]}")
        self.frames_written = 0
        self._last_pts = -1
        self._rate = _rate(fps)
        self._time_base = Fraction(time_base) if time_base else 1 / self._rate
        self._ticks_per_frame = max(1, round(1 / (self._rate * self._time_base)))
        self._ends_at = ends_at
        # The latest frame waits until the next one comes (or close()): a frame's duration is
        # known only then, and the MP4 muxer takes where the video ends from the durations.
        self._held: av.VideoFrame | None = None
        self._durations: dict[int, int] = {}  # pts -> ticks, of frames sent to the encoder
        self._encoded_size = (self.size[0] + self.size[0] % 2, self.size[1] + self.size[1] % 2)
        self._check_target(source)
        self._temp: Path | None = None  # created by _open: nothing to remove before
        self._container: av.container.OutputContainer | None = None
        self._audio: _AudioCopy | None = None
        self._input: av.container.InputContainer | None = None  # the source, for its audio
        try:
            self.encoder_name = pick_encoder(encoder, self._encoded_size, self._rate, crf, preset)
        except VideoWriteError as error:  # pick_encoder cannot name the file
            raise VideoWriteError(f"{self.path}: {error}") from None
        if crf == LOSSLESS_CRF and self.encoder_name == "libx264":
            log.warning(
                "%s: crf %d is lossless, in H.264's High 4:4:4 Predictive profile, which many "
                "players and hardware decoders cannot open (1 or more: the usual High profile)",
                self.path.name,
                crf,
            )
        try:
            self._open(_encoder_options(self.encoder_name, crf, preset))
            if source is not None and copy_audio:
                self._audio = self._open_audio(Path(source), audio_start, audio_end, video_stream)
        except BaseException:
            self.abort()
            raise

    def _check_target(self, source: str | Path | None) -> None:
        """Refuse, before anything is encoded, an output that could not be saved."""
        folder = self.path.parent
        if source is not None and same_file(source, self.path):
            raise VideoWriteError(f"{self.path}: is the source video; choose another output")
        if os.path.isdir(self.path):  # Path.is_dir raises on a name too long (Python 3.11)
            raise VideoWriteError(f"{self.path}: is a folder, not an output file")
        if self.path.suffix.lower() not in MP4_SUFFIXES:
            raise VideoWriteError(f"{self.path}: the output is an MP4 file; name it .mp4")
        if not os.path.isdir(folder):
            raise VideoWriteError(f"{self.path}: output folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise VideoWriteError(f"{self.path}: output folder {folder} is not writable")

    def _open(self, options: dict[str, str]) -> None:
        try:
            # Create the file now, so an unwritable target (or a name too long for the file
            # system) fails here rather than mid-export.
            self._temp = new_temporary(self.path, suffix=".partial.mp4")
            self._container = av.open(
                str(self._temp), "w", format="mp4", options={"movflags": "+faststart"}
            )
        except (av.FFmpegError, OSError) as error:
            raise VideoWriteError(f"{self.path}: cannot write ({describe(error)})") from error
        stream = self._container.add_stream(self.encoder_name, rate=self._rate)
        stream.width, stream.height = self._encoded_size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = self._time_base
        stream.options = options
        codec = stream.codec_context
        codec.colorspace = codec.color_primaries = codec.color_trc = BT709
        codec.color_range = LIMITED_RANGE
        self._stream = stream

    def _open_audio(
        self, source: Path, start: float, end: float | None, video_stream: int
    ) -> _AudioCopy | None:
        """Audio stream copied from `source`, in time with its video stream number
        `video_stream`, or None when it has no audio. The source is opened once, here, for
        both the probe and the copy; close() and abort() close it."""
        try:
            # Opening decodes a frame where the header does not state the size: bounded.
            self._input = av.open(str(source), metadata_errors="replace", options=DECODER_OPTIONS)
            if not self._input.streams.audio:
                self._close_input()
                return None
            template = self._input.streams.audio[0]
            # The copy starts again with the packets the probe reads (a second iterator).
            probed, packets = itertools.tee(self._input.demux(template))
            problem = audio_copy_problem(template, probed)
            if problem:  # the video matters more than its sound: written without it
                log.warning("%s: written without audio: %s", self.path.name, problem)
                self._close_input()
                return None
            video = None
            if video_streams(self._input):  # else nothing to align to: the audio's own start
                video = pick_video_stream(source, self._input, video_stream)
            # Every output stream must exist before the first packet is muxed.
            return _AudioCopy(self._input, packets, self._container, start, end, video)
        except (av.FFmpegError, OSError, ValueError) as error:
            raise VideoWriteError(
                f"{self.path}: cannot copy audio from {source} ({describe(error)})"
            ) from error

    def _close_input(self) -> None:
        source, self._input = self._input, None
        if source is not None:
            source.close()

    def write_image(self, image: np.ndarray, time: float | None = None) -> None:
        """Encode one RGB uint8 HxWx3 image of the writer's size as the next frame.

        time: when it is shown, in seconds from the start of the video (a variable frame
        rate, e.g. a recording that dropped frames); default: one frame after the last.
        """
        if self._container is None:
            raise VideoWriteError(f"{self.path}: writer is closed")
        expected = (self.size[1], self.size[0], 3)  # numpy's order: height, width, colour
        if image.shape != expected or image.dtype != np.uint8:
            # Both as numpy shapes: "64x48" beside (64, 48, 3) read as the same size.
            raise ValueError(
                f"frame is shape {image.shape} {image.dtype}; "
                f"expected shape {expected} uint8 (height, width, RGB)"
            )
        if self._encoded_size != self.size:
            pad_w, pad_h = (
                self._encoded_size[0] - self.size[0],
                self._encoded_size[1] - self.size[1],
            )
            image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        # Convert here with BT.709, the matrix the stream is tagged with (swscale's default is
        # BT.601, which players would show with shifted colours at HD sizes). AREA: each chroma
        # sample is its own 2x2 pixels' mean; the default filter reaches a row further, and the
        # grey dark-channel pane's edge took colour from the pane beside it.
        frame = frame.reformat(
            format="yuv420p", dst_colorspace=Colorspace.ITU709, interpolation=Interpolation.AREA
        )
        frame.pts = self._next_pts(time)
        frame.time_base = self._time_base
        self._encode_held(until=frame.pts)
        self._held = frame
        self.frames_written += 1
        self._last_pts = frame.pts

    def _encode_held(self, until: int) -> None:
        """Encode the frame held back, shown until `until` (ticks)."""
        frame, self._held = self._held, None
        if frame is not None:
            self._durations[frame.pts] = until - frame.pts
            self._guarded(self._encode, frame)

    def _last_frame_ticks(self) -> int:
        """How long the last frame shows: until `ends_at` where that is within a frame."""
        if self._ends_at is not None:
            left = round(self._ends_at / self._time_base) - self._last_pts
            if 0 < left <= self._ticks_per_frame:
                return left
        return self._ticks_per_frame

    def _next_pts(self, time: float | None) -> int:
        """In ticks of the time base, always after the last frame's."""
        if time is None:
            return self._last_pts + self._ticks_per_frame
        return max(round(time / self._time_base), self._last_pts + 1)

    def _encode(self, frame: av.VideoFrame | None) -> None:
        for packet in self._stream.encode(frame):
            # Left unset, the muxer takes a frame at the stream's (average) rate for each, and
            # a variable rate's video would end that long after its last frame.
            packet.duration = self._durations.pop(packet.pts, packet.duration)
            self._container.mux(packet)
        if self._audio is not None:
            time = None if frame is None else float(frame.pts * self._time_base)
            self._audio.mux_until(self._container, time)

    def _guarded(self, action, *args) -> None:
        """Run an encode/mux step; on failure remove the partial file, raise one line."""
        try:
            action(*args)
        except (av.FFmpegError, OSError, ValueError) as error:
            self.abort()
            raise VideoWriteError(f"{self.path}: writing failed ({describe(error)})") from error

    def close(self) -> Path:
        """Flush, finish the file (+faststart), rename it onto `path`; returns `path`."""
        if self._container is None:
            raise VideoWriteError(f"{self.path}: writer is already closed")
        if self.frames_written == 0:
            self.abort()
            raise VideoWriteError(f"{self.path}: no frames were written; nothing saved")
        try:
            self._complete()
        except BaseException:  # Ctrl-C or a stop signal while finishing: no partial file
            self.abort()
            raise
        return self.path

    def _complete(self) -> None:
        self._encode_held(until=self._last_pts + self._last_frame_ticks())
        self._guarded(self._encode, None)
        self._guarded(self._finish)
        try:
            move_into_place(self._temp, self.path, keep_aside=True)  # an export is long work
        except OSError as error:
            raise VideoWriteError(f"{self.path}: cannot save ({describe(error)})") from error
        self._temp = None  # renamed: no longer this writer's to remove

    def _finish(self) -> None:
        container, self._container = self._container, None
        container.close()  # writes the index; +faststart moves it to the front
        self._audio = None
        self._close_input()

    def abort(self) -> None:
        """Stop and remove the temporary file; nothing is left at `path`."""
        container, self._container = self._container, None
        source, self._input = self._input, None
        self._audio = self._held = None
        for closable in (container, source):
            if closable is not None:
                try:
                    closable.close()
                except (av.FFmpegError, OSError, ValueError):
                    pass  # already failing: removing the file is what matters
        temp, self._temp = self._temp, None
        if temp is not None:
            discard(temp)  # never raises: the error being handled is the one to report

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def scaled_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` (HxW or HxWx3) resized to `size` (width, height), aspect not kept, as FFmpeg
    scales a stream's frames to its output's size; `image` itself where it has that size."""
    height, width = image.shape[:2]
    if (width, height) == size:
        return image
    # Shrinking, INTER_AREA averages the pixels it merges (no aliasing); else bicubic, as
    # FFmpeg scales by default (file_source.square_pixels makes the same choice).
    shrinking = size[0] <= width and size[1] <= height
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


@dataclass(frozen=True)
class SizeChange:
    """The first frame of a size other than the writer's: its (width, height), and when it
    is shown (s, the output's time)."""

    size: tuple[int, int]
    time: float


class SideBySideWriter(Mp4Writer):
    """The comparison video: each frame is the panes (original | dark channel | desmoked,
    or a `layout` of them, optionally labelled) of one source frame of `frame_size`
    (width, height). Other options as Mp4Writer's.

    A stream's frame size can change midway (a raw H.264 stream, a capture device switching
    resolution); the panes of a frame of another size are scaled to `frame_size`, as FFmpeg
    scales them to its output's, and `size_change` says where that first happened.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float | Fraction,
        frame_size: tuple[int, int],
        layout: str = "3up",
        labels: bool = False,
        **options: Any,
    ) -> None:
        self.frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.layout, self.labels = layout, labels
        self.size_change: SizeChange | None = None
        size = composed_size(*self.frame_size, layout)  # also validates the layout
        problem = self._layout_problem(size)
        if problem:
            raise VideoWriteError(f"{path}: {problem}")
        super().__init__(path, fps=fps, size=size, **options)

    def _layout_problem(self, size: tuple[int, int]) -> str:
        """Why the panes in this layout make frames H.264 cannot take, and what to do, or ""
        (here, where the layout is known: the CLI and the app then say the same)."""
        problem = h264_size_problem(size)
        if not problem:
            return ""
        fits = [
            name for name in LAYOUTS if not h264_size_problem(composed_size(*self.frame_size, name))
        ]
        advice = "use a smaller input"
        if fits:
            advice = f"use the {' or '.join(fits)} layout, or a smaller input"
        width, height = self.frame_size
        return (
            f"the {self.layout} layout of {width}x{height} frames is {size[0]}x{size[1]}, "
            f"{problem}: {advice}"
        )

    def write(
        self,
        original: np.ndarray,
        dark_channel: np.ndarray,
        desmoked: np.ndarray,
        time: float | None = None,
    ) -> None:
        """Compose the panes (each `frame_size`, else scaled to it) and encode them as the
        next frame (`time` as write_image's)."""
        size = (original.shape[1], original.shape[0])
        if size != self.frame_size:
            original, dark_channel, desmoked = (
                scaled_to(pane, self.frame_size) for pane in (original, dark_channel, desmoked)
            )
        image = compose_panes(original, dark_channel, desmoked, self.layout, self.labels)
        self.write_image(image, time)
        if size != self.frame_size and self.size_change is None:
            self.size_change = SizeChange(size, float(self._last_pts * self._time_base))
