"""Errors of the video layer: one clear line each, naming the file or device."""

from __future__ import annotations


class VideoError(Exception):
    """Base class; `str(error)` is one line that names the file or device."""


class VideoOpenError(VideoError):
    """Missing file, not a video, no video stream, or no decodable frame."""


class VideoWriteError(VideoError):
    """Unwritable output path, encoder failure, disk full."""


def describe(error: BaseException) -> str:
    """Short reason from an FFmpeg/OS error, without PyAV's repeated file name."""
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(reason).split())
