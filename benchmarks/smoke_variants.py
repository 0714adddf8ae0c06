"""How the restoration depends on the synthetic smoke: models scored on variants of it.

Every variant is the held-out test split (same frames, same smoke seed) with one change to
the synthesis (training.smoke.SmokeConfig), so old and new weights compare like for like on
the smoke each was or was not trained on:
- default: the test split as `desmoke evaluate` scores it (speckle on 64 cells per short
  side since 2026-11-26);
- speckle-128, speckle-256, speckle-pixel: finer speckle grain; per pixel (718 cells at the
  test frames' 1146x718) is the synthesis before 2026-11-26, which the same code reproduces
  exactly (one cell per pixel, the same random draws);
- tinted: every plume's colour moved 0.05-0.15 off the grey axis at a random hue (light
  scattered off tissue: pink, lilac, ...), brightness 0.55-1 (the tint's random draws
  shift the stream, so its plumes differ from the default's too);
- dim: grey smoke of brightness 0.45-0.7, below the default range (0.7-1).
- dark-instruments: a synthetic shaft in every frame, matte black to dark grey (0.05-0.45
  before shading; the default draws 0.45-0.85 in a quarter of the frames) and 10-35% of
  the short side thick, as close to the scope as DeSmoke-LAP's: under smoke such a shaft
  looks like grey smoke over dark tissue (its draws shift the stream, as tinted's do).
- pink-tissue: the clear frame's hue moved 25-40 degrees towards magenta in every frame
  (tissue as pink-lilac as in the DeSmoke-Net image; with it the other background
  augmentations, darken, gamma and blur, are drawn for every frame too), default smoke: a
  model that takes pink for smoke loses here;
- pink-tissue-tinted: the same tissue under tinted smoke, the hard case of the two.
- flat: every clear frame flattened (the scope against tissue, an overexposed view: a
  smooth field of its own colours or one random colour, 0-15% of its detail kept), default
  smoke drifting over it;
- flat-clear: the same flat frames with no smoke at all: a model that takes a featureless
  frame for smoke-covered tissue and "restores" it loses here.

Usage (DESMOKE_DATA=/path/to/shared/data):
  python benchmarks/smoke_variants.py --weights assets/fast.safetensors [--weights OTHER ...]
      [--variants default tinted ...] [--write benchmarks/results/smoke_variants.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance import finished, header, machine_record  # noqa: E402

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
#: What the weights are is written by hand below this heading; --write keeps it.
NOTES_HEADING = "## Notes"


def variants(short_side: int) -> dict[str, SmokeConfig]:
    """The synthesis of each variant, for test frames of this short side."""
    default = SmokeConfig()
    pink = dataclasses.replace(default, hue_shift_deg=(-40.0, -25.0), augment_probability=1.0)
    flat = dataclasses.replace(default, flat_probability=1.0)
    return {
        "default": default,
        "speckle-128": dataclasses.replace(default, speckle_cells=128),
        "speckle-256": dataclasses.replace(default, speckle_cells=256),
        "speckle-pixel": dataclasses.replace(default, speckle_cells=short_side),
        "tinted": dataclasses.replace(
            default, tint_probability=1.0, tint=(0.05, 0.15), colour_brightness=(0.55, 1.0)
        ),
        "dim": dataclasses.replace(
            default, colour_yellow=default.colour_white, colour_brightness=(0.45, 0.7)
        ),
        "dark-instruments": dataclasses.replace(
            default,
            instrument_probability=1.0,
            instrument_grey=(0.05, 0.45),
            instrument_thickness=(0.1, 0.35),
        ),
        "pink-tissue": pink,
        "pink-tissue-tinted": dataclasses.replace(
            pink, tint_probability=1.0, tint=(0.05, 0.15), colour_brightness=(0.55, 1.0)
        ),
        "flat": flat,
        "flat-clear": dataclasses.replace(flat, density=(0.0, 0.0), haze_probability=0.0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", action="append", required=True, help="fast model weights")
    parser.add_argument("--variants", nargs="+", default=None, help="default: all of them")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument(
        "--write",
        type=Path,
        help=f"also write the Markdown table here (keeping the file's '{NOTES_HEADING}' section)",
    )
    args = parser.parse_args(argv)
    record = machine_record()

    frames = test_split_frames(load_config(CONFIG).data)
    known = variants(min(frames[0][1].shape[:2]))
    chosen = args.variants or list(known)
    unknown = [v for v in chosen if v not in known]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)} (known: {', '.join(known)})")
    methods = {}
    for path in args.weights:
        found, _ = make_methods("fast", weights=path, backend=args.backend)
        methods[path] = next(m for name, m in found.items() if name.startswith("fast"))
    lines = [
        "# Restoration on variants of the synthetic smoke (held-out test split)",
        "",
        f"{len(frames)} test frames ({frames[0][1].shape[1]}x{frames[0][1].shape[0]}), smoke "
        f"seed {EVAL_SEED}, backend {args.backend}, variants {', '.join(chosen)} (described "
        "in the script's docstring).",
        "",
        "| smoke | weights | PSNR dB | SSIM | CIEDE2000 |",
        "|---|---|---|---|---|",
    ]
    for name in chosen:
        pairs = synthetic_pairs(frames, EVAL_SEED, known[name])
        for path, scores in evaluate_pairs(pairs, methods).items():
            row = f"| {name} | {path} | {scores['psnr']:.2f} | {scores['ssim']:.4f} | "
            lines.append(row + f"{scores['ciede2000']:.2f} |")
            print(lines[-1], flush=True)
    lines += ["", header(finished(record))]
    text = "\n".join(lines) + "\n"
    if args.write:
        args.write.write_text(text + kept_notes(args.write))
    print(text)
    return 0


def kept_notes(results: Path) -> str:
    """The hand-written notes section of an earlier results file ('' when there is none)."""
    if not results.is_file():
        return ""
    text = results.read_text()
    start = text.find(f"\n{NOTES_HEADING}\n")
    return "" if start < 0 else text[start:]


if __name__ == "__main__":
    sys.exit(main())
