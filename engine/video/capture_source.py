"""Live capture source (PyAV/libavdevice): v4l2 on Linux, dshow on Windows, avfoundation on
macOS; FFmpeg's lavfi graphs (e.g. "testsrc=size=320x240:rate=30") stand in for a device.

Opened with low-latency settings: no input buffering, tiny probe, low-delay decoding; a read
timeout turns a device that stops delivering into a VideoError instead of a hang.
"""

from __future__ import annotations

import re
import sys
import time as clock
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import av
import av.logging

from engine.arguments import number, require, whole_number
from engine.video.errors import VideoError, VideoOpenError, describe
from engine.video.file_source import (
    DECODER_OPTIONS,
    VideoFrame,
    check_frame_size,
    pixel_aspect,
    square_pixels,
    square_width,
    to_rgb,
)

PLATFORM_FORMATS = {"linux": "v4l2", "win32": "dshow", "darwin": "avfoundation"}
#: Demuxer options for the lowest latency (what ffplay's low-latency recipes use).
LOW_LATENCY = {"fflags": "nobuffer", "probesize": "32", "analyzeduration": "0"}
#: Name of the pixel-format option per device format (v4l2 calls it input_format).
PIXEL_FORMAT_OPTION = {
    "v4l2": "input_format",
    "dshow": "pixel_format",
    "avfoundation": "pixel_format",
}
#: Compressed streams a device may offer instead of raw pixels: USB capture cards send
#: 1080p at full frame rate only as MJPEG (raw YUYV 4:2:2 does not fit USB 2.0 bandwidth).
#: v4l2 selects them with input_format like a pixel format.
COMPRESSED_FORMATS = ("mjpeg",)
#: Why the other device formats cannot be asked for a compressed stream. dshow picks one
#: only by the format context's video codec (ffmpeg's input -vcodec), which is no option
#: by name and which PyAV cannot set before opening: a "vcodec" option is silently unused.
#: avfoundation's pixel_format takes raw formats only.
NO_COMPRESSED_STREAM = {
    "dshow": "DirectShow takes the card's MJPEG mode by itself where the chosen size and "
    "frame rate need it",
    "avfoundation": "macOS hands over decoded frames only",
}
#: Common frame rates, most likely first, for avfoundation where none is chosen: left alone
#: it asks for its default 29.97 fps and refuses every device without exactly that rate
#: (most cards). The first is asked for; where the device refuses it, the rates its modes
#: offer are tried next, these common ones first.
AVFOUNDATION_RATES = (30.0, 60.0, 25.0, 50.0, 29.97, 59.94, 24.0, 15.0)
#: avfoundation takes a frame rate only this close to the top of one of the device's rate
#: ranges (libavdevice/avfoundation.m: `fabs(framerate - max_framerate) < 0.01`): a mode
#: logged as 1920x1080@[1 60] takes 60 fps, not 30.
AVFOUNDATION_RATE_TOLERANCE = 0.01
#: What avfoundation logs as it refuses a frame rate. It then fails with EIO, as it does for
#: every other failure (camera access denied, no such device): only its log tells them apart.
AVFOUNDATION_RATE_REFUSED = "Selected framerate"
#: The highest frame rate a capture is asked for: capture cards and USB cameras stop at
#: 240 fps, so more is a typo; an infinite rate hung lavfi's fps filter past Ctrl-C.
MAX_CAPTURE_FPS = 1000
#: What a failed open raises.
OPEN_ERRORS = (av.FFmpegError, OSError, ValueError)


@dataclass
class CaptureDevice:
    """A capture device: `path` and `format` are what CaptureSource takes."""

    name: str
    path: str
    format: str
    description: str


def platform_format() -> str:
    """libavdevice input format for this platform's cameras / capture cards."""
    for prefix, name in PLATFORM_FORMATS.items():
        if sys.platform.startswith(prefix):
            return name
    return "v4l2"


def list_capture_devices() -> list[CaptureDevice]:
    """Capture devices of this machine; [] when there are none. Never raises."""
    try:
        fmt = platform_format()
        if fmt == "v4l2":
            return v4l2_devices()
        return _devices_from_log(fmt)
    except Exception:  # listing is best effort: a broken driver must not break the caller
        return []


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def v4l2_devices(
    dev: Path = Path("/dev"), sysfs: Path = Path("/sys/class/video4linux")
) -> list[CaptureDevice]:
    """/dev/video* capture nodes, named from sysfs. A camera often has a second node for
    metadata (sysfs index 1, 2, ...): only index 0 nodes are listed."""
    nodes = sorted(dev.glob("video*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
    devices = []
    for node in nodes:
        info = sysfs / node.name
        index = _read_text(info / "index")
        if index not in (None, "0"):
            continue
        name = _read_text(info / "name") or node.name
        devices.append(CaptureDevice(name, str(node), "v4l2", f"{name} ({node}, v4l2)"))
    return devices


@contextmanager
def ffmpeg_log_lines(level: int = av.logging.ERROR) -> Iterator[list[str]]:
    """The lines FFmpeg logs on this thread, at `level` or more severe, while in the block
    (PyAV drops them otherwise): the list fills as they come.

    It swaps PyAV's process-wide log level (and so FFmpeg's log callback) meanwhile, which
    can stall or deadlock other threads decoding at the same time (PyAV issues #751, #2276):
    use it only where the lines are read (avfoundation and dshow)."""
    lines: list[str] = []
    previous = av.logging.get_level()
    av.logging.set_level(level)
    try:
        with av.logging.Capture(local=True) as logs:
            try:
                yield lines
            finally:
                lines.extend(message for _level, _name, message in logs)
    finally:
        av.logging.set_level(previous)


def _devices_from_log(fmt: str) -> list[CaptureDevice]:
    """dshow / avfoundation print their device list to FFmpeg's log, then fail to open."""
    dummy = "dummy" if fmt == "dshow" else ""
    with ffmpeg_log_lines(av.logging.INFO) as lines:
        try:
            av.open(dummy, format=fmt, options={"list_devices": "true"}).close()
        except (av.FFmpegError, OSError):
            pass  # expected: listing ends with an "error"
    return parse_dshow_list(lines) if fmt == "dshow" else parse_avfoundation_list(lines)


def parse_dshow_list(lines: list[str]) -> list[CaptureDevice]:
    """Video devices from dshow's list: lines like `"HD Webcam" (video)`."""
    devices = []
    for line in lines:
        match = re.search(r'"([^"]+)"\s*\(video\)', line)
        if match:
            name = match.group(1)
            devices.append(CaptureDevice(name, f"video={name}", "dshow", f"{name} (dshow)"))
    return devices


def parse_avfoundation_list(lines: list[str]) -> list[CaptureDevice]:
    """Video devices from avfoundation's list: `[0] FaceTime HD Camera` lines between the
    video and audio headers."""
    devices, in_video = [], False
    for line in lines:
        if "video devices" in line:
            in_video = True
        elif "audio devices" in line:
            in_video = False
        elif in_video and (match := re.search(r"\[(\d+)\]\s*(.+)", line)):
            index, name = match.group(1), match.group(2).strip()
            devices.append(CaptureDevice(name, index, "avfoundation", f"{name} (avfoundation)"))
    return devices


class CaptureMode(NamedTuple):
    """A size a device offers and the frame rate avfoundation takes at it."""

    width: int
    height: int
    fps: float

    def __str__(self) -> str:
        return f"{self.width}x{self.height}@{self.fps:.4g}"


def parse_avfoundation_modes(lines: list[str]) -> list[CaptureMode]:
    """The modes avfoundation logs as a device refuses a size or rate (`  1920x1080@[1.000000
    60.000000]fps`), each once, in order; [] where none was logged. Each range gives its top
    rate only: the one avfoundation takes (see AVFOUNDATION_RATE_TOLERANCE)."""
    modes: list[CaptureMode] = []
    for line in lines:
        match = re.search(r"(\d+)x(\d+)@\[[\d.]+ ([\d.]+)\]", line)
        if match:
            mode = CaptureMode(int(match.group(1)), int(match.group(2)), float(match.group(3)))
            if mode not in modes:  # the same mode in another pixel format
                modes.append(mode)
    return modes


def modes_text(modes: list[CaptureMode], most: int = 8) -> str:
    """Modes, short: "1920x1080@60, 1280x720@59.94 fps"; "" where there are none."""
    if not modes:
        return ""
    more = ", ..." if len(modes) > most else ""
    return ", ".join(str(mode) for mode in modes[:most]) + more + " fps"


def _same_rate(rate: float, other: float) -> bool:
    return abs(rate - other) < AVFOUNDATION_RATE_TOLERANCE


def _offered_rates(modes: list[CaptureMode], size: tuple[int, int] | None) -> list[float]:
    """The rates avfoundation takes at `size` (any size where None) by `modes`, each once: the
    common ones first (in AVFOUNDATION_RATES' order), the others as the device listed them."""
    rates: list[float] = []
    for mode in modes:
        at_size = size is None or (mode.width, mode.height) == (int(size[0]), int(size[1]))
        if at_size and not any(_same_rate(mode.fps, rate) for rate in rates):
            rates.append(mode.fps)

    def preference(rate: float) -> int:
        common = [i for i, usual in enumerate(AVFOUNDATION_RATES) if _same_rate(rate, usual)]
        return common[0] if common else len(AVFOUNDATION_RATES)

    return sorted(rates, key=preference)  # stable: the uncommon ones keep the device's order


def check_capture_mode(size: object, fps: object) -> None:
    """ValueError (TypeError for a value that is no number) naming `size` or `fps` where no
    device can be asked for it: a size of 0 or an fps of 0 was silently left unasked, a
    negative or infinite fps hung a lavfi graph. The frame size limit is check_frame_size's."""
    if fps is not None:
        allowed = f"above 0 and at most {MAX_CAPTURE_FPS} (None: the device's own)"
        require(0 < number("fps", fps) <= MAX_CAPTURE_FPS, "fps", allowed, fps)  # NaN fails
    if size is not None:
        allowed = "(width, height), two whole numbers of 1 or more (None: the device's own)"
        require(isinstance(size, tuple | list) and len(size) == 2, "size", allowed, size)
        for side in size:
            require(whole_number("size", side) >= 1, "size", allowed, size)


def _lavfi_graph(graph: str, size, fps, pixel_format) -> str:
    """A lavfi source has no device options: honour them with filters on its graph."""
    if size:
        graph += f",scale={int(size[0])}:{int(size[1])}"
    if fps:
        graph += f",fps={fps:g}"
    if pixel_format and pixel_format not in COMPRESSED_FORMATS:  # generated frames are raw
        graph += f",format={pixel_format}"
    return graph


def _device_options(fmt: str, size, fps, pixel_format) -> dict[str, str]:
    """The demuxer options asking device format `fmt` for a mode. A compressed stream is
    asked for the way a pixel format is (v4l2); see NO_COMPRESSED_STREAM for the others."""
    options = dict(LOW_LATENCY)
    if size:
        options["video_size"] = f"{int(size[0])}x{int(size[1])}"
    if fps:
        options["framerate"] = f"{fps:g}"
    if pixel_format:
        options[PIXEL_FORMAT_OPTION.get(fmt, "pixel_format")] = pixel_format
    return options


class CaptureSource:
    """Frames from a live device; same read()/frames()/close() as FileSource, is_live True.

    size (width, height), fps and pixel_format ask the device for a mode (ValueError for a
    size or fps no device has: see check_capture_mode); pixel_format is a raw format
    ("yuyv422", "nv12") or a compressed stream ("mjpeg", v4l2 only); None: the default (on
    avfoundation, fps None: a rate the device has; see AVFOUNDATION_RATES).

    width and height are the displayed size: a device's non-square pixels (a sample aspect
    ratio, as SD capture cards state) are resized to square ones, as FileSource does.

    `time` of a frame is seconds since the first frame (device timestamps where present,
    otherwise the wall clock). duration and frame_count are None: a live stream has none.
    """

    is_live = True
    duration = None
    frame_count = None
    has_audio = False

    def __init__(
        self,
        device: str,
        *,
        format: str | None = None,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        pixel_format: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        check_capture_mode(size, fps)
        self.path = device
        self.format = format or platform_format()
        self.skipped_frames = 0
        self.notices: tuple[str, ...] = ()
        if size is not None:
            check_frame_size(device, int(size[0]), int(size[1]))  # before asking the device
        self._container, opened_fps = self._open(device, size, fps, pixel_format, timeout)
        try:
            self._stream = self._container.streams.video[0]
        except IndexError:
            self._container.close()
            raise VideoOpenError(f"{device}: the {self.format} device has no video") from None
        self._stream.thread_type = "AUTO"
        self._stream.codec_context.options = dict(DECODER_OPTIONS)
        codec = self._stream.codec_context
        # An SD capture card can send 720x576 with a 16:15 or 64:45 sample aspect ratio: its
        # frames get square pixels, as a file's do.
        self._sar = pixel_aspect(self._stream)
        self.width, self.height = square_width(codec.width, self._sar), codec.height
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(opened_fps or rate or 30)
        self.codec = codec.name
        self.pixel_format = codec.pix_fmt
        self._packets: Iterator[av.Packet] = self._container.demux(self._stream)
        self._pending: list[av.VideoFrame] = []
        self._index = 0
        self._origin: tuple[float, float] | None = None  # (first pts in s, wall clock)
        self._closed = False
        if not codec.width:  # some devices state their size only in the first frame
            first = self._next_frame()
            if first is None:
                self.close()
                raise VideoOpenError(f"{device}: the {self.format} device sent no frame")
            self._pending.insert(0, first)
            self.width, self.height = square_width(first.width, self._sar), first.height
        try:
            check_frame_size(device, self.width, self.height)  # a size the device chose
        except VideoOpenError:
            self.close()
            raise

    def _open(
        self, device, size, fps, pixel_format, timeout
    ) -> tuple[av.container.InputContainer, float | None]:
        """The opened container and the frame rate it was asked for (None: its own)."""
        if self.format == "lavfi":
            graph = _lavfi_graph(device, size, fps, pixel_format)
            return self._open_once(device, graph, dict(LOW_LATENCY), timeout), fps
        if pixel_format in COMPRESSED_FORMATS and self.format in NO_COMPRESSED_STREAM:
            raise VideoOpenError(
                f"{device}: {self.format} cannot be asked for a {pixel_format} stream "
                f"({NO_COMPRESSED_STREAM[self.format]}): leave the stream at the device default"
            )
        if self.format == "avfoundation":
            return self._open_avfoundation(device, size, fps, pixel_format, timeout)
        options = _device_options(self.format, size, fps, pixel_format)
        return self._open_once(device, device, options, timeout), fps

    def _open_once(
        self, device: str, url: str, options: dict[str, str], timeout: float
    ) -> av.container.InputContainer:
        """`url` opened as `self.format`; a failure says why by its errno alone (FFmpeg's log
        is not read here: see ffmpeg_log_lines)."""
        try:
            return self._open_input(url, options, timeout)
        except OPEN_ERRORS as error:
            reason = describe(error)
            raise VideoOpenError(
                f"{device}: cannot open {self.format} capture ({reason})"
            ) from error

    def _open_avfoundation(
        self, device, size, fps, pixel_format, timeout
    ) -> tuple[av.container.InputContainer, float]:
        """avfoundation at the chosen rate; with none, at AVFOUNDATION_RATES[0] or, where the
        device refuses it, at each rate of the modes it then lists, until one opens.

        avfoundation fails with EIO ("Input/output error") whatever went wrong: FFmpeg's log
        tells a refused rate (see AVFOUNDATION_RATE_REFUSED) from the rest, and gives the
        reason the message names."""
        rates = [fps or AVFOUNDATION_RATES[0]]
        tried: list[float] = []
        modes: list[CaptureMode] = []
        while rates:
            rate = rates.pop(0)
            tried.append(rate)
            options = _device_options(self.format, size, rate, pixel_format)
            with ffmpeg_log_lines() as lines:
                try:
                    return self._open_input(device, options, timeout), rate
                except OPEN_ERRORS as error:
                    failure = error
            modes = parse_avfoundation_modes(lines) or modes
            refused = any(AVFOUNDATION_RATE_REFUSED in line for line in lines)
            if not refused:
                break  # camera access denied, no such device: no other rate helps
            if not fps and len(tried) == 1:  # the first refusal lists the device's modes
                rates = [
                    other for other in _offered_rates(modes, size) if not _same_rate(other, rate)
                ]
        offers = f" (it offers {modes_text(modes)})" if modes else ""
        if refused:
            listed = ", ".join(f"{rate:.4g}" for rate in tried)
            raise VideoOpenError(
                f"{device}: the {self.format} device refuses {listed} fps{offers}: "
                "choose a frame rate and size it offers in the capture dialog (--fps, --size)"
            ) from failure
        reason = " ".join(lines[0].split()).rstrip(".") if lines else describe(failure)
        raise VideoOpenError(
            f"{device}: cannot open {self.format} capture ({reason}){offers}"
        ) from failure

    def _open_input(
        self, url: str, options: dict[str, str], timeout: float
    ) -> av.container.InputContainer:
        return av.open(
            url,
            format=self.format,
            container_options=options,
            stream_options=[{"flags": "low_delay", **DECODER_OPTIONS}],
            timeout=timeout,
        )

    def read(self) -> VideoFrame | None:
        """The next frame (blocks until the device delivers one); None when the stream ends.

        Raises VideoError when the device fails or vanishes mid-stream, or the source is
        closed.
        """
        if self._closed:  # demuxing a closed container crashes the process
            raise VideoError(f"{self.path}: the source is closed")
        frame = self._next_frame()
        if frame is None:
            return None
        rgb = square_pixels(to_rgb(frame), self._sar)
        result = VideoFrame(self._index, self._time_of(frame), rgb)
        self._index += 1
        return result

    def _next_frame(self) -> av.VideoFrame | None:
        while not self._pending:
            try:
                packet = next(self._packets)
            except StopIteration:
                return None
            except (av.FFmpegError, OSError) as error:
                raise VideoError(f"{self.path}: capture stopped ({describe(error)})") from error
            try:
                self._pending.extend(packet.decode())
            except (av.FFmpegError, OSError):
                self.skipped_frames += 1  # one bad frame (e.g. an MJPEG glitch): carry on
        return self._pending.pop(0)

    def _time_of(self, frame: av.VideoFrame) -> float:
        now = clock.monotonic()
        pts = float(frame.time) if frame.time is not None else None
        if self._origin is None:
            self._origin = (pts if pts is not None else 0.0, now)
        if pts is None:
            return now - self._origin[1]
        return pts - self._origin[0]

    def frames(self, start: float = 0.0, end: float | None = None) -> Iterator[VideoFrame]:
        """Frames with start <= time < end (seconds since the first frame)."""
        while (frame := self.read()) is not None:
            if end is not None and frame.time >= end:
                return
            if frame.time >= start:
                yield frame

    def close(self) -> None:
        """Release the device; closing again does nothing."""
        if not self._closed:
            self._closed = True
            self._container.close()

    def __enter__(self) -> CaptureSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CaptureSource({self.path!r}, {self.format}, {self.width}x{self.height}, {self.fps:g} fps)"
