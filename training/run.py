"""A training run: its folder, the lock that keeps it to one training at a time, resuming,
and the command line both trainers share.

The run folder holds checkpoint.pt (to resume), metrics.jsonl, best/last.safetensors (+
.json). One training writes it at a time: the first holds an exclusive lock on OUT/.lock
for the whole run (the OS lets it go however the process ends, a kill too), and a second
is refused before it reads any data. A new run refuses a folder holding an earlier run's
output: --resume continues one that has a checkpoint, and nothing writes over one that has
not. Ctrl-C, SIGTERM or SIGHUP stop a run with a checkpoint (TrainingInterrupted), a
second one at once (TrainingStoppedNow): training.loop.
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import logging
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from engine.files import replaced_on_success
from engine.models import WeightsError
from engine.models.registry import NETWORK_MODELS
from engine.models.weights import load_state_into, read_config, shipped_weights
from engine.stop_signals import first_stop_signal
from training.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    RunWriteError,
    load_module_state,
    read_checkpoint,
    reported_as_write_error,
)
from training.config import Config, ConfigError, load_config
from training.data import DataError

BEST_NAME = "best.safetensors"
LAST_NAME = "last.safetensors"
LOG_NAME = "metrics.jsonl"
LOCK_NAME = ".lock"
#: What a run writes into its folder: a new run refuses a folder holding any of them.
RUN_OUTPUTS = (
    CHECKPOINT_NAME,
    BEST_NAME,
    "best.json",
    LAST_NAME,
    "last.json",
    LOG_NAME,
)

log = logging.getLogger(__name__)


class RunFolderError(ValueError):
    """A run folder another training is writing, or one that holds an earlier run's output."""


#: What a training run reports in one line (`desmoke train`, torchrun): bad input, a run
#: folder that cannot be written or is taken; anything else is a bug, with its traceback.
USER_ERRORS = (ConfigError, DataError, CheckpointError, WeightsError, RunWriteError, RunFolderError)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by a signal, its checkpoint written. A KeyboardInterrupt, so callers
    stop as on Ctrl-C; `signum` as desmoke_app.cli reads it (exit code 128 + signum);
    `step`: the step of the checkpoint --resume continues from."""

    def __init__(self, signum: int, step: int | None) -> None:
        super().__init__(f"{signal.Signals(signum).name}: {self.outcome(step)}")
        self.signum, self.step = signum, step

    @staticmethod
    def outcome(step: int | None) -> str:
        return f"checkpoint at step {step}"


class TrainingStoppedNow(TrainingInterrupted):
    """Training stopped at once by a second stop signal, mid-step: no new checkpoint (one
    being written is dropped whole, the earlier one stays); `step`: the step of the last
    checkpoint written, which --resume continues from (None: none written yet)."""

    @staticmethod
    def outcome(step: int | None) -> str:
        if step is None:
            return "stopped at once; no checkpoint written yet, so nothing to resume"
        return f"stopped at once, no new checkpoint; --resume continues from step {step}"


# ----------------------------------------------------------------------------- the run


@dataclass
class Run:
    """One training run: where it writes, which process it is, how long it may take."""

    config: Config
    out: Path
    device: torch.device
    rank: int = 0
    world_size: int = 1
    start_time: float = field(default_factory=time.monotonic)
    elapsed_before: float = 0.0  # training seconds of earlier sessions (resume)
    budget_s: float = 0.0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.start_time

    def progress(self, step: int) -> float:
        """Fraction of the budget used (time or steps, whichever is further along)."""
        parts = []
        if self.budget_s > 0:
            parts.append(self.elapsed / self.budget_s)
        if self.config.train.max_steps > 0:
            parts.append(step / self.config.train.max_steps)
        return min(1.0, max(parts))

    def lr_factor(self, step: int) -> float:
        train = self.config.train
        if train.lr_schedule == "constant":
            return 1.0
        floor = train.min_lr_fraction
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * self.progress(step)))

    def agreed_stop(self, step: int, signum: int, failed: bool = False) -> tuple[bool, int]:
        """(budget used, stop signal or 0), the same on every rank: DDP ranks must stop at
        the same step, and a signal to any rank stops them all. `failed`: this rank could
        not write a file; the others stop as if the budget were used (they write nothing)."""
        done, stop = float(self.progress(step) >= 1.0 or failed), float(signum)
        if self.world_size > 1:
            flags = torch.tensor([done, stop], device=self.device)
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            done, stop = flags.tolist()
        return done > 0, int(stop)

    def close(self) -> None:
        """Leave the process group cleanly. The caller drops its DDP wrappers first: a
        wrapper collected at interpreter exit still holds gloo work and aborts the process
        ("terminate called without an active exception"; measured under torchrun with two
        CPU ranks: 4 of 16 runs without this, 0 of 32 with it)."""
        if self.world_size > 1:
            # A stop signal now (a second Ctrl-C after the checkpoint) must not cut the
            # leaving short, which is what aborted a rank: it takes a moment.
            with first_stop_signal(lambda _signum: None):
                gc.collect()  # the wrappers sit in reference cycles (the step closures)
                torch.distributed.barrier()
                torch.distributed.destroy_process_group()

    def log(self, record: dict[str, Any]) -> None:
        if self.main:
            path = self.out / LOG_NAME
            with reported_as_write_error(path):
                append_whole(path, json.dumps(record) + "\n")

    def trim_log(self, step: int) -> None:
        """Cut the log back to `step` (resuming: a run killed after its last checkpoint
        logged steps that are trained again). Lines that do not parse, such as one cut
        short by the kill, go too: appended to, they would spoil the next record."""
        path = self.out / LOG_NAME
        if not self.main or not path.is_file():
            return
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if _logged_step(line) <= step]
        if len(kept) < len(lines):
            with reported_as_write_error(path), replaced_on_success(path) as temp:
                temp.write_text("".join(kept), encoding="utf-8")


def append_whole(path: Path, text: str) -> None:
    """Append `text` to `path` whole or not at all: what a failed write (disk full) left of
    it is cut off again, so the log never ends in half a record."""
    data = memoryview(text.encode("utf-8"))
    with open(path, "ab", buffering=0) as handle:  # unbuffered: a write fails here, not at close
        end = handle.seek(0, os.SEEK_END)
        try:
            while data:
                data = data[handle.write(data) :]  # a full disk may take part of it first
        except OSError:
            handle.truncate(end)
            raise


def _logged_step(line: str) -> float:
    """The step of a log line; 0 for a record of no step (start events), inf for a line
    that is not a whole JSON record."""
    if not line.endswith("\n"):
        return math.inf
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return math.inf
    step = record.get("step", 0) if isinstance(record, dict) else math.inf
    return step if isinstance(step, int) else math.inf


# ----------------------------------------------------------------------------- the folder


@contextmanager
def started_run(
    config: Config, out: Path, resume: bool, max_minutes: float | None
) -> Iterator[Run]:
    """The run, within the block: its folder made and locked (the main process's lock, as
    the other DDP ranks write nothing), checked against --resume, threads and (torchrun)
    DDP set. The lock goes with the block, however it ends; a folder made for a run that
    failed before writing anything goes too. Seeding: seeded_for_init."""
    minutes = budget_minutes(config, max_minutes)
    rank = int(os.environ.get("RANK", "0"))
    with removed_if_left_empty(out):
        prepare_run_folder(out)  # before any work: every rank, before the process group
        with run_folder_locked(out) if rank == 0 else nullcontext():
            if rank == 0:
                remove_killed_runs_temporaries(out)
            check_run_folder(out, resume)
            device, world_size = _join_process_group()
            if device.type == "cpu":
                torch.set_num_threads(config.train.threads)
            yield Run(config, out, device, rank, world_size, budget_s=minutes * 60.0)


def _join_process_group() -> tuple[torch.device, int]:
    """This process's device and the number of processes (torchrun's WORLD_SIZE: DDP)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu"), 1
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device, world_size


def remove_killed_runs_temporaries(out: Path) -> None:
    """Remove the half-written outputs (.NAME.RANDOM.part) a run killed while saving left:
    with the folder locked, no live writer owns them, and nothing else would ever remove
    them. Only the run's own output names are matched, never the user's files."""
    for name in RUN_OUTPUTS:
        for temporary in out.glob(f".{glob.escape(name)}.*.part"):
            with suppress(OSError):  # gone already, or not ours to remove: left
                temporary.unlink()
                log.info("removed %s, left by a run killed while writing it", temporary)


def check_run_folder(out: Path, resume: bool) -> None:
    """--resume needs the run's checkpoint; a new run, a folder free of any run's output
    (the user's own files may be there)."""
    checkpoint = out / CHECKPOINT_NAME
    with reported_as_write_error(out):  # a name too long fails even to be looked up
        found = [name for name in RUN_OUTPUTS if (out / name).exists()]
    if resume and CHECKPOINT_NAME not in found:
        raise CheckpointError(f"{checkpoint}: checkpoint not found (nothing to resume)")
    if resume or not found:
        return
    if CHECKPOINT_NAME in found:
        raise RunFolderError(
            f"{checkpoint}: the output folder already holds a run; use --resume or another --out"
        )
    raise RunFolderError(
        f"{out}: holds an earlier run's results ({', '.join(found)}) but no checkpoint to "
        "resume from; use another --out, or delete the folder"
    )


def prepare_run_folder(out: Path) -> None:
    """Make the run folder, and create and remove a file in it: an unwritable --out (a
    read-only or immutable folder, a file, a name too long) fails here, in a second,
    rather than at the first checkpoint. Safe on several ranks at once (unique names)."""
    with reported_as_write_error(out):
        if out.exists() and not out.is_dir():
            raise RunWriteError(out, "a file, not a folder")
        out.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".probe-", dir=out)
        os.close(handle)
        os.unlink(probe)


@contextmanager
def removed_if_left_empty(out: Path) -> Iterator[None]:
    """Within the block, a run folder made for it (and the parents made with it) is removed
    again when the block fails and leaves it empty: a run refused at start-up (a missing
    source, a folder another training is writing, Ctrl-C while the data loads) leaves
    nothing behind. A folder that was there before, or one with files in it, stays."""
    made = _missing_folders(out)
    try:
        yield
    except BaseException:
        for folder in made:  # deepest first: a parent is empty once its child is gone
            with suppress(OSError):  # not empty (or not made after all): it stays
                folder.rmdir()
        raise


def _missing_folders(out: Path) -> list[Path]:
    """`out` and its parents that do not exist yet, deepest first."""
    missing = []
    for folder in (out, *out.parents):
        try:
            if folder.exists():
                break
        except OSError:  # a name too long: not made here either
            break
        missing.append(folder)
    return missing


# ----------------------------------------------------------------------------- the lock


@contextmanager
def run_folder_locked(out: Path) -> Iterator[None]:
    """Hold the run folder for this process within the block: an exclusive lock on
    OUT/.lock, which holds the pid for the message another training gets (RunFolderError).
    The file goes at the end; one left by a killed run holds no lock (the OS released it)
    and is taken over."""
    path = out / LOCK_NAME
    with reported_as_write_error(path):
        handle = _locked_file(path)
    try:
        with reported_as_write_error(path):
            handle.seek(0)
            handle.truncate()  # a killed run's pid
            handle.write(f"{os.getpid()}\n".encode())
        yield
    finally:
        with suppress(OSError):  # POSIX: gone before the lock is, so no one locks it after
            path.unlink()
        _unlock(handle)
        handle.close()
        with suppress(OSError):  # Windows: an open file cannot be removed
            path.unlink()


def _locked_file(path: Path) -> IO[bytes]:
    """`path` opened and locked; RunFolderError when another process holds it. A file that
    its holder removed as this one opened it is no lock: the one now at `path` is tried."""
    while True:
        handle = open(path, "a+b", buffering=0)  # unbuffered: the pid is there at once
        try:
            locked = _try_lock(handle)
        except OSError:  # a file system without locks, say: said as a write error
            handle.close()
            raise
        if not locked:
            handle.seek(0)
            pid = handle.read(32).decode("ascii", "replace").strip()
            handle.close()
            holder = f"pid {pid}" if pid.isdigit() else "pid unknown"
            raise RunFolderError(
                f"{path.parent}: another training ({holder}) is writing this folder"
            )
        if _same_file(handle, path):
            return handle
        _unlock(handle)
        handle.close()


def _same_file(handle: IO[bytes], path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


if sys.platform == "win32":
    import msvcrt

    #: Windows locks bytes, and a locked byte cannot be read: the lock is on one far past
    #: the pid.
    _LOCKED_BYTE = 1 << 20

    def _try_lock(handle: IO[bytes]) -> bool:
        handle.seek(_LOCKED_BYTE)
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(handle: IO[bytes]) -> None:
        handle.seek(_LOCKED_BYTE)
        with suppress(OSError):
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(handle: IO[bytes]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(handle: IO[bytes]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- set-up


def seeded_for_init(config: Config) -> None:
    """Seed torch before the networks are built: their initial weights follow train.seed,
    the same on every rank and on every run of the config."""
    torch.manual_seed(config.train.seed)


def budget_minutes(config: Config, max_minutes: float | None) -> float:
    """The time budget: the config's, or --max-minutes (checked as the config's is)."""
    if max_minutes is None:
        return config.train.max_minutes
    if not (max_minutes >= 0 and math.isfinite(max_minutes)):  # NaN too
        raise ConfigError(f"--max-minutes must be >= 0 and finite, got {max_minutes}")
    if max_minutes == 0 and config.train.max_steps == 0:
        raise ConfigError(
            f"--max-minutes 0 (no time limit) and {config.path}: train.max_steps 0 (no step "
            "limit): no budget"
        )
    return max_minutes


def init_from_weights(net: nn.Module, config: Config) -> None:
    """Load train.init_weights into net (fine-tuning), checked against the config's model
    and arch before any data is read; nothing when the key is empty."""
    path = config.train.init_weights
    if not path:
        return
    if not Path(path).is_file():
        raise ConfigError(
            f"{config.path}: train.init_weights {path}: no such file (to start from other "
            "weights: --init-weights W.safetensors, or --init-weights fast for the shipped ones)"
        )
    stored = read_config(path)  # names the file when it is not a desmoke model
    if stored["model"] != config.model.name or stored.get("arch", {}) != config.model.arch:
        raise ConfigError(
            f"{config.path}: train.init_weights {path} holds model '{stored['model']}' with "
            f"arch {stored.get('arch', {})}, the config asks for '{config.model.name}' with "
            f"arch {config.model.arch}"
        )
    load_state_into(path, net)


# ----------------------------------------------------------------------------- resume


def resume_state(run: Run) -> dict[str, Any]:
    """The run's checkpoint, checked to be continued by run.config (read_checkpoint)."""
    path = run.out / CHECKPOINT_NAME
    state = read_checkpoint(path, run.config)
    if "config" not in state and run.main:
        print(
            f"warning: {path} was written before checkpoints recorded their config: "
            f"{run.config.path} cannot be checked against the run's",
            file=sys.stderr,
        )
    return state


def restore_run(
    run: Run, state: dict[str, Any], modules: dict[str, nn.Module], optimizers: dict
) -> None:
    """Continue where the checkpoint `state` left off: networks, optimisers, training time
    and the log."""
    restore_modules(run.out / CHECKPOINT_NAME, state, modules, optimizers)
    run.elapsed_before = float(state.get("elapsed", 0.0))
    run.trim_log(int(state["step"]))


def restore_modules(
    path: Path, state: dict[str, Any], modules: dict[str, nn.Module], optimizers: dict
) -> None:
    for name, module in modules.items():
        key = f"module_{name}"
        if key not in state:
            raise CheckpointError(f"{path}: has no '{name}' network state")
        load_module_state(path, module, state[key])
    for name, optimizer in optimizers.items():
        key = f"optim_{name}"
        if key not in state:
            raise CheckpointError(f"{path}: has no '{name}' optimiser state")
        restore_optimiser(path, optimizer, state[key])


def restore_optimiser(path: Path, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load the per-parameter state (Adam's moments and step) of a checkpoint's optimiser;
    its settings (betas, eps, weight decay, ...) stay the config's, which a resume shares
    with the run: a crafted checkpoint cannot set them. CheckpointError when the state does
    not fit the networks' parameters."""
    settings = [
        {k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups
    ]
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError, IndexError) as exc:  # torch's, by what is wrong
        raise CheckpointError(f"{path}: optimiser state does not fit ({exc})") from None
    for group, own in zip(optimizer.param_groups, settings, strict=True):
        group.update(own)
    problem = _optimiser_state_problem(optimizer)
    if problem:
        raise CheckpointError(f"{path}: optimiser state does not fit ({problem})")


def _optimiser_state_problem(optimizer: torch.optim.Optimizer) -> str:
    """Why the optimiser's per-parameter state cannot be trained with ("" when it can):
    torch's load_state_dict checks only the count of parameters, and a moment of another
    shape would fail at the first step."""
    for index, param in enumerate(p for group in optimizer.param_groups for p in group["params"]):
        for key, value in optimizer.state.get(param, {}).items():
            if not isinstance(value, torch.Tensor):
                return f"parameter {index}'s {key} is not a tensor"
            if value.dim() == 0 and not value.item() >= 0:  # a step count
                return f"parameter {index}'s {key} is {value.item()}, not >= 0"
            if value.dim() > 0 and value.shape != param.shape:
                return (
                    f"parameter {index}'s {key} has shape {tuple(value.shape)}, the "
                    f"parameter {tuple(param.shape)}"
                )
    return ""


# ----------------------------------------------------------------------------- command line


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of a training run: `desmoke train` and the trainers' own command line
    (torchrun) take the same ones."""
    parser.add_argument(
        "--config",
        required=True,
        type=Path,
        help="training config (TOML), or a shipped one by name: fast, paper, fast_finetune, ...",
    )
    parser.add_argument("-o", "--out", type=Path, help="run folder (default: runs/CONFIG-NAME)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/checkpoint.pt with the run's own config (its time budget "
        "and intervals may change)",
    )
    parser.add_argument(
        "--max-minutes", type=float, default=None, metavar="M", help="time budget override"
    )
    parser.add_argument(
        "--init-weights",
        metavar="W",
        help="start a new run from these weights in place of the config's "
        "train.init_weights: a .safetensors file, or a model's name (fast) for the weights "
        "the project ships (fine-tuning them on your own footage)",
    )


def configured_run(args: argparse.Namespace) -> tuple[Config, Path]:
    """The config and the run folder the arguments (add_run_arguments) name."""
    config = load_config(args.config)
    if args.init_weights:
        if args.resume:
            raise ConfigError(
                "--init-weights starts a new run and --resume continues a run from its "
                "checkpoint: give one of them"
            )
        config.train.init_weights = str(init_weights_file(args.init_weights))
        config.paths_as_written["train.init_weights"] = args.init_weights
    return config, args.out or Path("runs") / args.config.stem


def init_weights_file(name: str) -> Path:
    """--init-weights: a weights file, or a network model's name for its shipped weights."""
    path = Path(name)
    if path.is_file():
        return path
    if name not in NETWORK_MODELS:
        raise ConfigError(
            f"--init-weights {name}: no such file (a .safetensors, or fast for the shipped weights)"
        )
    shipped = shipped_weights(name)
    if shipped is None:
        raise ConfigError(f"--init-weights {name}: the project ships no weights for '{name}'")
    return shipped


def run_cli(train: Callable[..., dict[str, Any]], argv: list[str] | None, description: str) -> int:
    """The command line both trainers share: `train(config, out, resume=, max_minutes=)`;
    progress goes to stderr, the run's summary (JSON) alone to stdout. `description`: the
    trainer's (its first line)."""
    parser = argparse.ArgumentParser(description=description.strip().splitlines()[0])
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config, out = configured_run(args)
        summary = train(config, out, resume=args.resume, max_minutes=args.max_minutes)
    except TrainingInterrupted as stop:  # said where --resume continues (at once or not)
        return 128 + stop.signum
    except USER_ERRORS as exc:  # one line, as `desmoke train` says it
        print(f"desmoke: error: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":  # one summary under torchrun
        print(json.dumps(summary))
    return 0
