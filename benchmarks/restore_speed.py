"""Full-resolution restore on the CPU at 720p, 1080p and 4K: the implementation before
2026-11-27 (whole-frame passes, new arrays on every call), whole-frame passes into reused
buffers, row strips, and row strips on threads.

The old way's time depends on the state of the memory allocator, which depends on what the
process allocated before (glibc hands freed blocks back to the OS, and maps them afresh,
until a larger block has raised its thresholds). So each frame size is measured in two
fresh processes: "cold", where nothing larger than the frame was allocated before, and
"warm", after one 4K frame restored the old way. In each, the variants are timed in
alternating rounds (the order rotated each round) and the median of the round medians
counts; the ratios are within one process.

The frame is a real one (the shared 720p clear clip, resized); the smoke layer is a smooth
random alpha and colour map at 1/4 of a 256 px working resolution, the `fast` network's
output shape (the restore's cost does not depend on the values). Every variant's output is
checked to be identical to the one-shot `restore`. Recorded:
benchmarks/results/restore_speed.{md,json}.

    DESMOKE_DATA=../shared/data python benchmarks/restore_speed.py [--rounds 5]
        [--repeats 20] [--heights 720 1080 2160] [--write | --out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from footage import clear_clip  # noqa: E402
from provenance import (  # noqa: E402
    add_output_arguments,
    finished,
    header,
    machine_record,
    output_folder,
)

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

HEIGHTS = (720, 1080, 2160)
PRIMING_HEIGHT = 2160
STATES = {
    "cold": "a fresh process: nothing larger than the frame allocated before",
    "warm": f"the same after one {PRIMING_HEIGHT}p frame restored the old way",
}
WHOLE_FRAME = 1 << 40  # strip_bytes so large that one strip is the whole frame
BASELINE = "before: whole frame, new arrays"


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


def variants() -> dict[str, Callable[..., np.ndarray]]:
    """name -> the restore call, each Restorer made once as a processing thread would."""
    threads = default_threads()
    return {
        BASELINE: restore_with_new_arrays,
        "whole frame, reused buffers": Restorer(threads=1, strip_bytes=WHOLE_FRAME).restore,
        "one-shot restore()": restore,
        "strips, 1 thread": Restorer(threads=1).restore,
        f"strips, {threads} threads": Restorer(threads=threads).restore,
    }


def minor_page_faults() -> int | None:
    """This process's minor page faults so far; None where they are not counted: Windows
    has no `resource` module."""
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed_calls(
    run: Callable[..., np.ndarray], args: tuple, repeats: int
) -> tuple[float, int | None]:
    """Median ms of `repeats` calls after an untimed one, and the minor page faults they
    caused (memory the OS had to map; None where not counted)."""
    run(*args)
    times = []
    faults_before = minor_page_faults()
    for _ in range(repeats):
        start = time.perf_counter()
        run(*args)
        times.append(time.perf_counter() - start)
    faults_after = minor_page_faults()
    if faults_before is None or faults_after is None:
        return statistics.median(times) * 1000, None
    return statistics.median(times) * 1000, faults_after - faults_before


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


def first_frame(clip: Path) -> np.ndarray:
    with FileSource(clip) as source:
        return source.read().rgb


def measure_in_this_process(clip: Path, height: int, state: str, rounds: int, repeats: int) -> dict:
    """One frame size in one allocator state: every variant in `rounds` alternating rounds."""
    frame = first_frame(clip)
    if state == "warm":
        restore_with_new_arrays(*inputs(frame, PRIMING_HEIGHT))
    args = inputs(frame, height)
    expected = restore(*args)
    runs = variants()
    for name, run in runs.items():
        if not np.array_equal(run(*args), expected):
            raise AssertionError(f"{name} at {height}p differs from restore()")
    names = list(runs)
    ms: dict[str, list[float]] = {name: [] for name in names}
    faults: dict[str, list[int | None]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            median, pf = timed_calls(runs[name], args, repeats)
            ms[name].append(median)
            faults[name].append(pf)
    return {
        "height": height,
        "width": args[0].shape[1],
        "state": state,
        "ms": {name: statistics.median(values) for name, values in ms.items()},
        "round_ms": ms,
        "page_faults": {name: faults_per_call(faults[name], repeats) for name in names},
    }


def faults_per_call(faults: list[int | None], repeats: int) -> float | None:
    """Page faults per call over the rounds; None (unavailable) where they were not counted."""
    if any(pf is None for pf in faults):
        return None
    return sum(faults) / (len(faults) * repeats)


def measure_in_fresh_process(height: int, state: str, rounds: int, repeats: int) -> dict:
    command = [sys.executable, __file__, "--child", str(height), state]
    command += ["--rounds", str(rounds), "--repeats", str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{height}p {state}: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (5)")
    parser.add_argument("--repeats", type=int, default=20, help="calls per round (20)")
    parser.add_argument("--heights", type=int, nargs="+", default=list(HEIGHTS))
    add_output_arguments(parser)
    parser.add_argument("--child", nargs=2, metavar=("HEIGHT", "STATE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.repeats < 1:
        parser.error("--rounds and --repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clip = clear_clip()
    if clip is None:
        return 1
    if args.child:
        height, state = int(args.child[0]), args.child[1]
        row = measure_in_this_process(clip, height, state, args.rounds, args.repeats)
        print(json.dumps(row))
        return 0
    record = {**machine_record(), "rounds": args.rounds, "repeats": args.repeats, "rows": []}
    for height in args.heights:
        for state in STATES:
            row = measure_in_fresh_process(height, state, args.rounds, args.repeats)
            record["rows"].append(row)
            print(f"{height}p {state}: " + ", ".join(f"{k} {v:.1f}" for k, v in row["ms"].items()))
    folder = output_folder(args)
    if folder is not None:
        write_results(finished(record), folder)
    return 0


def cell(row: dict, name: str) -> str:
    ms, rounds = row["ms"][name], row["round_ms"][name]
    speed_up = row["ms"][BASELINE] / ms
    faults = row["page_faults"][name]
    pf = "pf n/a" if faults is None else f"{faults:.0f} pf"
    return f"{ms:.1f} (x{speed_up:.1f}; {pf}; {min(rounds):.1f}-{max(rounds):.1f})"


def write_results(record: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "restore_speed.json").write_text(json.dumps(record, indent=2) + "\n")
    names = list(record["rows"][0]["ms"])
    lines = [
        "# Full-resolution restore on the CPU",
        "",
        header(record),
        "",
        f"Each cell: median ms per call (median of {record['rounds']} alternating rounds of "
        f"{record['repeats']} calls each, after an untimed call); x: speed-up over "
        f"'{BASELINE}' in the same process; pf: minor page faults per call; the range of "
        "the round medians. Every variant's output is identical to `restore()`'s. Each "
        "frame size and allocator state runs in a fresh process:",
        "",
        *(f"- {state}: {meaning}." for state, meaning in STATES.items()),
        "",
        "| frame | allocator | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for row in record["rows"]:
        cells = " | ".join(cell(row, name) for name in names)
        lines.append(f"| {row['width']}x{row['height']} | {row['state']} | {cells} |")
    (folder / "restore_speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
