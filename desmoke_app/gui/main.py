"""`desmoke-app [FILE]`: the desktop app; with no file it starts on the built-in demo."""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path

from desmoke_app import version

ICON = Path(__file__).resolve().parents[2] / "assets" / "icons" / "desmoke.svg"
#: QTimer counts milliseconds in 32 bits: a longer --after would overflow it.
LONGEST_AFTER_S = (2**31 - 1) // 1000
NO_DISPLAY = (
    "desmoke-app: no display to open a window on "
    "(set DISPLAY, or QT_QPA_PLATFORM=offscreen for --screenshot)"
)


def frame_size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080), for argparse: a size desmoke reads frames of."""
    from engine.video import frame_size_problem

    width, _, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        size = (0, 0)
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}")
    problem = frame_size_problem(*size)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return size


def weights_file(text: str) -> str:
    """--weights (and --model W), for argparse: a .safetensors file that is there."""
    from engine.models.weights import not_weights_reason

    reason = not_weights_reason(text)
    if reason:
        raise argparse.ArgumentTypeError(
            f"{reason} (--model and --weights take .safetensors weights)"
        )
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: weights file not found")
    return text


def app_model(text: str) -> str:
    """--model, for argparse: a known model name or a weights file (a trained file is
    --model W, or --weights W as in desmoke); parse_args refuses a name with no weights."""
    from engine.models import MODEL_NAMES

    if Path(text).suffix:
        return weights_file(text)
    if text not in MODEL_NAMES:
        known = ", ".join(MODEL_NAMES)
        raise argparse.ArgumentTypeError(
            f"unknown model {text!r} (known: {known}, or W.safetensors)"
        )
    return text


def _no_shipped_weights_advice(model: str) -> str:
    """What to do where no weights ship for `model`, in the app's words."""
    from engine.models.weights import runnable_models

    return (
        f"--model {model}: no trained {model!r} weights are shipped: pass them as --model "
        f"W.safetensors (train them with desmoke train --config training/configs/{model}.toml),"
        f" or use --model {' or '.join(runnable_models())}"
    )


def screenshot_path(text: str) -> Path:
    """--screenshot, for argparse: a file Qt can write an image to, in a folder that is
    there, checked before the app starts (a scripted check fails at once, not after it)."""
    from PySide6.QtGui import QImageWriter

    from engine.files import name_too_long

    path = Path(text)
    writable = sorted(bytes(name).decode() for name in QImageWriter.supportedImageFormats())
    if path.suffix.lower().lstrip(".") not in writable:
        raise argparse.ArgumentTypeError(
            f"{text}: not an image file name (end it in {', '.join('.' + s for s in writable)})"
        )
    if not os.path.isdir(path.parent):  # Path.is_dir raises on a name too long (3.11)
        raise argparse.ArgumentTypeError(f"{text}: no folder {path.parent}")
    if name_too_long(path):
        raise argparse.ArgumentTypeError(f"{text}: the file name is too long")
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text}: is a folder")
    if not os.access(path.parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: cannot write to the folder {path.parent}")
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from desmoke_app.commands.common import (
        MAX_VIDEO_STREAM,
        OneLineArgumentParser,
        int_in_range,
        seconds,
    )
    from engine.backends import BACKEND_NAMES
    from engine.models import MODEL_NAMES
    from engine.models.weights import runnable_models
    from engine.video.capture_source import MAX_CAPTURE_FPS

    parser = OneLineArgumentParser(
        prog="desmoke-app",
        description="Laparoscopic video desmoking: original | dark channel | desmoked, live.",
    )
    parser.add_argument("file", nargs="?", help="video file to open (default: the built-in demo)")
    parser.add_argument("--capture", metavar="DEVICE", help="open a capture device instead")
    parser.add_argument("--format", help="capture format (v4l2, dshow, avfoundation, lavfi)")
    parser.add_argument(
        "--size", type=frame_size, metavar="WxH", help="capture size, e.g. 1920x1080"
    )
    parser.add_argument("--fps", type=float, help="capture frame rate")
    parser.add_argument(
        "--pixel-format",
        metavar="FORMAT",
        help="what the capture device sends: mjpeg (USB cards at 1080p; v4l2 only), yuyv422, "
        "nv12, ...",
    )
    parser.add_argument("--model", type=app_model, help="fast, paper, dcp or a .safetensors file")
    parser.add_argument(
        "--weights",
        type=weights_file,
        help="a .safetensors file: the same as --model W (with --model fast or paper, the "
        "file must hold that model)",
    )
    parser.add_argument("--backend", choices=BACKEND_NAMES, help="inference backend")
    parser.add_argument("--play", action="store_true", help="start playing a file at once")
    parser.add_argument(
        "--video-stream",
        type=int_in_range(1, MAX_VIDEO_STREAM),
        default=1,
        metavar="N",
        help="which video stream of a file that has several (a stereo laparoscope's two "
        "eyes), counted from 1 (default 1; View > Video stream switches)",
    )
    parser.add_argument(
        "--screenshot",
        type=screenshot_path,
        metavar="PNG",
        help="save a screenshot of the window after --after seconds, then quit",
    )
    parser.add_argument(
        "--after", type=seconds, default=4.0, help="seconds before --screenshot (default 4)"
    )
    parser.add_argument("--version", action="version", version=f"desmoke-app {version()}")
    args = parser.parse_args(argv)
    if not args.capture and (args.size or args.fps or args.pixel_format):
        parser.error("--size, --fps and --pixel-format apply to --capture")
    if args.video_stream != 1 and not args.file:
        parser.error("--video-stream applies to a video file")
    if args.fps is not None and not 0 < args.fps <= MAX_CAPTURE_FPS:  # NaN too
        parser.error(f"--fps must be above 0 and at most {MAX_CAPTURE_FPS}, got {args.fps:g}")
    if args.after > LONGEST_AFTER_S:
        parser.error(f"--after must be at most {LONGEST_AFTER_S} s, got {args.after:g}")
    if args.weights:
        problem = _weights_problem(args.model, args.weights)
        if problem:
            parser.error(problem)
        args.model = args.weights  # the app runs a trained file as its model
    elif args.model in MODEL_NAMES and args.model not in runnable_models():
        parser.error(_no_shipped_weights_advice(args.model))
    return args


def _weights_problem(model: str | None, weights: str) -> str:
    """Why --model does not go with --weights ("" where it does): the CLI's spelling,
    --model fast --weights W, is accepted where W holds a fast model."""
    from engine.models import NETWORK_MODELS
    from engine.models.weights import WeightsError, read_config

    if model is None:
        return ""
    if model not in NETWORK_MODELS:
        return f"--weights {weights}: give either --model {model} or --weights, not both"
    try:
        held = read_config(weights).get("model")
    except WeightsError as error:
        return str(error)
    if held != model:
        return f"--weights {weights}: holds a '{held}' model, not '{model}'"
    return ""


def no_display() -> bool:
    """Whether Qt would find no display on Linux: neither an X11 nor a Wayland one, and no
    platform chosen. Qt then aborts the process with a message that blames a missing
    xcb-cursor library."""
    names = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    return sys.platform.startswith("linux") and not any(os.environ.get(n) for n in names)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if no_display():
        print(NO_DISPLAY, file=sys.stderr)
        return 1
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from desmoke_app.gui.lifetime import GuiThreadCollector
    from desmoke_app.gui.settings import APPLICATION, ORGANISATION
    from desmoke_app.gui.termination import TerminationSignals

    app = QApplication.instance() or QApplication(sys.argv[:1])
    TerminationSignals(app)  # kill / Ctrl-C close the window as its close button does
    GuiThreadCollector(app).start()  # Qt objects freed on the GUI thread only
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    if ICON.is_file():
        app.setWindowIcon(QIcon(str(ICON)))
    window = _make_window()
    if window is None:
        return 1
    code = 1  # where start-up raises
    try:
        code = _run(app, window, args)
        return code
    finally:
        stuck = _tear_down(window)
        if stuck:
            _exit_now(code, stuck)


def _make_window():
    """The main window, or None where building it raised (said in one line): the worker
    threads it had started are stopped first, as a QThread destroyed while it runs aborts
    the process."""
    from desmoke_app.gui.main_window import MainWindow
    from desmoke_app.gui.messages import one_line
    from desmoke_app.gui.workers import WorkerThreads

    try:
        return MainWindow()
    except Exception as error:  # noqa: BLE001 - one line, the threads stopped, exit 1
        print(f"desmoke-app: error: {one_line(error, 'cannot open the window')}", file=sys.stderr)
        stuck = WorkerThreads.stop_all()
        if stuck:
            _exit_now(1, stuck)
        return None


def _run(app, window, args: argparse.Namespace) -> int:
    """Open what the command line asks for and run the event loop: its exit code."""
    from PySide6.QtCore import QTimer

    app.aboutToQuit.connect(window.shutdown)
    overrides = {k: v for k, v in (("model", args.model), ("backend", args.backend)) if v}
    if overrides:  # for this session: the settings saved from the controls stay as they were
        window.set_processing(remember=False, **overrides)
    if args.capture:
        window.open_capture(args.capture, args.format, args.size, args.fps, args.pixel_format)
    elif args.file:
        window.open_file(args.file, autoplay=args.play, video_stream=args.video_stream - 1)
    else:
        window.open_demo()
    window.show()
    if args.screenshot:
        shoot = partial(_screenshot, window, args.screenshot)
        QTimer.singleShot(round(args.after * 1000), window, shoot)  # none once it is gone
    return app.exec()


def _tear_down(window) -> list[str]:
    """Stop the worker threads (already done where the app quit; not where start-up
    raised) and delete the window now, while the interpreter is whole. Qt then deletes its
    widgets and plot items in its own order, each parent before its children. The threads
    still running: those that did not stop in time ("reader", "export", ...).

    Left alive (the aboutToQuit connection and the screenshot timer refer to it), the
    window was deleted by PySide's clean-up at interpreter exit, which deletes the objects
    it still wraps one by one in no set order: a pyqtgraph axis was laid out again after its
    label had gone, its Python resizeEvent raised, and shiboken crashed reporting that
    error (a segfault after main had returned 0)."""
    import shiboken6

    window.shutdown()
    export = window.export_job  # its thread, too, aborts the process destroyed running
    stuck = window.workers.stuck() + (["export"] if export and export.is_running() else [])
    shiboken6.delete(window)
    return stuck


def _exit_now(code: int, stuck: list[str]) -> None:
    """Exit without Python's clean-up, saying which threads did not stop in time (a reader
    blocked opening a source, a processor busy building a TensorRT engine): a QThread
    destroyed while it runs aborts the process, which that clean-up would do."""
    left = " (its unfinished temporary file may be left beside its output)"
    print(
        f"desmoke-app: the {', '.join(stuck)} thread{'s' if len(stuck) > 1 else ''} did not "
        f"stop in time; exiting without waiting{left if 'export' in stuck else ''}",
        file=sys.stderr,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _screenshot(window, path: Path) -> None:
    """Grab the window, save it, and quit: exit code 0 when saved, 1 when not (for the
    docs and smoke checks)."""
    from PySide6.QtWidgets import QApplication

    from desmoke_app.commands.common import visible

    problem = save_screenshot(window, path)
    if problem:
        print(
            visible(f"desmoke-app: error: cannot save the screenshot to {path}: {problem}"),
            file=sys.stderr,
        )
    QApplication.instance().exit(1 if problem else 0)


def save_screenshot(widget, path: Path) -> str:
    """`widget` as Qt paints it into the image file `path` (its suffix names the format),
    whole or not at all; "" when saved, else why not."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    from engine.files import write_atomically
    from engine.video.errors import describe

    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not widget.grab().save(buffer, path.suffix.lstrip(".").lower()):
        return f"Qt cannot write {path.suffix} images"
    try:
        write_atomically(path, data.data())
    except OSError as error:
        return describe(error)
    return ""


if __name__ == "__main__":
    sys.exit(main())
