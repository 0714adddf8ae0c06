"""Encoding on a thread of its own (WriterThread): order, errors, aborts, nothing left."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import pytest

from engine.video import SideBySideWriter, VideoWriteError, WriterThread
from tests.clips import index_frame, read_index
from tests.test_video_writer import assert_nothing_left, panes


class SlowWriter:
    """Records what it is asked to write, a little slowly (frames queue up behind it)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.written: list[int] = []
        self.frames_written = 0
        self.fail_at = fail_at
        self.closed = self.aborted = False
        self.threads: set[str] = set()

    def write(self, index: int, *, tag: str = "") -> None:
        self.threads.add(threading.current_thread().name)
        time.sleep(0.005)
        if index == self.fail_at:
            raise VideoWriteError(f"out.mp4: writing failed (disk full at {index})")
        self.written.append(index)
        self.frames_written += 1

    def close(self) -> Path:
        self.closed = True
        return Path("out.mp4")

    def abort(self) -> None:
        self.aborted = True


def run_with_timeout(action, seconds: float = 10.0) -> None:
    """Run `action` on a thread; fail (instead of hanging the suite) if it blocks."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            action()
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=guarded, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "blocked"
    if errors:
        raise errors[0]


def test_frames_are_written_in_order_on_another_thread() -> None:
    writer = SlowWriter()
    with WriterThread(writer, depth=2) as encoder:
        for index in range(20):
            encoder.write(index, tag="x")
    assert writer.written == list(range(20)) and writer.closed and not writer.aborted
    assert encoder.frames_queued == 20
    assert writer.threads == {"writer"}


def test_a_failed_write_is_raised_to_the_caller_and_aborts() -> None:
    writer = SlowWriter(fail_at=3)

    def export() -> None:
        with WriterThread(writer, depth=1) as encoder:
            for index in range(50):  # the caller must not block on a full queue
                encoder.write(index)

    with pytest.raises(VideoWriteError, match="disk full at 3"):
        run_with_timeout(export)
    assert writer.written == [0, 1, 2] and writer.aborted and not writer.closed


def test_a_failure_on_the_last_frame_is_raised_by_close() -> None:
    writer = SlowWriter(fail_at=4)
    encoder = WriterThread(writer)
    for index in range(5):
        encoder.write(index)
    with pytest.raises(VideoWriteError, match="disk full at 4"):
        encoder.close()
    assert writer.aborted and not writer.closed


def test_an_error_in_the_caller_drops_the_waiting_frames() -> None:
    writer = SlowWriter()

    def cancelled() -> None:
        with WriterThread(writer, depth=4) as encoder:
            for index in range(6):
                encoder.write(index)
            raise KeyboardInterrupt  # Ctrl-C, a cancel, a desmoking error

    with pytest.raises(KeyboardInterrupt):
        run_with_timeout(cancelled)
    assert writer.aborted and not writer.closed
    assert len(writer.written) < 6  # frames still waiting were not encoded


def test_a_real_export_through_the_thread_is_complete_and_in_order(tmp_path) -> None:
    out = tmp_path / "out.mp4"
    writer = SideBySideWriter(out, fps=25, frame_size=(64, 48))
    with WriterThread(writer) as encoder:
        for index in range(12):
            original = index_frame(index, (64, 48))
            encoder.write(original, original[:, :, 0], original)
    with av.open(str(out)) as container:
        indices = [read_index(f.to_ndarray(format="rgb24")[:, :64]) for f in container.decode()]
    assert indices == list(range(12))
    assert_nothing_left(tmp_path, keep=["out.mp4"])


def test_a_real_writer_failing_on_its_thread_leaves_nothing(tmp_path) -> None:
    class FullDisk:
        def encode(self, frame):
            raise OSError(28, "No space left on device")

    writer = SideBySideWriter(tmp_path / "out.mp4", fps=25, frame_size=(64, 48))
    writer._stream = FullDisk()
    with pytest.raises(VideoWriteError, match="No space left"):
        with WriterThread(writer) as encoder:
            for index in range(5):
                encoder.write(*panes(index))
    assert_nothing_left(tmp_path)


def test_an_interrupt_while_the_last_frames_are_written_aborts() -> None:
    """Ctrl-C arriving while close() waits for the queued frames: the writer is aborted
    (its partial file removed), not left half-written."""
    writer = SlowWriter()
    encoder = WriterThread(writer)
    encoder.write(0)
    joined = encoder._thread.join

    def interrupted_join(*args) -> None:
        joined()
        raise KeyboardInterrupt

    encoder._thread.join = interrupted_join
    with pytest.raises(KeyboardInterrupt):
        encoder.close()
    assert writer.aborted and not writer.closed
