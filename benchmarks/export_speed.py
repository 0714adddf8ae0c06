"""Side-by-side export on the CPU: encoding on the desmoking thread (serial) vs on a
thread of its own (engine.video.WriterThread, what `export_video` does), in one run.

The clip is the shared 720p clear clip with synthesised smoke, upscaled to 1080p as in
cpu_pipeline.py (a capture card's size); `fast` on onnxruntime, 3-up layout, libx264.
Each variant runs once a round, first in every other round; the median counts (this machine is
shared). Recorded: benchmarks/results/export_speed.{md,json}.

    DESMOKE_DATA=../shared/data python benchmarks/export_speed.py [--frames 100]
        [--rounds 4] [--write | --out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from footage import clear_clip, smoky_clip  # noqa: E402
from provenance import (  # noqa: E402
    add_output_arguments,
    finished,
    header,
    machine_record,
    output_folder,
)

from engine.export import export_video  # noqa: E402
from engine.pipeline import Desmoker  # noqa: E402
from engine.video import FileSource, SideBySideWriter  # noqa: E402


def export_serial(clip: Path, out: Path, desmoker: Desmoker, seconds: float) -> int:
    """The export loop with every frame encoded before the next is desmoked."""
    with FileSource(clip) as source:
        with SideBySideWriter(
            out, fps=source.fps, frame_size=(source.width, source.height), layout="3up"
        ) as writer:
            for frame in source.frames(0.0, seconds):
                result = desmoker.process(frame.rgb)
                writer.write(result.original, result.dark_channel, result.desmoked)
        return writer.frames_written


def export_threaded(clip: Path, out: Path, desmoker: Desmoker, seconds: float) -> int:
    return export_video(clip, out, desmoker, layout="3up", end=seconds).frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames a run (100)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds (4)")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    if args.frames < 1 or args.rounds < 1:
        parser.error("--frames and --rounds must be at least 1")
    source = clear_clip()
    if source is None:
        return 1
    record = machine_record()
    variants = {"serial": export_serial, "writer thread": export_threaded}
    runs: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        clip = smoky_clip(source, Path(tmp), 1080)
        with FileSource(clip) as opened:
            seconds = args.frames / opened.fps
        desmoker = Desmoker("fast", "onnxruntime")
        with FileSource(clip) as opened:
            desmoker.process(opened.read().rgb)  # warm-up outside the timing
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(variants)[::-1]
            for name in order:
                export = variants[name]
                start = time.perf_counter()
                frames = export(clip, Path(tmp) / "out.mp4", desmoker, seconds)
                fps = frames / (time.perf_counter() - start)
                runs[name].append(fps)
                print(f"{name}: {frames} frames, {fps:.1f} fps", flush=True)
    folder = output_folder(args)
    if folder is not None:
        record = finished(record) | {"frames": args.frames, "rounds": args.rounds}
        write_results(folder, record, runs)
    return 0


def write_results(folder: Path, record: dict, runs: dict[str, list[float]]) -> None:
    median = {name: statistics.median(values) for name, values in runs.items()}
    record |= {
        "fps_median": median,
        "fps_runs": runs,
        "speed_up": median["writer thread"] / median["serial"],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "export_speed.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# Side-by-side export, 1080p in -> 5760x1080 3-up out (fast, onnxruntime, libx264)",
        "",
        header(record),
        "",
        f"{record['frames']} frames a run, decode, desmoke and encode included; median of "
        f"{record['rounds']} runs per variant, alternating (each first in every other round).",
        "",
        "| encoding | fps (median) | runs |",
        "|---|---|---|",
        *(
            f"| {name} | {median[name]:.1f} | {', '.join(f'{v:.1f}' for v in values)} |"
            for name, values in runs.items()
        ),
        "",
        f"Writer thread over serial (medians): x{record['speed_up']:.2f}; slowest writer-thread "
        f"run over fastest serial run: x{min(runs['writer thread']) / max(runs['serial']):.2f}.",
    ]
    (folder / "export_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
