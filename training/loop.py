"""The training loop both trainers share, and the set-up around it (train_model).

TrainLoop: steps, the learning-rate schedule over the time budget, logging, validation and
best-on-val weights, checkpoints; stopping: Ctrl-C, SIGTERM or SIGHUP end the step under
way (or cut the validation under way short, before its next frame), write the checkpoint
and raise TrainingInterrupted; a second one stops at once, without a new checkpoint
(TrainingStoppedNow). train_model runs one model's Recipe (its networks, optimisers, step
and validation) in a run folder (training.run), on one process or under torchrun (DDP).
"""

from __future__ import annotations

import json
import platform
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from engine.models import default_config, save_weights
from engine.stop_signals import first_stop_signal, ignore_stop_signals
from training.checkpoint import (
    CHECKPOINT_NAME,
    RunWriteError,
    reported_as_write_error,
    save_checkpoint,
)
from training.config import Config, ConfigError, shareable_path
from training.data import FrameSet, SmokeDataset, StreamSampler, load_frames
from training.run import (
    BEST_NAME,
    LAST_NAME,
    Run,
    TrainingInterrupted,
    TrainingStoppedNow,
    init_from_weights,
    restore_run,
    resume_state,
    seeded_for_init,
    started_run,
)

#: A training step: a batch in, its losses (for the log) out.
StepFn = Callable[[dict[str, torch.Tensor]], dict[str, float]]


@dataclass
class StopRequest:
    signum: int = 0  # the first stop signal received; 0 = none


class ValidationStopped(Exception):
    """A stop was asked for during a validation: the rest of it is not waited for (a long
    one, the baseline's too, would keep the stop waiting for minutes)."""


def validation_items(
    val_set: SmokeDataset, stop_requested: Callable[[], bool]
) -> Iterator[dict[str, torch.Tensor]]:
    """The validation samples in order, each drawn only once no stop was asked for
    (ValidationStopped otherwise): a stop waits for one sample's scoring at most."""
    for index in range(len(val_set)):
        if stop_requested():
            raise ValidationStopped
        yield val_set[index]


@contextmanager
def evaluating(net: nn.Module) -> Iterator[nn.Module]:
    """`net` in eval mode within the block, back in training mode after it, however the
    block ends (a validation cut short by a stop too)."""
    net.eval()
    try:
        yield net
    finally:
        net.train()


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


# ----------------------------------------------------------------------------- the loop


def data_summary(frames: FrameSet, config: Config) -> dict[str, Any]:
    """What the run trained on, its sources named as the config wrote them: the log and the
    weights may be shared, this machine's folders must not go with them."""
    summary = frames.summary()
    sources = [{**s, "path": config.shareable_source(s["path"])} for s in summary["sources"]]
    return {**summary, "sources": sources}


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
    """Kill the worker processes of a DataLoader iterator (SIGKILL), for a stop at once or an
    error that ends the training: they ignore stop signals, so the SIGTERM that torch's
    shutdown and multiprocessing's exit send cannot end one stuck in a batch (or one still
    alive as the process exits), and the process would hang as it exits. Torch has no public
    handle on them: its private names, and nothing to do where they are absent."""
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
        "config_file": shareable_path(config.path),
        "config": config.shareable_dict(),
        "data": data_summary(frames, config),
        "steps": step,
        "minutes": round(run.elapsed / 60.0, 1),
        "hardware": hardware(),
        "world_size": run.world_size,
        "torch": torch.__version__,
    }
    out["metrics"] = metrics
    return out


def falls_due(step: int, every_steps: int, elapsed_s: float, every_minutes: float) -> bool:
    """Whether a validation or checkpoint falls due after `step`: every `every_steps` steps
    or `every_minutes` since the last; 0 turns either trigger off (0 minutes once meant
    after every step, which asked for a checkpoint that spends most of a run saving)."""
    by_steps = every_steps > 0 and step % every_steps == 0
    by_time = every_minutes > 0 and elapsed_s >= every_minutes * 60
    return by_steps or by_time


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
        validate_fn: Callable[[Callable[[], bool]], dict[str, float]],
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
        # A validation fell due at this step and a stop cut it short: the resume does it first.
        self._val_due = bool(resume_state.get("val_due", False))
        self._last_val: dict[str, float] = dict(resume_state.get("last_val", {}))
        # The step the checkpoint file holds: where --resume continues after a stop at once.
        self._checkpoint_step: int | None = self.step if resume_state else None
        self._val_time = self._checkpoint_time = 0.0  # monotonic time of the last ones
        self._losses: dict[str, float] = {}
        self._count = 0
        # What validate_fn(stop_requested) reads between samples: set while the loop runs.
        self._request = StopRequest()

    def run_to_the_end(self) -> dict[str, Any]:
        """Train to the budget; on a stop signal, checkpoint the last whole step and raise
        TrainingInterrupted; on a second one, raise TrainingStoppedNow at once. A file that
        cannot be written raises RunWriteError, after saying where --resume continues."""
        try:
            with stop_signals_deferred(self._announce_stop, self._stop_now) as request:
                self._request = request
                # A signal during _finish stops only its validation: the run is done
                # otherwise, and a resume, its budget used, validates and finishes it.
                signum = self._train(request)
                if not signum:
                    signum = self._finish()
                if signum:
                    self.checkpoint()
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
                    "data": data_summary(self.frames, self.config),
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
        except BaseException:
            # A stop at once (the workers perhaps stuck), or an error (a MemoryError): the
            # traceback keeps them alive past multiprocessing's exit handler, whose SIGTERM
            # they ignore and which then waits for them for ever (a hang after the error).
            kill_loader_workers(batches)
            raise
        finally:
            bar.close()

    def _start(self) -> None:
        self._log_start()
        # The untrained baseline (the trajectory starts at 0), or one a stop cut short.
        if self._val_due or (self.step == 0 and self._val_step != 0):
            self.validate_and_save()

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
        if falls_due(
            self.step, train.val_every_steps, now - self._val_time, train.val_every_minutes
        ):
            self.validate_and_save()
            self._val_time = time.monotonic()
        if falls_due(
            self.step,
            train.checkpoint_every_steps,
            now - self._checkpoint_time,
            train.checkpoint_every_minutes,
        ):
            self.checkpoint()
            self._checkpoint_time = time.monotonic()

    def _finish(self) -> int:
        """Validate the last step, checkpoint it and save it as LAST_NAME; returns 0, or the
        stop signal that cut the validation short (nothing saved: the caller checkpoints)."""
        # The last step may have been validated already.
        if self._val_step != self.step and not self.validate_and_save():
            return self._request.signum
        self.checkpoint()
        self._save_weights(LAST_NAME, self._last_val)  # validated at this very step
        self._warn_if_best_is_untrained()
        return 0

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
        """What the stop left, and what to do next: --resume from the last checkpoint, or
        (none written) a new run, which needs a folder free of this one's output."""
        out = self.run.out
        if stop.step is None:
            where = f"; to start again, delete {out} or use another --out"
        else:
            where = f" ({out / CHECKPOINT_NAME})"
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

    def _stop_requested(self) -> bool:
        return self._request.signum != 0

    def validate_and_save(self) -> bool:
        """Validate this step, log the scores and save the weights if they are the best so
        far; False, with nothing logged or saved, when a stop cut the validation short (the
        stop checkpoints next, the validation still due: a resume does it first)."""
        try:
            scores = self.validate_fn(self._stop_requested)
        except ValidationStopped:
            self._val_due = True
            return False
        metrics = {k: round(v, 4) for k, v in scores.items()}
        self._val_step, self._val_due = self.step, False
        self.run.log({"step": self.step, "minutes": self._minutes(), "val": metrics})
        if not self.run.main:
            return True
        # stderr, with the progress bar: stdout holds the run's summary alone (`| jq`).
        tqdm.write(f"step {self.step}: val {json.dumps(metrics)}", file=sys.stderr)
        self._last_val = {**metrics, "step": self.step}
        if not self.best or metrics["psnr"] > self.best["psnr"]:
            self.best = dict(self._last_val)
            self._save_weights(BEST_NAME, self.best)
        return True

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
            "val_due": self._val_due,
            "last_val": self._last_val,
            "elapsed": self.run.elapsed,
            "best": self.best,
        }
        save_checkpoint(self.run.out / CHECKPOINT_NAME, {**state, **modules, **optimizers})
        self._checkpoint_step = self.step  # only once the file is whole (and renamed)


def no_validation_frames(config: Config) -> str:
    """Why no frames were held out for validation, and what it costs (the training frames
    are validated on instead: a run of a single short clip still runs)."""
    data = config.data
    why = (
        "data.val_fraction is 0"
        if data.val_fraction == 0
        else f"a source of {2 * data.block_frames} frames or fewer (2 blocks of "
        f"data.block_frames = {data.block_frames}) holds none out, and no other gave one that "
        "passed the quality filters"
    )
    return (
        f"no frames are held out for validation ({why}): validation scores training frames, "
        "so its figures, and which weights are best, flatter the model; lower "
        "data.block_frames or add footage"
    )


def val_dataset(config: Config, frames: FrameSet, stride: int) -> SmokeDataset:
    """The validation set, at working shapes the network's `stride` divides (the training
    frames where none are held out: no_validation_frames says so)."""
    return SmokeDataset(
        frames.splits["val"] or frames.splits["train"],
        train=False,
        working_short_side=config.model.working_short_side,
        stride=stride,
        length=config.train.val_frames,
        seed=config.train.seed,
        split="val",
        smoke=config.smoke,
    )


# ----------------------------------------------------------------------------- a model's run


@dataclass(frozen=True)
class Recipe:
    """What is particular to one model's training; train_model does the rest.

    build(config): the networks by name, built once torch is seeded, before the run folder
    is made or any data read (a bad arch or config fails first); "net" is the one the
    weights files hold and train.init_weights fills. optimizers(config, networks): one per
    network to train, at its base learning rate. step(config, networks, optimizers): the
    training step, given the networks as trained (DDP-wrapped under torchrun).
    validate(net, items, config, device): the validation metrics of "net" over the samples
    `items` yields (validation_items: a stop raises ValidationStopped from it), "psnr"
    first among them (it picks the best weights).
    """

    model: str
    build: Callable[[Config], dict[str, nn.Module]]
    optimizers: Callable[[Config, dict[str, nn.Module]], dict[str, torch.optim.Optimizer]]
    step: Callable[[Config, dict[str, nn.Module], dict[str, torch.optim.Optimizer]], StepFn]
    validate: Callable[
        [nn.Module, Iterable[dict[str, torch.Tensor]], Config, torch.device], dict[str, float]
    ]


def train_model(
    recipe: Recipe,
    config: Config,
    out: str | Path,
    *,
    resume: bool = False,
    max_minutes: float | None = None,
    frames: FrameSet | None = None,
) -> dict[str, Any]:
    """Train `recipe`'s model per `config` into the run folder `out` (locked for the run;
    `resume`: from its checkpoint); returns the run summary. `frames`: data already loaded
    (else config.data's)."""
    if config.model.name != recipe.model:
        raise ConfigError(
            f"{config.path}: model.name is '{config.model.name}', not '{recipe.model}'"
        )
    seeded_for_init(config)
    networks = recipe.build(config)
    if not resume:
        init_from_weights(networks["net"], config)  # before the run folder is made
    with started_run(config, Path(out), resume, max_minutes) as run:
        summary, stopped = _train_in(run, recipe, networks, resume, frames)
    if stopped:
        raise stopped
    return summary


def _train_in(
    run: Run,
    recipe: Recipe,
    networks: dict[str, nn.Module],
    resume: bool,
    frames: FrameSet | None,
) -> tuple[dict[str, Any] | None, TrainingInterrupted | RunWriteError | None]:
    """run_loop's answer, the process group left (on a stop too)."""
    config = run.config
    state = resume_state(run) if resume else None
    frames = frames if frames is not None else load_frames(config.data)
    networks = {name: net.to(run.device) for name, net in networks.items()}
    optimizers = recipe.optimizers(config, networks)
    base_lrs = {name: o.param_groups[0]["lr"] for name, o in optimizers.items()}
    if state is not None:
        restore_run(run, state, networks, optimizers)  # the learning rates too: read before
    trained = distributed(networks, run)
    val_set = val_dataset(config, frames, networks["net"].stride)
    if run.main and not frames.splits["val"]:
        print(f"warning: {no_validation_frames(config)}", file=sys.stderr)

    def validate_fn(stop_requested: Callable[[], bool]) -> dict[str, float]:
        if not run.main:
            return {"psnr": 0.0}
        items = validation_items(val_set, stop_requested)
        return recipe.validate(networks["net"], items, config, run.device)

    for net in networks.values():
        net.train()
    step_fn = recipe.step(config, trained, optimizers)
    loop = TrainLoop(run, frames, trained, optimizers, step_fn, validate_fn, state, base_lrs)
    answer = run_loop(loop)
    # The DDP wrappers (their reducers hold gloo work): gone before the process group.
    loop = step_fn = trained = None
    run.close()
    return answer


def distributed(networks: dict[str, nn.Module], run: Run) -> dict[str, nn.Module]:
    """The networks as trained: each in a DistributedDataParallel wrapper under torchrun."""
    if run.world_size == 1:
        return dict(networks)
    ids = [run.device.index] if run.device.type == "cuda" else None
    return {
        name: nn.parallel.DistributedDataParallel(net, device_ids=ids)
        for name, net in networks.items()
    }
