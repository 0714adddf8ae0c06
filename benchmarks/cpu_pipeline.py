"""CPU pipeline benchmark: per-stage ms and end-to-end fps for each model x backend.

Runs on the 720p clear clip of the shared data with smoke synthesised on it (written once
to a temporary MP4, so decoding is measured as a user would meet it), decode included and
encode excluded. Each variant, and decoding alone, runs once per round; the rounds
alternate the variants (this machine is shared: a burst of load then hits one round, not
one variant) and the median of the rounds' fps counts. Per-stage times are medians over
every frame of every round. Recorded: benchmarks/results/cpu_pipeline.{md,json}; with
--height 1080 the smoky clip is upscaled to 1080p first (a capture card's size) and the
results are cpu_pipeline_1080p.{md,json}.

    DESMOKE_DATA=../shared/data python benchmarks/cpu_pipeline.py [--frames 120]
        [--rounds 3] [--height 1080] [--write | --out DIR]
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

from footage import clear_clip, smoky_clip  # noqa: E402
from provenance import (  # noqa: E402
    add_output_arguments,
    finished,
    header,
    machine_record,
    output_folder,
)

from engine.models import (  # noqa: E402
    build_network,
    default_config,
    save_weights,
    shipped_weights,
)
from engine.pipeline import Desmoker  # noqa: E402
from engine.video import FileSource  # noqa: E402

STAGES = ("preprocess", "network", "restore", "mask", "total")
VARIANTS = [  # (model, backend, frames fraction): the paper net is slow on a CPU
    ("dcp", "torch", 1.0),
    ("fast", "onnxruntime", 1.0),
    ("fast", "torch", 1.0),
    ("paper", "onnxruntime", 0.25),
    ("paper", "torch", 0.25),
]
WARM_UP_FRAMES = 3  # first-call allocations, ORT's first run


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


def one_round(clip: Path, desmoker: Desmoker, frames: int) -> tuple[float, dict[str, list]]:
    """fps over `frames` frames (decode included) and every frame's stage times."""
    per_stage: dict[str, list[float]] = {stage: [] for stage in STAGES}
    with FileSource(clip) as source:
        source.read()  # open and first frame outside the timing, as for decoding alone
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
    return count / (time.perf_counter() - start), per_stage


def warmed_up(model: str, backend: str, clip: Path, folder: Path) -> tuple[Desmoker, str]:
    weights, provenance = weights_for(model, folder)
    desmoker = Desmoker(model, backend, weights=weights)
    with FileSource(clip) as source:
        for _ in range(WARM_UP_FRAMES):
            desmoker.process(source.read().rgb)
    return desmoker, provenance


def measure(clip: Path, frames: int, rounds: int, folder: Path) -> tuple[list[float], list]:
    """Decode-only fps per round, and a row per variant (median fps of the rounds)."""
    variants = [
        (*warmed_up(model, backend, clip, folder), fraction)
        for model, backend, fraction in VARIANTS
    ]
    decode_fps = []
    fps: list[list[float]] = [[] for _ in variants]
    stages: list[dict[str, list[float]]] = [{s: [] for s in STAGES} for _ in variants]
    for r in range(rounds):
        decode_fps.append(decode_only_fps(clip, frames))
        for i, (desmoker, _, fraction) in enumerate(variants):
            round_fps, per_stage = one_round(clip, desmoker, max(10, int(frames * fraction)))
            fps[i].append(round_fps)
            for stage, values in per_stage.items():
                stages[i][stage] += values
            print(
                f"round {r + 1}: {desmoker.model_name:6s} {desmoker.backend_name:12s} "
                f"{round_fps:6.1f} fps",
                flush=True,
            )
    rows = [
        {
            "model": desmoker.model_name,
            "backend": desmoker.backend_name,
            "weights": provenance,
            "fps": statistics.median(fps[i]),
            "fps_rounds": fps[i],
            "frames": max(10, int(frames * fraction)),
            "ms": {stage: statistics.median(values) for stage, values in stages[i].items()},
        }
        for i, (desmoker, provenance, fraction) in enumerate(variants)
    ]
    return decode_fps, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120, help="frames a round (120)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--height", type=int, default=None, help="upscale the clip first")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    if args.frames < 1 or args.rounds < 1:
        parser.error("--frames and --rounds must be at least 1")
    source = clear_clip()
    if source is None:
        return 1
    record = machine_record()
    with tempfile.TemporaryDirectory() as tmp:
        clip = smoky_clip(source, Path(tmp), args.height)
        with FileSource(clip) as opened:
            size = (opened.width, opened.height)
        decode_fps, rows = measure(clip, args.frames, args.rounds, Path(tmp))
    for r in rows:
        print(
            f"{r['model']:6s} {r['backend']:12s} {r['fps']:6.1f} fps (median) "
            + " ".join(f"{k} {v:.1f}" for k, v in r["ms"].items())
        )
    folder = output_folder(args)
    if folder is not None:
        record = finished(record) | {"frames": args.frames, "rounds": args.rounds}
        write_results(folder, record, rows, decode_fps, size, upscaled=args.height is not None)
    return 0


def write_results(
    folder: Path,
    record: dict,
    rows: list[dict],
    decode_fps: list[float],
    size: tuple[int, int],
    upscaled: bool,
) -> None:
    width, height = size
    name = f"cpu_pipeline_{height}p" if upscaled else "cpu_pipeline"
    clip = f"endo_720p.mp4 upscaled to {width}x{height}" if upscaled else "endo_720p.mp4"
    decode = statistics.median(decode_fps)
    record |= {
        "clip": f"{clip} with synthesised smoke, decode included, encode excluded",
        "decode_only_fps": decode,
        "decode_only_fps_rounds": decode_fps,
        "fps": {f"{r['model']}/{r['backend']}": r["fps"] for r in rows},
        "fps_relative_to_decode": {f"{r['model']}/{r['backend']}": r["fps"] / decode for r in rows},
        "variants": rows,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    rounds = record["rounds"]
    lines = [
        f"# CPU pipeline benchmark ({height}p in -> {height}p out)",
        "",
        header(record),
        "",
        f"Clip: {record['clip']}. {rounds} rounds, each running decoding alone and every "
        f"variant in turn on {record['frames']} frames (the paper model on a quarter of "
        f"them) after {WARM_UP_FRAMES} warm-up frames; fps: median of the rounds, end to "
        "end (decode + all stages), with the rounds' range; stage times: medians over "
        f"every frame of every round, ms. Decoding alone (PyAV, RGB out): {decode:.0f} fps "
        f"({min(decode_fps):.0f}-{max(decode_fps):.0f}).",
        "",
        "| model | backend | weights | fps | rounds | x decode | " + " | ".join(STAGES) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(STAGES),
    ]
    for r in rows:
        stages = " | ".join(f"{r['ms'][s]:.1f}" for s in STAGES)
        spread = f"{min(r['fps_rounds']):.1f}-{max(r['fps_rounds']):.1f}"
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['weights']} | {r['fps']:.1f} | {spread} | "
            f"{r['fps'] / decode:.2f} | {stages} |"
        )
    (folder / f"{name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
