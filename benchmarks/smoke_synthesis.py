"""Smoke synthesis speed on one CPU core: fBm field, opacity, training sample, clip frame.

Usage: python benchmarks/smoke_synthesis.py [--repeats N] [--write | --out DIR]
--write records the table in benchmarks/results/smoke_synthesis.md.
Target (issue 5): a 512x512 smoke field in under 50 ms on one CPU core.
Also compares upsampling a float field with cv2.resize against pygame's smoothscale
(python-clouds' library), which is why the synthesis does not use pygame for it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from provenance import (  # noqa: E402
    add_output_arguments,
    finished,
    header,
    machine_record,
    output_folder,
)

from training.smoke import SmokeSynthesizer, fbm_field  # noqa: E402

RESULT_NAME = "smoke_synthesis.md"


def one_core() -> None:
    """Pin the process to one core and the libraries to one thread."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def median_ms(fn: Callable[[int], object], repeats: int) -> tuple[float, float]:
    fn(0)  # warm-up (allocations, lazy imports)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i + 1)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def pygame_vs_cv2(repeats: int) -> list[tuple[str, float, float, str]]:
    """Upsample a 256x256 float field to 512x512: cv2 on float32 vs pygame on 8-bit RGB.

    pygame is not a project dependency (this comparison is why): the row is left out
    where it is not installed.
    """
    field = fbm_field(256, 256, np.random.default_rng(0))
    rows = []
    ms, worst = median_ms(
        lambda _: cv2.resize(field, (512, 512), interpolation=cv2.INTER_LINEAR), repeats
    )
    rows.append(("upsample 256->512, cv2.resize float32", ms, worst, "float32, no quantisation"))

    try:
        import pygame
    except ImportError:
        return rows

    def with_pygame(_: int) -> np.ndarray:
        grey = np.rint(field * 255).astype(np.uint8)
        surface = pygame.surfarray.make_surface(np.repeat(grey.T[..., None], 3, axis=2))
        big = pygame.transform.smoothscale(surface, (512, 512))
        return pygame.surfarray.array_red(big).T.astype(np.float32) / 255

    ms_pg, worst_pg = median_ms(with_pygame, repeats)
    reference = cv2.resize(field, (512, 512), interpolation=cv2.INTER_LINEAR)
    error = float(np.abs(with_pygame(0) - reference).max())
    rows.append(
        (
            "upsample 256->512, pygame smoothscale",
            ms_pg,
            worst_pg,
            f"8-bit surfaces; max diff from cv2 {error:.4f}",
        )
    )
    return rows


def pygame_note(measured: bool) -> str:
    timing = (
        "and smoothscale is slower than cv2.resize on float32 (last two rows)"
        if measured
        else "(pygame is not installed here: the speed comparison was not run)"
    )
    return (
        "pygame (python-clouds' library) is not used for the fields: its surfaces are 8-bit "
        f"per channel, so an alpha field would be quantised to 256 levels, {timing}. The "
        "synthesis stays in float32 NumPy/OpenCV."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    one_core()
    record = machine_record()
    synth = SmokeSynthesizer(seed=0)
    frame_512 = np.full((512, 512, 3), (170, 70, 60), np.uint8)
    frame_720 = np.full((720, 1280, 3), (170, 70, 60), np.uint8)
    clip_720 = synth.clip(itertools.repeat(frame_720), seed=1)  # endless clip
    cases: list[tuple[str, Callable[[int], object]]] = [
        ("fbm_field 512x512 (6 octaves)", lambda i: fbm_field(512, 512, np.random.default_rng(i))),
        (
            "fbm_field 512x512, evolving (time=0.37)",
            lambda i: fbm_field(512, 512, np.random.default_rng(i), time=0.37),
        ),
        (
            "opacity 512x512 (field + plume shaping)",
            lambda i: synth.opacity(512, 512, np.random.default_rng(i)),
        ),
        (
            "sample 512x512 (opacity + augmentations + composite)",
            lambda i: synth.sample(frame_512, np.random.default_rng(i)),
        ),
        ("clip frame 1280x720 (drifting, evolving)", lambda i: next(clip_720)),
    ]
    rows = []
    for name, fn in cases:
        ms, worst = median_ms(fn, args.repeats)
        rows.append((name, ms, worst, ""))
    rows += pygame_vs_cv2(args.repeats)
    lines = [
        "# Smoke synthesis speed (one CPU core)",
        "",
        header(finished(record)),
        "",
        f"The process pinned to one core, cv2 and torch set to 1 thread. {args.repeats} "
        "repeats after a warm-up call; median and max.",
        "",
        "| case | median ms | max ms | note |",
        "|---|---|---|---|",
        *(f"| {n} | {m:.1f} | {w:.1f} | {note} |" for n, m, w, note in rows),
        "",
        f"Target: a 512x512 field in under 50 ms: "
        f"{'met' if rows[0][1] < 50 else 'NOT met'} ({rows[0][1]:.1f} ms).",
        "",
        pygame_note(any("pygame" in row[0] for row in rows)),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    folder = output_folder(args)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RESULT_NAME).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
