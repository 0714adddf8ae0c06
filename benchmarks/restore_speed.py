"""Full-resolution restore on the CPU, in one run at 720p, 1080p and 4K (ratios hold across
machines): the implementation before 2026-11-27 (whole-frame passes, new arrays on every
call), whole-frame passes into reused buffers, row strips, and row strips on threads.

The frame is a real one (the shared 720p clear clip, resized); the smoke layer is a smooth
random alpha and colour map at 1/4 of a 256 px working resolution, the `fast` network's
output shape (the restore's cost does not depend on the values). Every variant's output is
checked to be identical to the one-shot `restore`. Results:
benchmarks/results/restore_speed.{md,json}.

    DESMOKE_DATA=../shared/data python benchmarks/restore_speed.py
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from footage import clear_clip  # noqa: E402

from engine.restore import (  # noqa: E402
    Restorer,
    SmokeLayer,
    default_threads,
    guide_radius,
    guided_upsample,
    restore,
    to_gray,
)
from engine.video import FileSource  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
HEIGHTS = (720, 1080, 2160)
REPEATS = 100
WHOLE_FRAME = 1 << 40  # strip_bytes so large that one strip is the whole frame


def restore_with_new_arrays(
    frame: np.ndarray, layer: SmokeLayer, guide_low: np.ndarray
) -> np.ndarray:
    """engine.restore as it was before 2026-11-27, kept here as the baseline: the same
    OpenCV calls on whole frames, every intermediate a new array."""
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    alpha = guided_upsample(layer.alpha, guide_low, gray, guide_radius(*guide_low.shape))
    height, width = frame.shape[:2]
    gain = cv2.divide(np.float32(1.0), np.maximum(np.float32(1.0) - alpha, np.float32(0.1)))
    offset = cv2.multiply(alpha, gain, scale=-255.0)
    channels = []
    for c, plane in enumerate(cv2.split(frame)):
        colour = np.ascontiguousarray(layer.colour[:, :, c])
        colour = cv2.resize(colour, (width, height), interpolation=cv2.INTER_LINEAR)
        scaled = cv2.multiply(plane, gain, dtype=cv2.CV_32F)
        channels.append(cv2.add(scaled, cv2.multiply(offset, colour), dtype=cv2.CV_8U))
    return cv2.merge(channels)


def variants() -> dict[str, Callable[[], Restorer | Callable | None]]:
    """name -> how to make it (None: the module's one-shot restore)."""
    threads = default_threads()
    return {
        "before: whole frame, new arrays": lambda: restore_with_new_arrays,
        "whole frame, reused buffers": lambda: Restorer(threads=1, strip_bytes=WHOLE_FRAME),
        "one-shot restore()": lambda: None,
        "strips, 1 thread": lambda: Restorer(threads=1),
        f"strips, {threads} threads": lambda: Restorer(threads=threads),
    }


def measure(run: Callable[..., np.ndarray], *args: object) -> tuple[float, float]:
    """Median ms per call, and minor page faults per call (memory the OS had to map)."""
    run(*args)
    times = []
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(REPEATS):
        start = time.perf_counter()
        run(*args)
        times.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    return statistics.median(times) * 1000, faults / REPEATS


def inputs(frame: np.ndarray, height: int) -> tuple[np.ndarray, SmokeLayer, np.ndarray]:
    width = round(frame.shape[1] * height / frame.shape[0])
    full = cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC)
    work = (256, round(256 * width / height))
    guide_low = to_gray(cv2.resize(full, work[::-1], interpolation=cv2.INTER_AREA))
    rng = np.random.default_rng(0)
    cells = (work[0] // 4, work[1] // 4)
    alpha = cv2.GaussianBlur(rng.random(cells, np.float32), (0, 0), 4) * np.float32(0.8)
    colour = cv2.GaussianBlur(rng.random((*cells, 3), np.float32), (0, 0), 8)
    return full, SmokeLayer(alpha, colour), guide_low


def main() -> int:
    clip = clear_clip()
    if clip is None:
        return 1
    with FileSource(clip) as source:
        frame = source.read().rgb
    rows = []
    for height in HEIGHTS:
        full, layer, guide_low = inputs(frame, height)
        expected = restore(full, layer, guide_low)
        row = {"height": height, "width": full.shape[1], "ms": {}, "page_faults": {}}
        for name, make in variants().items():
            made = make()
            run = made.restore if isinstance(made, Restorer) else made or restore
            if not np.array_equal(run(full, layer, guide_low), expected):
                raise AssertionError(f"{name} at {height}p differs from restore()")
            row["ms"][name], row["page_faults"][name] = measure(run, full, layer, guide_low)
        rows.append(row)
        print(height, " ".join(f"{k}: {v:.1f}" for k, v in row["ms"].items()))
    write_results(rows)
    return 0


def write_results(rows: list[dict]) -> None:
    cpu = platform.processor() or platform.machine()
    record = {
        "machine": f"{os.cpu_count()} CPU cores ({cpu}), {platform.system()}",
        "opencv": cv2.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "repeats": REPEATS,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "restore_speed.json").write_text(json.dumps(record, indent=2) + "\n")
    names = list(rows[0]["ms"])
    baseline = names[0]
    lines = [
        "# Full-resolution restore on the CPU",
        "",
        f"Machine: {record['machine']}, OpenCV {record['opencv']}. Date: {record['date']}.",
        f"Median of {REPEATS} calls in ms (x: speed-up over '{baseline}', same run; pf: "
        "minor page faults per call). Every variant's output is identical to `restore()`'s.",
        "",
        "| frame | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for row in rows:
        base = row["ms"][baseline]
        cells = [
            f"{row['ms'][n]:.1f} (x{base / row['ms'][n]:.1f}, {row['page_faults'][n]:.0f} pf)"
            for n in names
        ]
        lines.append(f"| {row['width']}x{row['height']} | " + " | ".join(cells) + " |")
    (RESULTS / "restore_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
