"""What a video source is: the interface FileSource, CaptureSource and the app's demo share.

Structural (typing.Protocol): a source need not inherit from these, only have their members.
`SeekableSource` adds what only a source with frames before and after the one shown has
(a file, the demo): seeking, and where its frames end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from engine.video.file_source import VideoFrame


@runtime_checkable
class VideoSource(Protocol):
    """Frames one after another, from a file, a capture device or the demo.

    width and height: the displayed size (square pixels). duration (s) and frame_count:
    None where the source has none (a live capture). is_live: frames arrive in real time,
    with none before or after. skipped_frames: frames that did not decode, so far.
    notices: one-line warnings about the source for the user, known once it is open (a
    monochrome video, a file with several video streams); () where there are none.
    """

    @property
    def path(self) -> str | Path: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def fps(self) -> float: ...

    @property
    def duration(self) -> float | None: ...

    @property
    def frame_count(self) -> int | None: ...

    @property
    def is_live(self) -> bool: ...

    @property
    def skipped_frames(self) -> int: ...

    @property
    def notices(self) -> tuple[str, ...]: ...

    def read(self) -> VideoFrame | None:
        """The next frame; None at the end. Raises VideoError where reading fails."""
        ...

    def frames(self, start: float = 0.0, end: float | None = None) -> Iterator[VideoFrame]:
        """Frames with start <= time < end."""
        ...

    def close(self) -> None:
        """Release the file or device; closing again does nothing."""
        ...


@runtime_checkable
class SeekableSource(VideoSource, Protocol):
    """A source that goes to any of its frames (a file, the demo).

    last_index and end_time: the last frame that decodes and when it ends (s), once found
    (a file cut short ends before the frames it states); None while unknown, or where every
    frame stated decodes. video_duration: what the video stream states (s), 0 when nothing.
    """

    @property
    def last_index(self) -> int | None: ...

    @property
    def end_time(self) -> float | None: ...

    @property
    def video_duration(self) -> float: ...

    def seek_frame(self, index: int) -> VideoFrame | None:
        """Frame `index` (then read() goes on from it); None past the frames stated."""
        ...

    def seek(self, time: float) -> VideoFrame | None:
        """The frame shown at `time` (s)."""
        ...
