"""Video I/O (PyAV): file and capture sources (their protocol: source.py), pane layout, writers."""

from engine.video.capture_source import (
    CaptureDevice,
    CaptureSource,
    list_capture_devices,
    platform_format,
)
from engine.video.errors import VideoError, VideoOpenError, VideoWriteError
from engine.video.file_source import (
    MAX_FRAME_PIXELS,
    MAX_FRAME_SIDE,
    FileSource,
    VideoFrame,
    cut_short_warning,
    frame_size_problem,
    stated_image_size,
)
from engine.video.layout import LAYOUTS, compose_panes, composed_size
from engine.video.source import SeekableSource, VideoSource
from engine.video.writer import Mp4Writer, SideBySideWriter
from engine.video.writer_thread import WriterThread

__all__ = [
    "LAYOUTS",
    "MAX_FRAME_PIXELS",
    "MAX_FRAME_SIDE",
    "CaptureDevice",
    "CaptureSource",
    "FileSource",
    "Mp4Writer",
    "SeekableSource",
    "SideBySideWriter",
    "VideoError",
    "VideoFrame",
    "VideoOpenError",
    "VideoSource",
    "VideoWriteError",
    "WriterThread",
    "compose_panes",
    "composed_size",
    "cut_short_warning",
    "frame_size_problem",
    "list_capture_devices",
    "platform_format",
    "stated_image_size",
]
