"""Whole videos: a range of a file desmoked into a side-by-side MP4 (audio copied).

`export_video` is also importable from engine.pipeline (the API documented there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.arguments import number, require
from engine.video import FileSource, SideBySideWriter, WriterThread, cut_short_warning
from engine.video.writer import DEFAULT_CRF, SOURCE_TIME_BASE

if TYPE_CHECKING:
    from engine.pipeline import Desmoker


class ExportCancelled(Exception):
    """Raised inside `export_video` when `should_stop()` says so; the output is removed."""


@dataclass
class ExportReport:
    output: Path
    frames: int
    skipped_frames: int
    seconds: float
    encoder: str
    # e.g. the input ends before its stated duration (a cut-short file), or changes its
    # frame size midway; several are joined by "; ".
    warning: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """'250 frames in 10.0 s, 25.0 frames/s, libx264[, 1 undecodable frame skipped]':
        the processing rate, not the video's."""
        text = f"{plural(self.frames, 'frame')} in {self.seconds:.1f} s, {self.fps:.1f} frames/s"
        text += f", {self.encoder}"
        if self.skipped_frames:
            text += f", {plural(self.skipped_frames, 'undecodable frame')} skipped"
        return text


def plural(count: int, noun: str) -> str:
    """'1 frame', '2 frames'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def export_video(
    source_path: str | Path,
    output_path: str | Path,
    desmoker: Desmoker,
    *,
    layout: str = "3up",
    labels: bool = False,
    start: float = 0.0,
    end: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    crf: int | None = None,
    video_stream: int = 0,
    how_to_switch: str = "",
) -> ExportReport:
    """Desmoke [start, end) of a video file into a side-by-side MP4 (audio copied, in time
    with the video stream exported); start and end in seconds (ValueError unless finite,
    start >= 0 and end > start); crf: H.264 quality (default
    engine.video.writer.DEFAULT_CRF; lower is better); video_stream: which of a file's
    video streams (0 the first, as FileSource numbers them); how_to_switch: the caller's
    way to pick another, said in the report's warning about a file of several.

    Frames of a size other than the one the video states (a stream whose size changes
    midway) are scaled to it, as FFmpeg does; the report's warning says from when.
    progress(frames_done, frames_expected) after each frame. The writer works on a temporary
    file: on any error, cancellation or Ctrl-C, nothing is left at `output_path`.
    """
    _check_range(start, end)
    began = time.perf_counter()
    with FileSource(source_path, video_stream) as source:
        stop = source.duration if end is None else min(end, source.duration)
        encoder = _open_writer(
            source,
            output_path,
            source_path=source_path,
            start=start,
            end=end,
            stop=stop,
            layout=layout,
            labels=labels,
            crf=crf,
        )
        with encoder:  # closed (the file complete) when the range is done, else aborted
            ended_at = _desmoke_range(
                desmoker,
                source,
                encoder,
                source_path=source_path,
                start=start,
                end=end,
                stop=stop,
                progress=progress,
                should_stop=should_stop,
            )
        warnings = (
            *source.notices_saying(how_to_switch),
            _size_change_warning(source_path, encoder.writer, start),
            cut_short_warning(source_path, ended_at, _stated_end(source, end)),
        )
        return ExportReport(
            output=Path(output_path),
            frames=encoder.writer.frames_written,
            skipped_frames=source.skipped_frames,
            seconds=time.perf_counter() - began,
            encoder=encoder.writer.encoder_name,
            warning="; ".join(warning for warning in warnings if warning),
        )


def _check_range(start: float, end: float | None) -> None:
    """A range in seconds: start finite and 0 or more, end (None: the video's) after it."""
    start = number("start", start)
    ok = math.isfinite(start) and start >= 0.0
    require(ok, "start", "a finite number of seconds, 0 or more", start)
    if end is not None:
        end = number("end", end)
        require(math.isfinite(end), "end", "a finite number of seconds or None", end)
        if end <= start:
            raise ValueError(f"empty range: end {end:g} s is not after start {start:g} s")


def _open_writer(
    source: FileSource,
    output_path: str | Path,
    *,
    source_path: str | Path,
    start: float,
    end: float | None,
    stop: float,
    layout: str,
    labels: bool,
    crf: int | None,
) -> WriterThread:
    """The side-by-side writer of [start, stop), encoding on a thread of its own (overlapping
    the next frames' desmoking)."""
    writer = SideBySideWriter(
        output_path,
        fps=source.fps,
        frame_size=(source.width, source.height),
        layout=layout,
        labels=labels,
        source=source_path,
        audio_start=start,
        audio_end=end,
        video_stream=source.video_stream,
        crf=DEFAULT_CRF if crf is None else crf,
        time_base=SOURCE_TIME_BASE,
        ends_at=stop - start,  # a variable rate's last frame lasts as the source's does
    )
    try:
        return WriterThread(writer)
    except BaseException:  # Ctrl-C or a kill between the two: the writer's file goes too
        writer.abort()
        raise


def _desmoke_range(
    desmoker: Desmoker,
    source: FileSource,
    encoder: WriterThread,
    *,
    source_path: str | Path,
    start: float,
    end: float | None,
    stop: float,
    progress: Callable[[int, int], None] | None,
    should_stop: Callable[[], bool] | None,
) -> float:
    """Each frame of [start, end) desmoked and queued on `encoder`; returns the time (s)
    where the last one ends. ValueError where the range holds no decodable frame."""
    expected = max(1, round((stop - start) * source.fps))
    ended_at = start
    for done, frame in enumerate(source.frames(start, end), start=1):
        if should_stop is not None and should_stop():
            raise ExportCancelled(f"export of {source_path} cancelled")
        result = desmoker.process(frame.rgb)
        # Each frame at its own time: a variable frame rate (a recorder that dropped
        # frames) keeps its timing, and its sync with the audio.
        shown_at = max(0.0, frame.time - start)
        encoder.write(result.original, result.dark_channel, result.desmoked, shown_at)
        ended_at = frame.time + 1 / source.fps
        if progress is not None:
            progress(done, max(expected, done))
    if encoder.frames_queued == 0:
        raise ValueError(f"{source_path}: {_empty_range_reason(source, start)}")
    return ended_at


def _empty_range_reason(source: FileSource, start: float) -> str:
    """Why [start, end) gave no frame: a start at or past the video's end (said with that
    end), else frames that do not decode."""
    video_end = source.end_time if source.end_time is not None else source.duration
    if start > 0 and video_end and start >= video_end:
        return f"the range starts at {start:g} s, at or after the video's end ({video_end:.2f} s)"
    return "no decodable frame in the range asked for"


def _size_change_warning(source_path: str | Path, writer: SideBySideWriter, start: float) -> str:
    """One line where frames of another size than the output's were scaled to it, or ""."""
    change = writer.size_change
    if change is None:
        return ""
    width, height = writer.frame_size
    return (
        f"{Path(source_path).name}: frames from {start + change.time:.2f} s are "
        f"{change.size[0]}x{change.size[1]}, not the video's {width}x{height} (its size "
        "changes midway): frames of other sizes are scaled to it"
    )


def _stated_end(source: FileSource, end: float | None) -> float:
    """Where the video stream says the range ends (0 when it states no duration)."""
    stated = source.video_duration
    return stated if end is None else min(end, stated)
