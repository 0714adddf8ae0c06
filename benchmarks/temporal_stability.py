"""Does the desmoked video flicker? Temporal error on smoky clips of the held-out test split.

The test split's 25 consecutive frames get temporally coherent synthetic smoke (one plume
that drifts and evolves, training.smoke.SmokeSynthesizer.clip), one clip per seed. Each
method restores every frame independently, as the app does; training.metrics.temporal_error
then measures the frame-to-frame change the output has and the clear clip has not (or the
other way round), in 0-255 levels. Identity (the smoky input itself) is the reference
point: a method that adds flicker scores above it.

Usage (DESMOKE_DATA=/path/to/shared/data):
  python benchmarks/temporal_stability.py [--weights W.safetensors] [--clips 8]
      [--write benchmarks/results/temporal_stability.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance import finished, header, machine_record  # noqa: E402

from training import metrics  # noqa: E402
from training.config import load_config  # noqa: E402
from training.evaluate import (  # noqa: E402
    EVAL_SEED,
    PSNR_CAP_DB,
    make_methods,
    test_split_frames,
    to_uint8,
)
from training.smoke import SmokeSynthesizer  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "fast.toml"


def score_clip(frames: list[np.ndarray], seed: int, methods: dict) -> dict[str, dict]:
    """{method: {temporal_error, psnr}} for one smoky clip, and the clip's mean opacity."""
    samples = list(SmokeSynthesizer().clip(frames, seed))
    clear = [to_uint8(s.clear) for s in samples]
    smoky = [to_uint8(s.smoky) for s in samples]
    scores = {"alpha": float(np.mean([s.alpha.mean() for s in samples]))}
    for name, method in methods.items():
        restored = [method(frame) for frame in smoky]
        scores[name] = {
            "temporal_error": metrics.temporal_error(clear, restored),
            "psnr": float(
                np.mean(
                    [
                        min(metrics.psnr(c, r), PSNR_CAP_DB)
                        for c, r in zip(clear, restored, strict=True)
                    ]
                )
            ),
        }
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="fast model weights (default: the shipped ones)")
    parser.add_argument("--clips", type=int, default=8, help="smoky clips (seeds)")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--write", type=Path, help="also write the Markdown table here")
    args = parser.parse_args(argv)

    record = machine_record()
    frames = [frame for _, frame in test_split_frames(load_config(CONFIG).data)]
    methods, _ = make_methods("fast", weights=args.weights, backend=args.backend)
    names = list(methods)
    columns = " | ".join(f"{n} temporal / PSNR" for n in names)
    lines = [
        "# Temporal stability (held-out test split as a clip, per-frame restoration)",
        "",
        f"{len(frames)} consecutive test frames ({frames[0].shape[1]}x{frames[0].shape[0]}), "
        f"one drifting, evolving smoke plume per clip (seeds {EVAL_SEED}+k), backend "
        f"{args.backend}. Temporal error: mean |change of the output - change of the clear "
        "clip| between consecutive frames, 0-255 levels (lower is steadier); PSNR: mean per "
        "frame, dB.",
        "",
        f"| clip seed | mean alpha | {columns} |",
        "|---|---|" + "---|" * len(names),
    ]
    totals: dict[str, list[float]] = {n: [] for n in names}
    for k in range(args.clips):
        scores = score_clip(frames, EVAL_SEED + k, methods)
        cells = []
        for name in names:
            totals[name].append(scores[name]["temporal_error"])
            cells.append(f"{scores[name]['temporal_error']:.2f} / {scores[name]['psnr']:.1f}")
        lines.append(f"| {EVAL_SEED + k} | {scores['alpha']:.2f} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    means = " | ".join(f"**{np.mean(totals[n]):.2f}**" for n in names)
    lines.append(f"| mean | | {means} |")
    lines += ["", header(finished(record))]
    text = "\n".join(lines) + "\n"
    if args.write:
        args.write.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
