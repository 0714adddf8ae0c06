"""CPU pipeline benchmark: per-stage ms and end-to-end fps for each model x backend.

Runs on the 720p clear clip of the shared data with smoke synthesised on it (written once
to a temporary MP4, so decoding is measured as a user would meet it), decode included and
encode excluded. The decode-only fps of the same clip is measured in the same run, so the
ratio holds across machines. Results: benchmarks/results/cpu_pipeline.{md,json}; with
--height 1080 the smoky clip is upscaled to 1080p first (a capture card's size) and the
results go to cpu_pipeline_1080p.{md,json}.

    DESMOKE_DATA=../shared/data python benchmarks/cpu_pipeline.py [--frames 120] [--height 1080]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from footage import clear_clip, smoky_clip  # noqa: E402

from engine.models import build_network, default_config, save_weights  # noqa: E402
from engine.pipeline import Desmoker, shipped_weights  # noqa: E402
from engine.video import FileSource  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("preprocess", "network", "restore", "mask", "total")
VARIANTS = [  # (model, backend, frames fraction): the paper net is slow on a CPU
    ("dcp", "torch", 1.0),
    ("fast", "onnxruntime", 1.0),
    ("fast", "torch", 1.0),
    ("paper", "onnxruntime", 0.25),
    ("paper", "torch", 0.25),
]


def decode_only_fps(clip: Path, frames: int) -> float:
    with FileSource(clip) as source:
        source.read()  # open and first frame outside the timing, as for the variants
        start = time.perf_counter()
        count = 0
        for _ in range(frames):
            if source.read() is None:
                break
            count += 1
    return count / (time.perf_counter() - start)


def weights_for(model: str, folder: Path) -> tuple[Path | None, str]:
    if model == "dcp":
        return None, "none (classical)"
    shipped = shipped_weights(model)
    if shipped is not None:
        return shipped, f"shipped {shipped.name}"
    path = folder / f"{model}.safetensors"  # untrained: timing only
    save_weights(path, build_network(model), default_config(model))
    return path, "untrained (timing only)"


def run_variant(clip: Path, desmoker: Desmoker, frames: int) -> dict:
    per_stage: dict[str, list[float]] = {stage: [] for stage in STAGES}
    with FileSource(clip) as source:
        for _ in range(3):  # warm-up: first-call allocations, ORT's first run
            desmoker.process(source.read().rgb)
        start = time.perf_counter()
        count = 0
        for _ in range(frames):
            frame = source.read()
            if frame is None:
                break
            result = desmoker.process(frame.rgb)
            for stage in STAGES:
                per_stage[stage].append(result.timings.get(stage, 0.0))
            count += 1
        elapsed = time.perf_counter() - start
    return {
        "fps": count / elapsed,
        "frames": count,
        "ms": {stage: statistics.median(values) for stage, values in per_stage.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--height", type=int, default=None, help="upscale the clip first")
    args = parser.parse_args()
    source = clear_clip()
    if source is None:
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        clip = smoky_clip(source, Path(tmp), args.height)
        with FileSource(clip) as opened:
            size = (opened.width, opened.height)
        decode_fps = decode_only_fps(clip, args.frames)
        rows = []
        for model, backend, fraction in VARIANTS:
            weights, provenance = weights_for(model, Path(tmp))
            desmoker = Desmoker(model, backend, weights=weights)
            measured = run_variant(clip, desmoker, max(10, int(args.frames * fraction)))
            rows.append(
                {
                    "model": model,
                    "backend": desmoker.backend_name,
                    "weights": provenance,
                    **measured,
                }
            )
            print(
                f"{model:6s} {desmoker.backend_name:12s} {measured['fps']:6.1f} fps "
                + " ".join(f"{k} {v:.1f}" for k, v in measured["ms"].items())
            )
    write_results(
        rows, decode_fps, args.frames, size, upscaled_from=source.name if args.height else None
    )
    return 0


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} CPU cores ({cpu}), {platform.system()}, torch {torch.__version__}"


def write_results(
    rows: list[dict],
    decode_fps: float,
    frames: int,
    size: tuple[int, int],
    upscaled_from: str | None = None,
) -> None:
    RESULTS.mkdir(exist_ok=True)
    width, height = size
    name = "cpu_pipeline" if upscaled_from is None else f"cpu_pipeline_{height}p"
    clip = "endo_720p.mp4 (1280x720)"
    if upscaled_from is not None:
        clip = f"endo_720p.mp4 upscaled to {width}x{height}"
    record = {
        "machine": machine(),
        "clip": f"{clip} with synthesised smoke, decode included, encode excluded",
        "decode_only_fps": decode_fps,
        "frames": frames,
        "fps": {f"{r['model']}/{r['backend']}": r["fps"] for r in rows},
        "fps_relative_to_decode": {
            f"{r['model']}/{r['backend']}": r["fps"] / decode_fps for r in rows
        },
        "variants": rows,
        "date": time.strftime("%Y-%m-%d"),
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"# CPU pipeline benchmark ({height}p in -> {height}p out)",
        "",
        f"Machine: {record['machine']}. Date: {record['date']}. Clip: {record['clip']}.",
        f"Decode-only (PyAV, RGB out) of the same clip in the same run: {decode_fps:.0f} fps.",
        "Per-stage times are medians in ms; fps is end to end (decode + all stages).",
        "",
        "| model | backend | weights | fps | x decode | " + " | ".join(STAGES) + " |",
        "|---|---|---|---|---|" + "---|" * len(STAGES),
    ]
    for r in rows:
        stages = " | ".join(f"{r['ms'][s]:.1f}" for s in STAGES)
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['weights']} | {r['fps']:.1f} | "
            f"{r['fps'] / decode_fps:.2f} | {stages} |"
        )
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
