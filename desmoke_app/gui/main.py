"""`desmoke-app [FILE]`: the desktop app; with no file it starts on the built-in demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ICON = Path(__file__).resolve().parents[2] / "assets" / "icons" / "desmoke.svg"


def version() -> str:
    try:
        from importlib.metadata import version as package_version

        return package_version("desmoke")
    except Exception:  # noqa: BLE001 - running from a source tree that is not installed
        return "0.1.0"


def frame_size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080), for argparse."""
    width, _, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        size = (0, 0)
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}")
    return size


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from engine.backends import BACKEND_NAMES

    parser = argparse.ArgumentParser(
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
        help="what the capture device sends: mjpeg (USB cards at 1080p), yuyv422, nv12, ...",
    )
    parser.add_argument("--model", help="fast, paper, dcp or a .safetensors file")
    parser.add_argument("--backend", choices=BACKEND_NAMES, help="inference backend")
    parser.add_argument("--play", action="store_true", help="start playing a file at once")
    parser.add_argument(
        "--screenshot",
        metavar="PNG",
        help="save a screenshot of the window after --after seconds, then quit",
    )
    parser.add_argument("--after", type=float, default=4.0, help="seconds before --screenshot")
    parser.add_argument("--version", action="version", version=f"desmoke-app {version()}")
    args = parser.parse_args(argv)
    if not args.capture and (args.size or args.fps or args.pixel_format):
        parser.error("--size, --fps and --pixel-format apply to --capture")
    if args.fps is not None and args.fps <= 0:
        parser.error(f"--fps must be positive, got {args.fps:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from desmoke_app.gui.main_window import MainWindow
    from desmoke_app.gui.settings import APPLICATION, ORGANISATION
    from desmoke_app.gui.termination import TerminationSignals

    app = QApplication.instance() or QApplication(sys.argv[:1])
    TerminationSignals(app)  # kill / Ctrl-C close the window as its close button does
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    if ICON.is_file():
        app.setWindowIcon(QIcon(str(ICON)))
    window = MainWindow()
    app.aboutToQuit.connect(window.shutdown)
    overrides = {k: v for k, v in (("model", args.model), ("backend", args.backend)) if v}
    if overrides:  # for this session: the settings saved from the controls stay as they were
        window.set_processing(remember=False, **overrides)
    if args.capture:
        window.open_capture(args.capture, args.format, args.size, args.fps, args.pixel_format)
    elif args.file:
        window.open_file(args.file, autoplay=args.play)
    else:
        window.open_demo()
    window.show()
    if args.screenshot:
        QTimer.singleShot(round(args.after * 1000), lambda: _screenshot(window, args.screenshot))
    return app.exec()


def _screenshot(window, path: str) -> None:
    """Grab the window as Qt paints it and quit (for docs and smoke checks)."""
    from PySide6.QtWidgets import QApplication

    if not window.grab().save(path):
        print(f"desmoke-app: error: cannot save the screenshot to {path}", file=sys.stderr)
    QApplication.instance().quit()


if __name__ == "__main__":
    sys.exit(main())
