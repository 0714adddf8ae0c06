"""Fast playback in the app (2x, 4x) of a 1080p60 file: does the video keep its clock?

The app's own Reader, Processor and Recorder threads (offscreen Qt, no window) play the
clip from its first frame to its end; a run's ratio is the wall time that took over the
time it should take (duration / speed): 1.00 keeps time, 2.00 plays at half the speed
asked. Two variants, alternating (each first in every other round; this machine may be
shared): "every frame converted" (the reader's catch-up off: each frame decoded, converted
to RGB and handed on, as before late frames were dropped) and "late frames dropped" (the
reader as it is: behind its clock, the frames it is late for are decoded but not
converted). Also counted: the process's CPU time per second of video, frames converted,
frames processed, and the reader thread's wall time per frame decoding and per frame
converted (conversion includes the anamorphic and rotation handling, none for this clip).

The clip: the shared 720p clear clip upscaled to 1080p and played forwards then backwards
(500 frames), encoded at 60 fps (libx264, crf 16), or --clip. Recorded:
benchmarks/results/playback_speed.{md,json}.

    DESMOKE_DATA=../shared/data python benchmarks/playback_speed.py [--speeds 2 4]
        [--models dcp fast none] [--rounds 2] [--clip C.mp4] [--write | --out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from footage import clear_clip  # noqa: E402
from provenance import (  # noqa: E402
    add_output_arguments,
    finished,
    header,
    machine_record,
    output_folder,
)
from PySide6.QtCore import QCoreApplication  # noqa: E402

import engine.video.file_source as file_source  # noqa: E402
from desmoke_app.gui.processor import Processor  # noqa: E402
from desmoke_app.gui.reader import Reader, SourceSpec  # noqa: E402
from desmoke_app.gui.workers import WorkerThreads  # noqa: E402
from engine.video import FileSource, Mp4Writer  # noqa: E402

VARIANTS = ("every frame converted", "late frames dropped")
#: The processor's model and backend; "none": no model configured (the processor holds
#: the frames it is handed, nothing more): the reader's cost alone.
BACKENDS = {"fast": "onnxruntime", "dcp": "auto", "none": ""}
SIZE, FPS = (1920, 1080), 60


class Counts:
    """What the reader and processor threads did in a run, counted by wrapping them."""

    def __init__(self) -> None:
        self.reset()
        self._lock = threading.Lock()

    def reset(self) -> None:
        self.reads = self.converted = self.processed = 0
        self.read_s = self.convert_s = 0.0

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)


COUNTS = Counts()


def instrument() -> None:
    """Count and time reads, conversions and processed frames (on their own threads)."""
    displayed_rgb, read, process = file_source.displayed_rgb, FileSource.read, Processor._process

    def timed_displayed_rgb(frame, sar):
        start = time.perf_counter()
        rgb = displayed_rgb(frame, sar)
        COUNTS.add(converted=1, convert_s=time.perf_counter() - start)
        return rgb

    def timed_read(self, *args, **kwargs):
        start = time.perf_counter()
        frame = read(self, *args, **kwargs)
        COUNTS.add(reads=1, read_s=time.perf_counter() - start)
        return frame

    def counted_process(self, packet):
        COUNTS.add(processed=1)
        return process(self, packet)

    file_source.displayed_rgb = timed_displayed_rgb
    FileSource.read = timed_read
    Processor._process = counted_process


def make_clip(folder: Path) -> Path | None:
    """The shared clear clip at 1080p, forwards then backwards, at 60 fps."""
    clear = clear_clip()
    if clear is None:
        return None
    with FileSource(clear) as source:
        frames = [cv2.resize(f.rgb, SIZE, interpolation=cv2.INTER_CUBIC) for f in source.frames()]
    clip = folder / "lap_1080p60.mp4"
    with Mp4Writer(clip, fps=FPS, size=SIZE, crf=16) as writer:
        for rgb in frames + frames[::-1]:
            writer.write_image(rgb)
    return clip


def wait_for(app: QCoreApplication, event: threading.Event, timeout_s: float = 300) -> None:
    end = time.monotonic() + timeout_s
    while not event.is_set():
        if time.monotonic() > end:
            raise TimeoutError("playback did not end")
        app.processEvents()
        time.sleep(0.002)


def play_once(app: QCoreApplication, workers: WorkerThreads, clip: Path, speed: float) -> dict:
    """Open `clip`, play it to its end at `speed`; the run's measurements."""
    reader = workers.reader
    opened, ended = threading.Event(), threading.Event()
    info = []
    reader.opened.connect(lambda i: (info.append(i), opened.set()))
    reader.ended.connect(ended.set)
    reader.request_open(SourceSpec("file", str(clip)))
    wait_for(app, opened)
    time.sleep(0.5)  # the first frame shown and processed
    reader.request_speed(speed)
    COUNTS.reset()
    start, cpu_start = time.monotonic(), time.process_time()
    reader.request_play(True)
    wait_for(app, ended)
    wall, cpu = time.monotonic() - start, time.process_time() - cpu_start
    reader.opened.disconnect()
    reader.ended.disconnect()
    return {
        "ratio": wall / (info[0].duration / speed),
        # The whole process (FFmpeg's decoding threads and the processor included).
        "cpu_per_video_s": cpu / info[0].duration,
        "reads": COUNTS.reads,
        "converted": COUNTS.converted,
        "processed": COUNTS.processed,
        # Every frame is decoded, shown or dropped.
        "decode_ms": (COUNTS.read_s - COUNTS.convert_s) / info[0].frame_count * 1000,
        "convert_ms": COUNTS.convert_s / max(1, COUNTS.converted) * 1000,
    }


def set_variant(name: str, catch_up=Reader._catch_up_to) -> None:
    """`catch_up`: the reader's own, kept from import time."""
    Reader._catch_up_to = catch_up if name == "late frames dropped" else lambda self: None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speeds", type=float, nargs="+", default=[2.0, 4.0])
    parser.add_argument("--models", nargs="+", choices=sorted(BACKENDS), default=["dcp", "fast"])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (2)")
    parser.add_argument("--clip", type=Path, help="a clip to play instead (1080p60 made)")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    if args.rounds < 1 or min(args.speeds) <= 0:
        parser.error("--rounds must be at least 1 and --speeds above 0")
    record = machine_record()
    instrument()
    app = QCoreApplication([])
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or make_clip(Path(tmp))
        if clip is None:
            return 1
        for model in args.models:
            workers = WorkerThreads()
            if BACKENDS[model]:
                workers.processor.request_configure({"model": model, "backend": BACKENDS[model]})
            try:
                for r in range(args.rounds):
                    for speed in args.speeds:
                        for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
                            set_variant(variant)
                            run = play_once(app, workers, clip, speed)
                            runs.setdefault(f"{model} {speed:g}x {variant}", []).append(run)
                            print(f"{model} {speed:g}x {variant}: " + describe(run), flush=True)
            finally:
                workers.stop()
    print_summary(runs)
    folder = output_folder(args)
    if folder is not None:
        record = finished(record) | {"rounds": args.rounds, "clip": clip_name(args.clip)}
        write_results(folder, record, runs)
    return 0


def clip_name(clip: Path | None) -> str:
    return str(clip) if clip else "shared clear clip, 1080p, forwards then backwards, 60 fps"


def describe(run: dict) -> str:
    return (
        f"wall/expected {run['ratio']:.2f}, CPU {run['cpu_per_video_s']:.2f} s per s of "
        f"video, {run['reads']} reads, {run['converted']} "
        f"converted, {run['processed']} processed; per frame {run['decode_ms']:.1f} ms "
        f"decoding, per conversion {run['convert_ms']:.1f} ms (wall, reader thread)"
    )


def medians(values: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in values) for key in values[0]}


def print_summary(runs: dict[str, list[dict]]) -> None:
    for name, values in runs.items():
        ratios = ", ".join(f"{run['ratio']:.2f}" for run in values)
        print(f"{name}: median wall/expected {medians(values)['ratio']:.2f} ({ratios})")


def write_results(folder: Path, record: dict, runs: dict[str, list[dict]]) -> None:
    record |= {"runs": runs, "medians": {name: medians(v) for name, v in runs.items()}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "playback_speed.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# Fast playback of a 1080p60 file in the app's reader (offscreen, no window)",
        "",
        header(record),
        "",
        f"Clip: {record['clip']}. Wall time to play it to its end over duration / speed "
        f"(1.00 keeps time); medians of {record['rounds']} runs a row, variants alternating. "
        "CPU: the process's CPU time (all its threads) over the seconds of video played. "
        "Decoding and conversion: the reader thread's wall time (other threads and "
        "processes share the cores; FFmpeg's decoding threads work ahead while a frame "
        "converts). Model none: no model, the reader's cost alone.",
        "",
        "| run | wall/expected | runs | CPU s / video s | converted | processed | "
        "decode ms/frame | convert ms/frame converted |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, values in runs.items():
        m = medians(values)
        ratios = ", ".join(f"{run['ratio']:.2f}" for run in values)
        lines.append(
            f"| {name} | {m['ratio']:.2f} | {ratios} | {m['cpu_per_video_s']:.2f} | "
            f"{m['converted']:.0f} | "
            f"{m['processed']:.0f} | {m['decode_ms']:.1f} | {m['convert_ms']:.1f} |"
        )
    (folder / "playback_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
