"""How the restoration depends on the grain of the synthetic smoke's speckle.

The synthesis draws multiplicative speckle on a grid of `speckle_cells` per short side
(training/smoke.py; 64 by default, the smoke layer's own grid at the default working size).
Until 2026-11-26 the speckle was per pixel: at the test split's 1146x718 that is 718 cells,
which the same code reproduces exactly (a 718-cell grid on a 718-px side is one cell per
pixel, and the random draws are the same). This scores models on the held-out test split at
several grains, same frames and smoke seeds, so old and new weights compare like for like.

Usage (DESMOKE_DATA=/path/to/shared/data):
  python benchmarks/speckle_grain.py --weights assets/fast.safetensors [--weights OTHER ...]
      [--cells 64 128 256 pixel] [--write benchmarks/results/speckle_grain.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.config import load_config  # noqa: E402
from training.evaluate import (  # noqa: E402
    EVAL_SEED,
    evaluate_pairs,
    make_methods,
    synthetic_pairs,
    test_split_frames,
)
from training.smoke import SmokeConfig  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "fast.toml"


def grains(cells: list[str], short_side: int) -> list[tuple[str, int]]:
    """(label, speckle_cells) for each requested grain; 'pixel' is one cell per pixel."""
    return [
        (f"per pixel ({short_side})", short_side) if c == "pixel" else (c, int(c)) for c in cells
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", action="append", required=True, help="fast model weights")
    parser.add_argument("--cells", nargs="+", default=["64", "128", "256", "pixel"])
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--write", type=Path, help="also write the Markdown table here")
    args = parser.parse_args(argv)

    frames = test_split_frames(load_config(CONFIG).data)
    short_side = min(frames[0][1].shape[:2])
    methods = {}
    for path in args.weights:
        found, _ = make_methods("fast", weights=path, backend=args.backend)
        methods[path] = next(m for name, m in found.items() if name.startswith("fast"))
    lines = [
        "# Restoration vs speckle grain (held-out synthetic test split)",
        "",
        f"{len(frames)} test frames ({frames[0][1].shape[1]}x{frames[0][1].shape[0]}), smoke "
        f"seed {EVAL_SEED}, backend {args.backend}; machine: {platform.machine()}, "
        f"{platform.processor() or 'cpu'}. Command: `python benchmarks/speckle_grain.py "
        + " ".join(f"--weights {w}" for w in args.weights)
        + f" --cells {' '.join(args.cells)}`",
        "",
        "| speckle cells per short side | weights | PSNR dB | SSIM | CIEDE2000 |",
        "|---|---|---|---|---|",
    ]
    for label, cells in grains(args.cells, short_side):
        config = dataclasses.replace(SmokeConfig(), speckle_cells=cells)
        pairs = synthetic_pairs(frames, EVAL_SEED, config)
        for path, scores in evaluate_pairs(pairs, methods).items():
            row = f"| {label} | {path} | {scores['psnr']:.2f} | {scores['ssim']:.4f} | "
            lines.append(row + f"{scores['ciede2000']:.2f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.write:
        args.write.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
