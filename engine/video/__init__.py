"""Video I/O (PyAV): file and capture sources (their protocol: source.py), pane layout, writers."""

from engine.video.capture_source import (
    CaptureDevice,
    CaptureSource,
    list_capture_devices,
    platform_format,
)
from engine.video.errors import VideoError, VideoOpenError, VideoWriteError
from engine.video.file_source import FileSource, VideoFrame, cut_short_warning
from engine.video.layout import LAYOUTS, compose_panes, composed_size
from engine.video.source import SeekableSource, VideoSource
from engine.video.writer import Mp4Writer, SideBySideWriter
from engine.video.writer_thread import WriterThread

__all__ = [
    "LAYOUTS",
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
    "list_capture_devices",
    "platform_format",
]
