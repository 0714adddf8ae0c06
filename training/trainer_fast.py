"""Trainer for the `fast` model (SmokeLayerNet): supervised smoke-layer estimation.

Loss (lessons measured here, NOTES.md "Training a smoke-layer network"):
- restoration on J: alpha and colour upsampled to the crop, J_hat = (I - A alpha) /
  max(1 - alpha, t_min); L1 (+ SSIM) to the clear frame, weighted by (1 - alpha_true) so
  dense-smoke pixels (which cannot be inverted) do not blow up the gradient;
- alpha supervision: L1 to alpha_true averaged down to the network's 1/4 resolution;
- colour supervision where the true alpha is significant (elsewhere A is undefined).
Adam(W) at 5e-4 with gradient-norm clipping and a cosine decay over the time budget.

This module also holds what both trainers share: the run set-up (output folder, resume,
seeds, torchrun/DDP), the time budget, logging and best-on-val weights, and stopping: Ctrl-C,
SIGTERM or SIGHUP end the step under way, write the checkpoint and raise TrainingInterrupted;
a second one stops at once, without a new checkpoint (TrainingStoppedNow).
Run: python -m training.trainer_fast --config training/configs/fast.toml --out runs/fast
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import os
import platform
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from engine.files import replaced_on_success
from engine.models import (
    WeightsError,
    build_network,
    default_config,
    network_stride,
    save_weights,
)
from engine.models.weights import load_state_into, read_config
from engine.stop_signals import first_stop_signal, ignore_stop_signals
from training.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    RunWriteError,
    load_module_state,
    prepare_run_folder,
    read_checkpoint,
    removed_if_left_empty,
    reported_as_write_error,
    save_checkpoint,
)
from training.config import Config, ConfigError, load_config
from training.data import DataError, FrameSet, SmokeDataset, StreamSampler, load_frames

BEST_NAME = "best.safetensors"
LAST_NAME = "last.safetensors"
LOG_NAME = "metrics.jsonl"
#: What a training run reports in one line (`desmoke train`, torchrun): bad input, a run
#: folder that cannot be written; anything else is a bug, with its traceback.
USER_ERRORS = (ConfigError, DataError, CheckpointError, WeightsError, RunWriteError)


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
            return "stopped at once; no checkpoint written yet (start again without --resume)"
        return f"stopped at once, no new checkpoint; --resume continues from step {step}"


@dataclass
class StopRequest:
    signum: int = 0  # the first stop signal received; 0 = none


@contextmanager
def stop_signals_deferred(
    announce: Callable[[int], None], stop_now: Callable[[int], NoReturn]
) -> Iterator[StopRequest]:
    """Within the block, the first stop signal is recorded in the StopRequest instead of
    raising: the loop stops between steps, so the checkpoint never holds an optimiser
    update cut half-way; announce(signum) says so at once (the step may take a while). A
    second signal calls stop_now(signum), which raises there and then: a hung step (a stuck
    data loader, a slow step on a big config) stops without SIGKILL, and a checkpoint being
    written is dropped whole (files are replaced atomically). Later ones are ignored."""
    request = StopRequest()

    def record(signum: int) -> None:
        request.signum = signum
        announce(signum)

    with first_stop_signal(record, on_second=stop_now):
        yield request


def run_loop(
    loop: TrainLoop,
) -> tuple[dict[str, Any] | None, TrainingInterrupted | RunWriteError | None]:
    """(summary, None) once trained; (None, the stop) when a stop signal ended the run with
    a checkpoint, or a file could not be written (every rank stopped at the same step), so
    that the caller still leaves the process group before raising it: its DDP wrappers,
    collected at exit instead, abort the process (under torchrun, 1 of 6 Ctrl-Cs before).
    The stop comes without its traceback, whose frames hold the wrappers. A stop at once is
    raised here: the ranks may be mid-step, where no barrier could meet."""
    try:
        return loop.run_to_the_end(), None
    except TrainingStoppedNow:
        raise
    except TrainingInterrupted as stop:
        return None, stop.with_traceback(None)
    except RunWriteError as error:  # a new one: its cause's frames hold the wrappers too
        return None, RunWriteError(error.path, error.reason)


def write_error_of(action: Callable[..., None], *args: Any) -> RunWriteError | None:
    """Run action(*args); the RunWriteError it raised, returned to be raised at the next
    agreed stop: the other DDP ranks, which write nothing, wait there and must stop at
    that step."""
    try:
        action(*args)
    except RunWriteError as error:
        return error
    return None


def say_from_a_signal_handler(message: str) -> None:
    """Print a line to stderr above the progress bar, never raising: from a signal handler
    a print can fail (stderr mid-write: a reentrant call; SIGHUP: the terminal is gone),
    and a lost message must not turn a clean stop into a crash."""
    with suppress(OSError, RuntimeError, ValueError):
        tqdm.write(message, file=sys.stderr)


# ----------------------------------------------------------------------------- shared set-up


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


def start_run(config: Config, out: Path, resume: bool, max_minutes: float | None) -> Run:
    """Check the output folder against --resume, make it, and set threads and (torchrun) DDP
    (seeding: seeded_for_init)."""
    minutes = budget_minutes(config, max_minutes)
    out = Path(out)
    checkpoint = out / CHECKPOINT_NAME
    with reported_as_write_error(out):  # a name too long fails even to be looked up
        has_run = checkpoint.is_file()
    if resume and not has_run:
        raise CheckpointError(f"{checkpoint}: checkpoint not found (nothing to resume)")
    if not resume and has_run:
        raise CheckpointError(
            f"{checkpoint}: the output folder already holds a run; use --resume or another --out"
        )
    prepare_run_folder(out)  # before any work: every rank, before the process group
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world_size > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        else:
            device = torch.device("cpu")
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(config.train.threads)
    return Run(config, out, device, rank, world_size, budget_s=minutes * 60.0)


def seeded_for_init(config: Config) -> None:
    """Seed torch before the networks are built: their initial weights follow train.seed,
    the same on every rank and on every run of the config."""
    torch.manual_seed(config.train.seed)


def leaves_no_empty_run_folder(train: Callable[..., dict]) -> Callable[..., dict]:
    """A trainer `train(config, out, ...)` that removes the run folder it made when it fails
    before writing anything there (checkpoint.removed_if_left_empty)."""

    @functools.wraps(train)
    def train_and_tidy(config: Config, out: str | Path, **kwargs: Any) -> dict:
        with removed_if_left_empty(Path(out)):
            return train(config, out, **kwargs)

    return train_and_tidy


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
    stored = read_config(path)  # names the file when it is missing or not a desmoke model
    if stored["model"] != config.model.name or stored.get("arch", {}) != config.model.arch:
        raise ConfigError(
            f"{config.path}: train.init_weights {path} holds model '{stored['model']}' with "
            f"arch {stored.get('arch', {})}, the config asks for '{config.model.name}' with "
            f"arch {config.model.arch}"
        )
    load_state_into(path, net)


def data_summary(frames: FrameSet) -> dict[str, Any]:
    return frames.summary()


def train_loader(config: Config, frames: FrameSet, run: Run, start_step: int) -> DataLoader:
    """The training stream, resuming at start_step (each rank reads its own share)."""
    train = config.train
    train_set = SmokeDataset(
        frames.splits["train"],
        train=True,
        crop=train.crop,
        working_short_side=config.model.working_short_side,
        scale_jitter=train.scale_jitter,
        clean_probability=train.clean_probability,
        seed=train.seed,
        smoke=config.smoke,
    )
    per_rank = max(1, train.batch_size // run.world_size)
    sampler = StreamSampler(start_step * per_rank, run.rank, run.world_size)
    loader = DataLoader(
        train_set,
        batch_size=per_rank,
        sampler=sampler,
        num_workers=train.num_workers,
        persistent_workers=train.num_workers > 0,
        worker_init_fn=ignore_stop_signals,
        pin_memory=run.device.type == "cuda",
    )
    return loader


def kill_loader_workers(batches: Iterator) -> None:
    """Kill the worker processes of a DataLoader iterator (SIGKILL), for a stop at once: they
    ignore stop signals, so the SIGTERM that torch's shutdown and multiprocessing's exit
    send cannot end one stuck in a batch, and the process would hang as it exits. Torch has
    no public handle on them: its private names, and nothing to do where they are absent."""
    if getattr(batches, "_worker_pids_set", False):
        # Forgotten first: torch's SIGCHLD handler raises for a known worker that dies.
        from torch.utils.data._utils import signal_handling

        signal_handling._remove_worker_pids(id(batches))
        batches._worker_pids_set = False
    for worker in getattr(batches, "_workers", ()):
        worker.kill()


def hardware() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"


def weights_config(config: Config, frames: FrameSet, run: Run, step: int, metrics: dict) -> dict:
    """The config stored with the weights: what the model is and how it was made."""
    model = config.model
    out = default_config(model.name, model.arch)
    out["working_short_side"] = model.working_short_side
    out["training"] = {
        "config_file": config.path,
        "config": config.to_dict(),
        "data": data_summary(frames),
        "steps": step,
        "minutes": round(run.elapsed / 60.0, 1),
        "hardware": hardware(),
        "world_size": run.world_size,
        "torch": torch.__version__,
    }
    out["metrics"] = metrics
    return out


def psnr_batch(reference: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of [0, 1] images, after 8-bit rounding (as saved frames are)."""
    ref = torch.round(reference.clamp(0, 1) * 255)
    tst = torch.round(test.clamp(0, 1) * 255)
    mse = ((ref - tst) ** 2).flatten(1).mean(dim=1).clamp_min(1e-10)
    return 10 * torch.log10(255.0**2 / mse)


def bare(module: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


class TrainLoop:
    """The loop both trainers share: steps, LR schedule, validation, checkpoints, best
    weights. `TrainLoop(...).run_to_the_end()` returns the run's summary (steps, minutes,
    best validation metrics)."""

    def __init__(
        self,
        run: Run,
        frames: FrameSet,
        modules: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        step_fn: Callable[[dict[str, torch.Tensor]], dict[str, float]],
        validate_fn: Callable[[], dict[str, float]],
        resume_state: dict[str, Any] | None,
        base_lrs: dict[str, float],
    ) -> None:
        self.run, self.frames, self.modules, self.optimizers = run, frames, modules, optimizers
        self.step_fn, self.validate_fn, self.base_lrs = step_fn, validate_fn, base_lrs
        self.config = run.config
        resume_state = resume_state or {}
        self.step = int(resume_state.get("step", 0))
        self.best: dict[str, float] = dict(resume_state.get("best", {}))
        self._val_step: int | None = resume_state.get("val_step")  # the last validated step
        self._last_val: dict[str, float] = dict(resume_state.get("last_val", {}))
        # The step the checkpoint file holds: where --resume continues after a stop at once.
        self._checkpoint_step: int | None = self.step if resume_state else None
        self._val_time = self._checkpoint_time = 0.0  # monotonic time of the last ones
        self._losses: dict[str, float] = {}
        self._count = 0

    def run_to_the_end(self) -> dict[str, Any]:
        """Train to the budget; on a stop signal, checkpoint the last whole step and raise
        TrainingInterrupted; on a second one, raise TrainingStoppedNow at once. A file that
        cannot be written raises RunWriteError, after saying where --resume continues."""
        try:
            with stop_signals_deferred(self._announce_stop, self._stop_now) as request:
                # A signal during _finish lets it complete: the run is done either way.
                signum = self._train(request)
                if signum:
                    self.checkpoint()
                else:
                    self._finish()
        except TrainingStoppedNow as stop:
            self._say_stopped_now(stop)
            raise
        except RunWriteError:
            self._say_where_to_resume(self._checkpoint_step)  # the last one written whole
            raise
        if signum:
            self._say_where_to_resume(self.step)
            raise TrainingInterrupted(signum, self.step)
        return {"steps": self.step, "minutes": self._minutes(), "best_val": self.best}

    def _log_start(self) -> None:
        if self.run.main:
            self.run.log(
                {
                    "event": "start",
                    "resume": self._checkpoint_step is not None,
                    "data": data_summary(self.frames),
                    "hardware": hardware(),
                    "world_size": self.run.world_size,
                }
            )

    def _announce_stop(self, signum: int) -> None:
        """The first stop signal's answer, from its handler: what happens, and how not to wait."""
        if self.run.main:
            say_from_a_signal_handler(
                f"{signal.Signals(signum).name}: stopping after the step under way, then "
                "writing a checkpoint; press Ctrl-C again to stop now, without it"
            )

    def _stop_now(self, signum: int) -> NoReturn:
        """The second stop signal's answer, from its handler: no waiting for the step."""
        raise TrainingStoppedNow(signum, self._checkpoint_step)

    def _train(self, request: StopRequest) -> int:
        """Steps until the budget is used (returns 0) or a stop signal came (returns it); a
        file that could not be written is raised at the next agreed stop."""
        run = self.run
        batches = iter(train_loader(self.config, self.frames, run, self.step))
        self._val_time = self._checkpoint_time = time.monotonic()
        bar = self._progress_bar()
        try:
            # A file the main rank could not write: raised once every rank agreed to stop.
            error = write_error_of(self._start)
            while True:
                done, signum = run.agreed_stop(self.step, request.signum, error is not None)
                if error is not None:
                    raise error
                if done or signum:
                    return signum
                error = write_error_of(self._step_and_save, next(batches), bar)
        except TrainingStoppedNow:
            kill_loader_workers(batches)  # perhaps stuck: the process must not wait for them
            raise
        finally:
            bar.close()

    def _start(self) -> None:
        self._log_start()
        if self.step == 0 and self._val_step != 0:
            self.validate_and_save()  # the untrained baseline: the trajectory starts at 0

    def _step_and_save(self, batch: dict[str, torch.Tensor], bar: tqdm) -> None:
        """One training step, then the logging, validation and checkpoint falling due."""
        train = self.config.train
        factor = self._set_learning_rates()
        batch = {k: v.to(self.run.device, non_blocking=True) for k, v in batch.items()}
        self._add_losses(self.step_fn(batch))
        self.step += 1
        bar.update(1)
        if self.step % train.log_every_steps == 0:
            bar.set_postfix(self._log_losses(factor))
        now = time.monotonic()
        if (now - self._val_time) >= train.val_every_minutes * 60 or (
            train.val_every_steps and self.step % train.val_every_steps == 0
        ):
            self.validate_and_save()
            self._val_time = time.monotonic()
        if (now - self._checkpoint_time) >= train.checkpoint_every_minutes * 60:
            self.checkpoint()
            self._checkpoint_time = time.monotonic()

    def _finish(self) -> None:
        if self._val_step != self.step:  # the last step may have been validated already
            self.validate_and_save()
        self.checkpoint()
        self._save_weights(LAST_NAME, self._last_val)  # validated at this very step
        self._warn_if_best_is_untrained()

    def _warn_if_best_is_untrained(self) -> None:
        """A short run whose random start scored best: best.safetensors is no trained net."""
        if self.run.main and self.best.get("step") == 0 and self.step > 0:
            print(
                f"warning: no validation after step 0 beat the untrained network "
                f"(PSNR {self.best['psnr']:.2f} dB), so {BEST_NAME} is that untrained "
                f"network; train longer, or use {LAST_NAME} (step {self.step})",
                file=sys.stderr,
            )

    def _say_where_to_resume(self, step: int | None) -> None:
        """Where --resume continues: the checkpoint of `step` (None: none written yet)."""
        if step is not None:
            self._say(
                f"checkpoint at step {step} ({self.run.out / CHECKPOINT_NAME}); "
                "--resume continues from there"
            )

    def _say_stopped_now(self, stop: TrainingStoppedNow) -> None:
        where = "" if stop.step is None else f" ({self.run.out / CHECKPOINT_NAME})"
        self._say(f"{signal.Signals(stop.signum).name} again: {stop.outcome(stop.step)}{where}")

    def _say(self, message: str) -> None:
        if self.run.main:
            print(message, file=sys.stderr)

    def _progress_bar(self) -> tqdm:
        return tqdm(
            desc=f"train {self.config.model.name}",
            initial=self.step,
            total=self.config.train.max_steps or None,
            unit="step",
            disable=not self.run.main,
            mininterval=1.0 if sys.stderr.isatty() else 30.0,
            dynamic_ncols=True,
        )

    def _minutes(self) -> float:
        return round(self.run.elapsed / 60, 2)

    def _set_learning_rates(self) -> float:
        factor = self.run.lr_factor(self.step)
        for name, optimizer in self.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = self.base_lrs[name] * factor
        return factor

    def _add_losses(self, parts: dict[str, float]) -> None:
        for k, v in parts.items():
            self._losses[k] = self._losses.get(k, 0.0) + v
        self._count += 1

    def _log_losses(self, factor: float) -> dict[str, float]:
        """Log the mean losses since the last log line and start over; returns them."""
        mean = {k: round(v / self._count, 5) for k, v in self._losses.items()}
        record = {"step": self.step, "minutes": self._minutes(), "lr_factor": round(factor, 4)}
        self.run.log({**record, "train": mean})
        self._losses, self._count = {}, 0
        return mean

    def validate_and_save(self) -> None:
        metrics = {k: round(v, 4) for k, v in self.validate_fn().items()}
        self._val_step = self.step
        self.run.log({"step": self.step, "minutes": self._minutes(), "val": metrics})
        if not self.run.main:
            return
        tqdm.write(f"step {self.step}: val {json.dumps(metrics)}")
        self._last_val = {**metrics, "step": self.step}
        if not self.best or metrics["psnr"] > self.best["psnr"]:
            self.best = dict(self._last_val)
            self._save_weights(BEST_NAME, self.best)

    def _save_weights(self, name: str, val: dict[str, float]) -> None:
        """The network as `name`, with `val`: its own validation scores (none if unknown)."""
        if self.run.main:
            metrics = {"val": val} if val else {}
            cfg = weights_config(self.config, self.frames, self.run, self.step, metrics)
            path = self.run.out / name
            with reported_as_write_error(path):  # safetensors' own error, or its .json's
                save_weights(path, bare(self.modules["net"]), cfg)

    def checkpoint(self) -> None:
        if not self.run.main:
            return
        modules = {f"module_{k}": bare(m).state_dict() for k, m in self.modules.items()}
        optimizers = {f"optim_{k}": o.state_dict() for k, o in self.optimizers.items()}
        state = {
            "model_name": self.config.model.name,
            "arch": self.config.model.arch,
            "config": self.config.to_dict(),  # what a resume must continue with
            "config_file": self.config.path,
            "step": self.step,
            "val_step": self._val_step,
            "last_val": self._last_val,
            "elapsed": self.run.elapsed,
            "best": self.best,
        }
        save_checkpoint(self.run.out / CHECKPOINT_NAME, {**state, **modules, **optimizers})
        self._checkpoint_step = self.step  # only once the file is whole (and renamed)


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
        try:
            optimizer.load_state_dict(state[key])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: optimiser state does not fit ({exc})") from None


# ----------------------------------------------------------------------------- fast model


#: SSIM window: 7x7 uniform, as training.metrics.ssim (scikit-image's default) measures it;
#: a box filter is also 3x cheaper than a Gaussian on CPU (avg_pool vs grouped convolution).
SSIM_WINDOW = 7


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: int = SSIM_WINDOW) -> torch.Tensor:
    """Per-pixel SSIM (uniform window, Wang et al. 2004 constants) of NxCxHxW [0, 1] images."""
    pad = window // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(t, (pad,) * 4, mode="reflect"), window, stride=1)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def invert(
    smoky: torch.Tensor, alpha: torch.Tensor, colour: torch.Tensor, t_min: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """J_hat from the low-resolution smoke layer (bilinear up to the image); also alpha up."""
    size = smoky.shape[-2:]
    alpha_up = F.interpolate(alpha, size=size, mode="bilinear", align_corners=False)
    colour_up = F.interpolate(colour, size=size, mode="bilinear", align_corners=False)
    restored = (smoky - colour_up * alpha_up) / (1 - alpha_up).clamp_min(t_min)
    return restored, alpha_up


def fast_loss(
    alpha: torch.Tensor,
    colour: torch.Tensor,
    batch: dict[str, torch.Tensor],
    config: Config,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (see the module docstring)."""
    train = config.train
    smoky, clear, alpha_true = batch["input"][:, :3], batch["clear"], batch["alpha"]
    restored, _ = invert(smoky, alpha, colour, train.t_min)
    weight = 1 - alpha_true
    wsum = weight.sum().clamp_min(1.0) * 3
    l1 = ((restored - clear).abs() * weight).sum() / wsum
    total = train.l1_weight * l1
    parts = {"l1": l1.item()}
    if train.ssim_weight > 0:
        dssim = ((1 - ssim_map(restored, clear)) * weight).sum() / wsum
        total = total + train.ssim_weight * dssim
        parts["dssim"] = dssim.item()
    alpha_small = F.adaptive_avg_pool2d(alpha_true, alpha.shape[-2:])
    alpha_l1 = (alpha - alpha_small).abs().mean()
    significant = alpha_small * (alpha_small > 0.05)
    colour_l1 = ((colour - batch["colour"][:, :, None, None]).abs() * significant).sum() / (
        significant.sum() * 3
    ).clamp_min(1.0)
    total = total + train.alpha_weight * alpha_l1 + train.colour_weight * colour_l1
    parts.update(alpha=alpha_l1.item(), colour=colour_l1.item(), total=total.item())
    return total, parts


@torch.no_grad()
def validate_fast(net: nn.Module, val_set: SmokeDataset, config: Config, device) -> dict:
    """Mean PSNR of the restored val frames (working resolution), and of the smoky input."""
    net.eval()
    restored_psnr, identity_psnr, alpha_err = [], [], []
    for index in range(len(val_set)):
        item = val_set[index]
        x = item["input"][None].to(device)
        alpha, colour = net(x)
        restored, alpha_up = invert(x[:, :3], alpha, colour, config.train.t_min)
        clear = item["clear"][None].to(device)
        restored_psnr.append(psnr_batch(clear, restored).item())
        identity_psnr.append(psnr_batch(clear, x[:, :3]).item())
        alpha_err.append((alpha_up - item["alpha"][None].to(device)).abs().mean().item())
    net.train()
    n = len(restored_psnr)
    return {
        "psnr": sum(restored_psnr) / n,
        "psnr_identity": sum(identity_psnr) / n,
        "alpha_mae": sum(alpha_err) / n,
    }


@leaves_no_empty_run_folder
def train_fast(
    config: Config,
    out: str | Path,
    *,
    resume: bool = False,
    max_minutes: float | None = None,
    frames: FrameSet | None = None,
) -> dict[str, Any]:
    """Train the `fast` model per `config` into `out`; returns the run summary."""
    if config.model.name != "fast":
        raise ConfigError(f"{config.path}: model.name is '{config.model.name}', not 'fast'")
    seeded_for_init(config)
    net = build_network("fast", config.model.arch)  # bad arch fails here, before data
    if not resume:
        init_from_weights(net, config)  # before the run folder is made
    run = start_run(config, Path(out), resume, max_minutes)
    state = resume_state(run) if resume else None
    frames = frames if frames is not None else load_frames(config.data)
    net = net.to(run.device)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay
    )
    if state is not None:
        restore_run(run, state, {"net": net}, {"net": optimizer})
    model = net
    if run.world_size > 1:
        ids = [run.device.index] if run.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(net, device_ids=ids)

    def step_fn(batch: dict[str, torch.Tensor]) -> dict[str, float]:
        alpha, colour = model(batch["input"])
        loss, parts = fast_loss(alpha, colour, batch, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
        optimizer.step()
        parts["grad_norm"] = float(norm)
        return parts

    val_set = val_dataset(config, frames)

    def validate_fn() -> dict[str, float]:
        return validate_fast(net, val_set, config, run.device) if run.main else {"psnr": 0.0}

    net.train()
    summary, stopped = run_loop(
        TrainLoop(
            run,
            frames,
            {"net": model},
            {"net": optimizer},
            step_fn,
            validate_fn,
            state,
            {"net": config.train.lr},
        )
    )
    model = None  # the DDP wrapper (its reducer holds gloo work): gone before the group
    run.close()
    if stopped:
        raise stopped
    return summary


def val_dataset(config: Config, frames: FrameSet) -> SmokeDataset:
    return SmokeDataset(
        frames.splits["val"] or frames.splits["train"],
        train=False,
        working_short_side=config.model.working_short_side,
        stride=network_stride(config.model.name),
        length=config.train.val_frames,
        seed=config.train.seed,
        split="val",
        smoke=config.smoke,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=None, help="run folder (default runs/NAME)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--max-minutes", type=float, default=None)
    return parser.parse_args(argv)


def run_cli(train, argv: list[str] | None) -> int:
    """The command line both trainers share: `train(config, out, resume=, max_minutes=)`."""
    args = parse_args(argv)
    try:
        config = load_config(args.config)
        out = args.out or Path("runs") / args.config.stem
        summary = train(config, out, resume=args.resume, max_minutes=args.max_minutes)
    except TrainingInterrupted as stop:  # said where --resume continues (at once or not)
        return 128 + stop.signum
    except USER_ERRORS as exc:  # one line, as `desmoke train` says it
        print(f"desmoke: error: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0":  # one summary under torchrun
        print(json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(train_fast, argv)


if __name__ == "__main__":
    sys.exit(main())
