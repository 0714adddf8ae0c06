"""Quitting while work runs: closing the window (or SIGTERM / SIGINT to the app) cancels an
export, which leaves no file, finishes a recording, which is kept, and returns promptly.
Quitting just after start-up exits cleanly too, and desmoke-app's --screenshot is checked
before the app starts and fails with exit code 1 where it cannot be saved."""

# The shared fixtures (clip, window) are imported from tests/gui_support.py, so their names
# shadow the test arguments by design.
# ruff: noqa: F811

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.video import FileSource
from tests.clips import make_index_clip
from tests.gui_support import (
    CLIP_SIZE,
    WAIT_MS,
    clip,  # noqa: F401 (fixture)
    export_under_way,
    long_clip,
    open_clip,
    window,  # noqa: F401 (fixture)
)

REPOSITORY = Path(__file__).resolve().parents[1]

# desmoke-app's main with the export started at once, in a process of its own: a signal
# ends the whole process.
APP_EXPORTING = """
import sys
from pathlib import Path
from PySide6.QtWidgets import QApplication
from desmoke_app.gui.export_worker import ExportRequest
from desmoke_app.gui.main_window import MainWindow
from desmoke_app.gui.termination import TerminationSignals
from tests.gui_support import DCP, make_settings

clip, folder = sys.argv[1], Path(sys.argv[2])
app = QApplication(sys.argv[:1])
TerminationSignals(app)
window = MainWindow(make_settings(folder))
app.aboutToQuit.connect(window.shutdown)
window.show()
window.start_export(ExportRequest(clip, str(folder / "exports" / "out.mp4"), settings=DCP))
sys.exit(app.exec())
"""


# desmoke-app's main, told to quit as soon as its event loop runs (or with its own
# arguments, e.g. --screenshot --after 0); then the top-level widgets left alive when
# main has returned: PySide deletes those at interpreter exit, wrapper by wrapper in no
# set order, which crashed the app (a pyqtgraph axis laid out after its label had gone).
APP_QUITTING_AT_ONCE = """
import os, signal, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from desmoke_app.gui.main import main

how, argv = sys.argv[1], sys.argv[2:]
app = QApplication(sys.argv[:1])
if how == "close":
    QTimer.singleShot(0, QApplication.closeAllWindows)
elif how == "SIGTERM":
    QTimer.singleShot(0, lambda: os.kill(os.getpid(), signal.SIGTERM))
code = main(argv)
print("left:", *sorted(type(widget).__name__ for widget in QApplication.topLevelWidgets()))
sys.exit(code)
"""

# desmoke-app's main with its screenshot's folder removed before the screenshot is due.
APP_LOSING_THE_SCREENSHOT_FOLDER = """
import os, shutil, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from desmoke_app.gui.main import main

app = QApplication(sys.argv[:1])
shot = sys.argv[1]
QTimer.singleShot(0, lambda: shutil.rmtree(os.path.dirname(shot)))
sys.exit(main(["--screenshot", shot, "--after", "0.5"]))
"""


def app_environment(tmp_path: Path) -> dict[str, str]:
    """A headless app with settings and a cache of the test's own."""
    return {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "DESMOKE_CACHE": str(tmp_path / "cache"),
    }


def run_script(script: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPOSITORY,
        env=app_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )


def frames_in(path: Path) -> int:
    with FileSource(path) as video:
        return sum(1 for _ in video.frames())


def test_closing_mid_export_cancels_it_and_keeps_the_recording(qtbot, window, tmp_path) -> None:
    recording = tmp_path / "recording.mp4"
    open_clip(qtbot, window, make_index_clip(tmp_path / "shown.mp4", 200, CLIP_SIZE, 25))
    window.play()
    window.start_recording(recording)
    qtbot.waitUntil(lambda: window.workers.recorder.frames_written >= 3, timeout=WAIT_MS)
    out = tmp_path / "exports" / "out.mp4"
    job, _ = export_under_way(qtbot, window, long_clip(tmp_path), out)
    window.close()
    # Finished when close returns: the old deadlock gave up waiting after 30 s with the
    # thread still running.
    assert job.thread.isFinished()
    qtbot.waitUntil(lambda: job.outcome != "", timeout=WAIT_MS)  # its queued outcome
    assert job.outcome == "cancelled"
    assert list(out.parent.iterdir()) == []  # neither the output nor a temporary file
    assert frames_in(recording) >= 3


@pytest.mark.parametrize(
    "number",
    [
        pytest.param(signal.SIGTERM, id="SIGTERM"),
        pytest.param(signal.SIGINT, id="SIGINT"),
        # Windows has no SIGHUP: getattr, so that the module still collects there.
        pytest.param(
            getattr(signal, "SIGHUP", None),
            id="SIGHUP",
            marks=pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here"),
        ),
    ],
)
def test_a_termination_signal_closes_the_app_cleanly(tmp_path, number) -> None:
    clip = make_index_clip(tmp_path / "long.mp4", 600, (320, 192), 25, gop=50)
    exports = tmp_path / "exports"
    exports.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", APP_EXPORTING, str(clip), str(tmp_path)],
        cwd=REPOSITORY,
        env=app_environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(exports.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [p.name for p in exports.iterdir() if p.name.endswith(".partial.mp4")], (
        "the export had not started, or had ended, before the signal"
    )
    process.send_signal(number)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert list(exports.iterdir()) == []


@pytest.mark.parametrize("source", ["demo", "file"])
def test_a_screenshot_at_once_exits_cleanly(tmp_path, clip, source) -> None:
    """--screenshot --after 0 quits while the workers are still starting: it crashed (rc
    139) at interpreter exit, after main had returned 0 (every run, on the test machine)."""
    shot = tmp_path / "shot.png"
    opened = [str(clip)] if source == "file" else []
    done = run_script(
        APP_QUITTING_AT_ONCE,
        "screenshot",
        *opened,
        "--screenshot",
        str(shot),
        "--after",
        "0",
        tmp_path=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["left:"]  # the window deleted by main, not at exit
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".shot")] == []


@pytest.mark.parametrize("how", ["close", "SIGTERM"])
def test_closing_at_start_up_exits_cleanly(tmp_path, how) -> None:
    done = run_script(APP_QUITTING_AT_ONCE, how, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.split() == ["left:"]


def test_a_screenshot_that_cannot_be_saved_exits_1(tmp_path) -> None:
    shot = tmp_path / "shots" / "shot.png"
    shot.parent.mkdir()
    done = run_script(APP_LOSING_THE_SCREENSHOT_FOLDER, str(shot), tmp_path=tmp_path)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    reason = "No such file or directory"
    assert errors == [f"desmoke-app: error: cannot save the screenshot to {shot}: {reason}"]
    assert not shot.parent.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--after", "nan"], "argument --after: expected a finite number, got 'nan'"),
        (["--after", "inf"], "argument --after: expected a finite number, got 'inf'"),
        (["--after", "-3"], "argument --after: must be 0 s or more, got -3"),
        (["--after", "1e9"], "--after must be at most 2147483 s, got 1e+09"),
        (["--screenshot", "shot8.txt"], "shot8.txt: not an image file name (end it in "),
        (["--screenshot", "{tmp}/missing/shot.png"], "{tmp}/missing/shot.png: no folder"),
        (["--screenshot", "{tmp}"], "not an image file name"),
        (["--screenshot", "{tmp}/shot.png"], "{tmp}/shot.png: is a folder"),
        (["--capture", "/dev/video4", "--fps", "nan"], "--fps must be above 0 and at most 1000"),
        (["--capture", "/dev/video4", "--fps", "5000"], "--fps must be above 0 and at most 1000"),
    ],
)
def test_app_arguments_are_checked_before_start_up(tmp_path, capsys, argv, message) -> None:
    from desmoke_app.gui.main import parse_args

    (tmp_path / "shot.png").mkdir()
    with pytest.raises(SystemExit) as exit_:
        parse_args([arg.format(tmp=tmp_path) for arg in argv])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("desmoke-app: error: ")
    assert message.format(tmp=tmp_path) in error


def test_app_model_without_shipped_weights_gets_the_apps_advice(capsys, monkeypatch) -> None:
    """The engine's advice (weights=W.safetensors) is its API's: the app takes --model W."""
    from desmoke_app.gui.main import parse_args
    from engine.models import weights

    shipped = weights.shipped_weights
    monkeypatch.setattr(weights, "shipped_weights", lambda m: None if m == "paper" else shipped(m))
    with pytest.raises(SystemExit):
        parse_args(["--model", "paper"])
    error = capsys.readouterr().err.splitlines()[-1]
    assert "pass them as --model W.safetensors" in error and "weights=" not in error
    assert error.endswith("or use --model fast or dcp")
    assert parse_args(["--model", "dcp"]).model == "dcp"


APP_WITH_A_BUSY_PROCESSOR = """
import functools, sys, time
from PySide6.QtCore import QTimer
from desmoke_app.gui import main, workers

# The processor busy for 3 s when the app quits (as building a TensorRT engine is), and a
# stop that gives up after 0.2 s instead of 8.
workers.WorkerThreads.stop = functools.partialmethod(workers.WorkerThreads.stop, 200)
made = workers.WorkerThreads.__init__


def made_then_busy(self):
    made(self)
    QTimer.singleShot(0, self.processor, lambda: time.sleep(3))


workers.WorkerThreads.__init__ = made_then_busy
sys.exit(main.main(sys.argv[1:]))
"""


def test_a_worker_that_does_not_stop_in_time_does_not_abort_the_exit(tmp_path) -> None:
    """A review: a QThread destroyed while it runs aborts the process (rc 134, 'QThread:
    Destroyed while thread is still running'); the app now exits with its own code."""
    shot = tmp_path / "shot.png"
    args = ("--screenshot", str(shot), "--after", "0.5")
    done = run_script(APP_WITH_A_BUSY_PROCESSOR, *args, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "did not stop in time" in done.stderr and "Destroyed while" not in done.stderr
    assert shot.read_bytes().startswith(b"\x89PNG")


def test_a_reader_blocked_opening_a_source_does_not_hold_up_stop(qtbot) -> None:
    """stop() waited for the reader's close without a limit: a reader blocked opening a
    source (a FIFO no one writes to) hung the quit forever, ignoring SIGTERM."""
    import threading

    from PySide6.QtCore import QTimer

    from desmoke_app.gui.workers import WorkerThreads

    workers = WorkerThreads()
    release = threading.Event()
    QTimer.singleShot(0, workers.reader, lambda: release.wait(30))  # as a blocked open is
    qtbot.waitUntil(lambda: workers.reader.thread().isRunning(), timeout=WAIT_MS)
    time.sleep(0.2)  # the reader is in its wait
    began = time.monotonic()
    workers.stop(300)
    assert time.monotonic() - began < 5
    assert workers.stuck() == ["reader"]
    release.set()
    assert workers.reader.thread().wait(WAIT_MS)  # its close then quit were still queued
    assert workers.stuck() == []


def test_a_recording_slow_to_finish_is_waited_for(qtbot, tmp_path, monkeypatch) -> None:
    """stop()'s deadline is for the reader and processor: a recording finishing past it
    (an hour's file rewritten for fast start on a slow drive) was cut off by the exit,
    leaving no file. The save stands in for that here, slower than the deadline."""
    import numpy as np

    from desmoke_app.gui import recorder
    from desmoke_app.gui.processor import ProcessedFrame
    from desmoke_app.gui.workers import WorkerThreads

    save = recorder._save

    def slow_save(writer, output):
        time.sleep(1.0)
        return save(writer, output)

    monkeypatch.setattr(recorder, "_save", slow_save)
    workers = WorkerThreads()
    image = np.full((96, 160, 3), 100, np.uint8)
    shown = ProcessedFrame(0, 0, 0.0, image, image[..., 0].copy(), image, 0.1)
    output = tmp_path / "kept.mp4"
    request = recorder.RecordRequest(str(output), 0, (160, 96), 25.0, shown=shown)
    workers.recorder.request_start(request)
    qtbot.waitUntil(lambda: workers.recorder.frames_written >= 1, timeout=WAIT_MS)
    workers.stop(200)
    assert workers.stuck() == [] and FileSource(output).frame_count >= 1


# desmoke-app's main with a stop that gives up after 3 s instead of 8.
APP_WITH_A_QUICK_STOP = """
import functools, sys
from desmoke_app.gui import main, workers

workers.WorkerThreads.stop = functools.partialmethod(workers.WorkerThreads.stop, 3000)
sys.exit(main.main(sys.argv[1:]))
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_quitting_while_a_source_is_still_opening_exits(tmp_path) -> None:
    """A FIFO no one writes to blocks its open: quitting hung forever (only kill -9)."""
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    shot = tmp_path / "shot.png"
    args = ("--capture", str(fifo), "--format", "mjpeg", "--screenshot", str(shot))
    done = run_script(APP_WITH_A_QUICK_STOP, *args, "--after", "0.5", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "desmoke-app" in line]
    # The reader, blocked; on a loaded machine the processor may still be loading its network.
    assert len(said) == 1 and said[0].startswith("desmoke-app: the reader"), said
    assert said[0].endswith("did not stop in time; exiting without waiting")
    assert shot.read_bytes().startswith(b"\x89PNG")


APP_FAILING_TO_BUILD_ITS_WINDOW = """
import sys
from desmoke_app.gui import main, main_window


def broken(self):
    raise RuntimeError("the view broke")


main_window.MainWindow._restore_view = broken  # after the worker threads have started
sys.exit(main.main(sys.argv[1:]))
"""


def test_a_window_that_fails_to_build_stops_its_threads_and_exits_1(tmp_path) -> None:
    """The window was built outside main's clean-up: its running worker threads aborted the
    process (rc 134, 'QThread: Destroyed while thread ... is still running') after a
    traceback."""
    done = run_script(APP_FAILING_TO_BUILD_ITS_WINDOW, tmp_path=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if "propagateSizeHints" not in line]
    assert lines == ["desmoke-app: error: cannot open the window: the view broke"]


def test_app_takes_weights_as_desmoke_does(tmp_path, capsys) -> None:
    """QA: `desmoke-app --weights W` was an unknown argument; it is --model W, and the
    CLI's spelling --model fast --weights W is checked against the model W holds."""
    from desmoke_app.gui.main import parse_args
    from engine.models import default_weights

    fast = str(default_weights("fast"))
    assert parse_args(["--weights", fast]).model == fast
    assert parse_args(["--model", "fast", "--weights", fast]).model == fast
    for argv, message in (
        (["--model", "paper", "--weights", fast], "holds a 'fast' model, not 'paper'"),
        (["--model", "dcp", "--weights", fast], "give either --model dcp or --weights"),
        (["--weights", str(tmp_path / "gone.safetensors")], "weights file not found"),
    ):
        with pytest.raises(SystemExit):
            parse_args(argv)
        error = capsys.readouterr().err.splitlines()[-1]
        assert error.startswith("desmoke-app: error: ") and message in error, argv
