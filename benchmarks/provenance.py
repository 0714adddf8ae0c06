"""Where a recorded benchmark result came from, and where a run may write it.

Every script's recorded header says the machine (CPU model, cores, OS), Python, the
versions of the libraries the run had loaded, the git commit ("+dirty" when the tree had
changes), the date, the load average (the cores may be shared) and the command. Results are
written only with --write (into benchmarks/results/) or --out DIR, so a quick or trial run
never overwrites what is recorded.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from desmoke_app import source_commit

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]
#: import name -> how the header names it; only those the run has loaded are listed.
LIBRARIES = {
    "numpy": "NumPy",
    "cv2": "OpenCV",
    "torch": "torch",
    "onnxruntime": "onnxruntime",
    "av": "PyAV",
    "pygame": "pygame",
}


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--write", action="store_true", help=f"record the results in {RESULTS}")
    where.add_argument("--out", type=Path, metavar="DIR", help="write the results here instead")


def output_folder(args: argparse.Namespace) -> Path | None:
    """Where the results go: None (print only) unless --write or --out was given."""
    return RESULTS if args.write else args.out


def cpu_model() -> str:
    """The CPU's model name (platform.processor() is empty on many Linux machines)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def operating_system() -> str:
    try:
        name = platform.freedesktop_os_release()["PRETTY_NAME"]
    except (OSError, KeyError):
        name = platform.system()
    return f"{name}, {platform.system()} {platform.release()}"


def library_versions() -> dict[str, str]:
    return {
        label: getattr(sys.modules[name], "__version__", "?")
        for name, label in LIBRARIES.items()
        if name in sys.modules
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages; [] where the system keeps none (Windows)."""
    if not hasattr(os, "getloadavg"):
        return []
    return [round(x, 2) for x in os.getloadavg()]


def command(argv: list[str] | None = None) -> str:
    """The command line as it ran, script path relative to the repository."""
    argv = sys.argv if argv is None else argv
    script = Path(argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return shlex.join(["python", str(shown), *argv[1:]])


def machine_record() -> dict[str, Any]:
    """Call at the start of a run (the load average is the one before it) and again to end it."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "os": operating_system(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "commit": source_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "load_average": load_average(),
        "command": command(),
    }


def finished(record: dict[str, Any]) -> dict[str, Any]:
    """The start record with the load average at the end, and libraries loaded since."""
    return {**record, "libraries": library_versions(), "load_average_end": load_average()}


def header(record: dict[str, Any]) -> str:
    """One Markdown paragraph naming the machine, software, commit, date, load and command."""
    libraries = ", ".join(f"{k} {v}" for k, v in record["libraries"].items())
    load = ", ".join(f"{x:.2f}" for x in record["load_average"]) or "not known"
    end = record.get("load_average_end")
    load_end = f"; at the end {', '.join(f'{x:.2f}' for x in end)}" if end else ""
    return (
        f"Machine: {record['cpu']}, {record['cores']} logical CPUs, {record['os']}. "
        f"Python {record['python']}; {libraries}. Commit {record['commit']}, "
        f"{record['date']}. Load average (1/5/15 min) at the start {load}{load_end} "
        f"(other jobs may share the cores). Command: `{record['command']}`"
    )
