"""Trainers: losses go down on tiny CPU runs; runs write weights, checkpoints and resume;
bad configs and checkpoints fail with the file's name before training."""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.models import (
    build_network,
    default_config,
    load_network,
    read_config,
    save_weights,
    shipped_weights,
)
from engine.restore import _invert_rows
from tests.frames import tissue, write_video
from training.checkpoint import CheckpointError, load_module_state, read_checkpoint
from training.config import ConfigError, config_from_dict, load_config
from training.data import DataError, SmokeDataset, load_frames
from training.loop import stop_signals_deferred, train_loader, val_dataset
from training.patchgan import PatchGAN
from training.run import (
    Run,
    RunFolderError,
    add_run_arguments,
    configured_run,
    init_from_weights,
)
from training.smoke import SmokeConfig
from training.trainer_fast import fast_loss, invert, ssim_map, train_fast
from training.trainer_paper import discriminator_loss, generator_loss, train_paper

FAST_ARCH = {"widths": [8, 16, 32]}
PAPER_ARCH = {"ngf": 4}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trainclip")
    return write_video(folder / "tissue.mp4", [tissue(i, (96, 64)) for i in range(30)])


def tiny_config(clip: Path, model: str = "fast", arch: dict | None = None, **train) -> dict:
    paper = model == "paper"
    values = {
        "crop": 256 if paper else 64,
        "batch_size": 1 if paper else 4,
        "max_minutes": 10.0,
        "max_steps": 4,
        "val_frames": 2,
        "val_every_steps": 2,
        "num_workers": 0,
        "log_every_steps": 1,
        "lr": 2e-3,
    }
    values.update(train)
    return {
        "model": {
            "name": model,
            "arch": arch if arch is not None else (PAPER_ARCH if paper else FAST_ARCH),
            "working_short_side": 256 if paper else 64,
        },
        "data": {
            "sources": [str(clip)],
            "store_short_side": 256 if paper else 64,
            "block_frames": 5,
            "scope_crop": False,
            "min_sharpness": 0.0,  # the 96x64 clip, upscaled for `paper`, is soft
        },
        "train": values,
        "paper": {"ndf": 8},
    }


def fixed_batch(clip: Path, config, size: int) -> dict[str, torch.Tensor]:
    frames = load_frames(config.data)
    dataset = SmokeDataset(
        frames.splits["train"],
        train=True,
        crop=size,
        working_short_side=size,
        clean_probability=0.0,
    )
    items = [dataset[i] for i in range(config.train.batch_size)]
    return {k: torch.stack([item[k] for item in items]) for k in items[0]}


# ----------------------------------------------------------------------------- losses


def test_training_inverts_the_smoke_layer_as_the_engine_does() -> None:
    """The loss's J_hat is the engine's restoration (alpha at the image's size): trained
    with another inversion, the network would learn a smoke layer the app undoes otherwise.
    Alpha spans dense smoke (past 1 - t_min) too."""
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    alpha = rng.random((16, 24), dtype=np.float32)
    colour = rng.random(3, dtype=np.float32)
    engine_out = np.empty_like(frame)
    _invert_rows(frame, alpha, colour, 0.1, engine_out)
    smoky = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
    restored, _ = invert(
        smoky,
        torch.from_numpy(alpha)[None, None],
        torch.from_numpy(colour)[None, :, None, None],
        0.1,
    )
    trained = (restored.clamp(0, 1) * 255)[0].permute(1, 2, 0).numpy()
    assert np.abs(trained - engine_out).max() <= 0.51  # the engine's rounding to uint8


def test_fast_loss_goes_down_on_64px_crops(clip: Path) -> None:
    torch.manual_seed(0)
    config = config_from_dict(tiny_config(clip))
    batch = fixed_batch(clip, config, 64)
    net = build_network("fast", FAST_ARCH)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(25):
        loss, parts = fast_loss(*net(batch["input"]), batch, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(parts["total"])
        assert set(parts) >= {"l1", "alpha", "colour", "dssim"}
    assert losses[-1] < 0.7 * losses[0], losses


def test_paper_losses_go_down_on_256px_input(clip: Path) -> None:
    torch.manual_seed(0)
    config = config_from_dict(tiny_config(clip, "paper"))
    batch = fixed_batch(clip, config, 256)
    generator = build_network("paper", PAPER_ARCH)
    discriminator = PatchGAN(4, ndf=8)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    l1s = []
    for _ in range(15):
        fake = generator(batch["input"])
        opt_d.zero_grad()
        discriminator_loss(discriminator, batch["input"], batch["clear"], fake).backward()
        opt_d.step()
        loss_g, l1, _ = generator_loss(discriminator, batch["input"], fake, batch["clear"], config)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        l1s.append(l1.item())
    assert l1s[-1] < 0.7 * l1s[0], l1s


def test_patchgan_is_70px_patches_and_checks_its_condition() -> None:
    disc = PatchGAN(4, ndf=8)
    assert disc(torch.rand(2, 4, 256, 256), torch.rand(2, 3, 256, 256)).shape == (2, 1, 30, 30)
    with pytest.raises(ValueError, match="expects 4 condition channels, got 3"):
        disc(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))


def test_ssim_map_is_one_for_identical_images_and_lower_otherwise() -> None:
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(ssim_map(x, x), torch.ones(1, 3, 32, 32), atol=1e-4)
    assert float(ssim_map(x, x * 0.5).mean()) < 0.95


# ----------------------------------------------------------------------------- runs


def test_fast_run_writes_weights_and_resumes(clip: Path, tmp_path: Path) -> None:
    config = config_from_dict(tiny_config(clip), tmp_path / "fast.toml")
    out = tmp_path / "run"
    summary = train_fast(config, out)
    assert summary["steps"] == 4
    for name in ("best.safetensors", "best.json", "last.safetensors", "checkpoint.pt"):
        assert (out / name).is_file(), name
    weights_config = read_config(out / "best.safetensors")
    assert weights_config["model"] == "fast" and weights_config["arch"] == FAST_ARCH
    assert weights_config["working_short_side"] == 64
    training = weights_config["training"]
    assert training["data"]["frames"]["train"] > 0 and training["steps"] >= 0
    assert {"hardware", "minutes", "config"} <= set(training)
    assert "psnr" in weights_config["metrics"]["val"]
    network, _ = load_network(out / "last.safetensors")
    alpha, colour = network(torch.rand(1, 4, 64, 64))
    assert alpha.shape == (1, 1, 16, 16) and colour.shape == (1, 3, 16, 16)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val" in r] == [0, 2, 4]  # step 4 validated once
    # Each weights file carries its own scores: last's are step 4's, not the best's.
    last = read_config(out / "last.safetensors")
    assert last["metrics"]["val"]["step"] == 4 == last["training"]["steps"]
    final = next(r["val"] for r in records if r.get("step") == 4 and "val" in r)
    assert last["metrics"]["val"]["psnr"] == final["psnr"]
    assert weights_config["metrics"]["val"]["step"] == weights_config["training"]["steps"]

    with pytest.raises(RunFolderError, match="already holds a run; use --resume"):
        train_fast(config, out)
    resumed = config_from_dict(tiny_config(clip, max_steps=6), tmp_path / "fast.toml")
    assert train_fast(resumed, out, resume=True)["steps"] == 6
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if "train" in r]
    assert train_steps == [1, 2, 3, 4, 5, 6]  # continued at step 5, not from scratch


def test_ctrl_c_checkpoints_the_step_it_stopped_at(clip: Path, tmp_path: Path, monkeypatch, capsys):
    import training.trainer_fast as trainer
    from desmoke_app.cli import main

    real_loss, calls = trainer.fast_loss, []

    def loss_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # lands mid-step, as a Ctrl-C does
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(trainer, "fast_loss", loss_then_ctrl_c)
    raw = tiny_config(clip, max_steps=6, val_every_steps=0)  # no periodic checkpoint either
    argv = ["train", "--config", str(write_toml(raw, tmp_path / "c.toml"))]
    argv += ["--out", str(tmp_path / "run")]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    said_at_once = "SIGINT: stopping after the step under way, then writing a checkpoint; "
    assert said_at_once + "press Ctrl-C again to stop now, without it" in err
    assert "checkpoint at step 3" in err[-2] and "--resume continues from there" in err[-2]
    assert err[-1] == "desmoke: interrupted"
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    assert torch.load(checkpoint, weights_only=True)["step"] == 3
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == [
        "best.json",
        "best.safetensors",
        "checkpoint.pt",
        "metrics.jsonl",
    ]  # no temporary file left behind
    monkeypatch.setattr(trainer, "fast_loss", real_loss)
    assert main([*argv, "--resume"]) == 0
    records = [json.loads(line) for line in (checkpoint.parent / "metrics.jsonl").open()]
    assert [r["step"] for r in records if "train" in r] == [1, 2, 3, 4, 5, 6]


def test_a_second_stop_signal_is_answered_at_once_and_later_ones_are_ignored() -> None:
    calls: list[tuple[str, int]] = []
    before = signal.getsignal(signal.SIGINT)
    with stop_signals_deferred(
        lambda signum: calls.append(("announce", signum)),
        lambda signum: calls.append(("stop now", signum)),  # the trainer's raises
    ) as request:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGINT):
            os.kill(os.getpid(), signum)  # each handled before os.kill returns to Python
        assert request.signum == signal.SIGTERM
    assert calls == [("announce", signal.SIGTERM), ("stop now", signal.SIGINT)]
    assert signal.getsignal(signal.SIGINT) is before


#: `desmoke train` with a run that hangs (the 60 s sleep) at the `at`-th call of its training
#: loss ("step") or of the item loading of its data-loader worker ("loader"); HUNG on stderr
#: says the hang has begun.
HUNG_RUN = """
import sys, time
import training.data as data, training.trainer_fast as trainer
from desmoke_app.cli import main

where, at = sys.argv[1], int(sys.argv[2])
calls = []

def count_and_hang():
    calls.append(1)
    if len(calls) == at:
        print("HUNG", file=sys.stderr, flush=True)
        time.sleep(60)

def loss(*args, real=trainer.fast_loss, **kwargs):
    count_and_hang()
    return real(*args, **kwargs)

def item(self, index, real=data.SmokeDataset.__getitem__):
    if self.train:
        count_and_hang()
    return real(self, index)

if where == "step":
    trainer.fast_loss = loss
else:
    data.SmokeDataset.__getitem__ = item
sys.exit(main(sys.argv[3:]))
"""


class StderrReader:
    """A child's stderr, read by a thread: a wait for a line has a deadline, so a child
    that hangs fails the test instead of hanging it."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.text, self._lines = "", queue.Queue()
        threading.Thread(target=self._read, args=(process.stderr,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.text:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} in {timeout} s:\n{self.text}") from None
            if line is None:
                raise AssertionError(f"stderr ended before {text!r}:\n{self.text}")
            self.text += line

    def to_the_end(self, timeout: float = 30.0) -> str:
        while (line := self._lines.get(timeout=timeout)) is not None:
            self.text += line
        return self.text


def wait_for_checkpoint(path: Path, step: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and torch.load(path, weights_only=True)["step"] == step):
        assert time.monotonic() < deadline, f"no checkpoint of step {step} in {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize("where", ["step", "loader"])
def test_a_second_ctrl_c_stops_a_hung_run_at_once(clip: Path, tmp_path: Path, where) -> None:
    """The first Ctrl-C asks for a stop after the step, which never ends (stuck in the
    training process, or waiting for a worker's batch); the second stops at once, without a
    new checkpoint: the one before stays whole, and --resume continues from it."""
    raw = tiny_config(
        clip, max_steps=20, val_every_steps=0, checkpoint_every_steps=1, num_workers=1
    )  # a checkpoint after each step
    out = tmp_path / "run"
    argv = ["train", "--config", str(write_toml(raw, tmp_path / "c.toml")), "--out", str(out)]
    at = 3 if where == "step" else 9  # step 3; the first item of batch 3 (4 per batch)
    process = subprocess.Popen(
        [sys.executable, "-c", HUNG_RUN, where, str(at), *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own process group: a failed test ends its worker too
    )
    err = StderrReader(process)
    try:
        err.wait_for("HUNG")
        # The worker runs ahead of the steps: the run is stuck once step 2 is checkpointed.
        wait_for_checkpoint(out / "checkpoint.pt", 2)
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        err.wait_for("SIGINT: stopping after the step under way", timeout=10)  # said at once
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=20)  # well within the hang; no SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):  # all gone, unless the test failed
            os.killpg(process.pid, signal.SIGKILL)
    text = err.to_the_end()
    assert code == 130, text
    stopped = "SIGINT again: stopped at once, no new checkpoint; --resume continues from step 2"
    assert stopped in text and "Traceback" not in text
    assert text.endswith("desmoke: interrupted\n"), text
    state = read_checkpoint(out / "checkpoint.pt", load_config(tmp_path / "c.toml"))
    assert state["step"] == 2
    load_module_state(out / "checkpoint.pt", build_network("fast", FAST_ARCH), state["module_net"])
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")]


def test_resume_drops_what_was_logged_after_the_checkpoint(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_fast(config_from_dict(tiny_config(clip, max_steps=2, val_every_steps=0)), out)
    log = out / "metrics.jsonl"
    with log.open("a") as handle:  # a run killed (SIGKILL, power cut) past its checkpoint
        handle.write(json.dumps({"step": 3, "train": {"l1": 1.0}}) + "\n")
        handle.write(json.dumps({"step": 4, "val": {"psnr": 1.0}}) + "\n")
        handle.write('{"step": 5, "tra')  # cut short by the kill
    resumed = config_from_dict(tiny_config(clip, max_steps=4, val_every_steps=0))
    assert train_fast(resumed, out, resume=True)["steps"] == 4
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records if "train" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in records if "val" in r] == [0, 2, 4]
    assert train_fast(resumed, out, resume=True)["steps"] == 4  # nothing left to do
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records if "val" in r] == [0, 2, 4]  # step 4 not validated again


def test_loader_workers_leave_stopping_to_the_training_process(clip: Path) -> None:
    config = config_from_dict(tiny_config(clip, num_workers=1))
    run = Run(config, Path("unused"), torch.device("cpu"), 0, 1, budget_s=1.0)
    before = {child.pid for child in multiprocessing.active_children()}
    batches = iter(train_loader(config, load_frames(config.data), run, 0))
    next(batches)
    for child in multiprocessing.active_children():
        if child.pid not in before:  # the worker: a terminal's Ctrl-C reaches it too
            os.kill(child.pid, signal.SIGINT)
    time.sleep(0.5)
    for _ in range(6):  # more than the worker had prefetched
        assert next(batches)["input"].shape[0] == config.train.batch_size


def test_resume_from_a_missing_or_mismatched_checkpoint_fails(clip: Path, tmp_path: Path) -> None:
    config = config_from_dict(tiny_config(clip, max_steps=1, val_every_steps=0))
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: checkpoint not found"):
        train_fast(config, tmp_path / "nothing", resume=True)
    train_fast(config, tmp_path / "run")
    other = config_from_dict(tiny_config(clip, arch={"widths": [8, 16, 16]}, max_steps=2))
    with pytest.raises(CheckpointError, match="made for model 'fast' with arch"):
        train_fast(other, tmp_path / "run", resume=True)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(
        CheckpointError, match=r"bad/checkpoint\.pt: not a checkpoint desmoke wrote"
    ):
        train_fast(config, tmp_path / "bad", resume=True)


def test_resume_refuses_a_config_that_trains_otherwise(clip: Path, tmp_path: Path, capsys):
    """QA: resuming a fast.toml run with fast_white_balance.toml ran, and last.json then
    gave the other file and its lr for steps trained at the run's. A resume continues the
    run: a config that trains otherwise is refused, naming the keys, before any step."""
    from desmoke_app.cli import main

    out = tmp_path / "run"
    first = write_toml(tiny_config(clip, max_steps=2, val_every_steps=0), tmp_path / "a.toml")
    assert main(["train", "--config", str(first), "--out", str(out)]) == 0
    checkpoint = out / "checkpoint.pt"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    raw = tiny_config(clip, max_steps=4, val_every_steps=0, lr=1e-3, seed=5)
    raw["smoke"] = {"tint_probability": 0.5}
    other = write_toml(raw, tmp_path / "stage2.toml")
    capsys.readouterr()
    assert main(["train", "--config", str(other), "--out", str(out), "--resume"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"desmoke: error: {checkpoint}: the run was ")
    assert f"trained with {first}; {other} differs in " in err[0]
    for key in ("train.seed 5 (the run's: 0)", "train.lr 0.001 (the run's: 0.002)"):
        assert key in err[0]
    assert "smoke.tint_probability 0.5 (the run's: 0.0)" in err[0]
    assert "train.max_steps" not in err[0]  # the budget may change
    assert f"train.init_weights = {out / 'best.safetensors'}" in err[0]  # how to fine-tune
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing trained


def test_resume_may_change_the_budget_and_how_the_run_is_watched(clip: Path, tmp_path: Path):
    out = tmp_path / "run"
    train_fast(config_from_dict(tiny_config(clip, max_steps=2), tmp_path / "a.toml"), out)
    free = dict(max_steps=3, max_minutes=5.0, val_every_steps=0, val_every_minutes=1.0)
    free.update(checkpoint_every_minutes=1.0, log_every_steps=2, num_workers=1, threads=1)
    resumed = config_from_dict(tiny_config(clip, **free), tmp_path / "b.toml")
    assert train_fast(resumed, out, resume=True)["steps"] == 3
    # The weights say what trained them: the run's config, with this session's budget.
    training = read_config(out / "last.safetensors")["training"]
    assert training["config_file"] == "b.toml"  # not this machine's folders (shareable_path)
    assert (
        training["config"]["train"]["lr"] == 2e-3 and training["config"]["train"]["max_steps"] == 3
    )


def test_a_run_resumes_from_a_moved_checkout_and_data_folder(
    clip: Path, tmp_path: Path, monkeypatch, caplog
):
    """GPU machines are lent per session: the same config, resumed from a checkout at
    another path with DESMOKE_DATA on another mount, continues the run; other sources do
    not, and init_weights (read only by a new run) may change."""
    for layout in ("data/clear", "repo/configs/clips"):
        (tmp_path / "a" / layout).mkdir(parents=True)
        shutil.copy(clip, tmp_path / "a" / layout / "tissue.mp4")
    raw = tiny_config(clip, max_steps=2, val_every_steps=0)
    raw["data"]["sources"] = ["${DESMOKE_DATA}/clear/tissue.mp4", "clips/tissue.mp4"]
    monkeypatch.setenv("DESMOKE_DATA", str(tmp_path / "a" / "data"))
    out = tmp_path / "run"
    train_fast(config_from_dict(raw, tmp_path / "a" / "repo" / "configs" / "fast.toml"), out)
    shutil.move(tmp_path / "a", tmp_path / "b")
    monkeypatch.setenv("DESMOKE_DATA", str(tmp_path / "b" / "data"))
    moved = tmp_path / "b" / "repo" / "configs" / "fast.toml"
    raw["train"].update(max_steps=3, init_weights="stage1.safetensors")
    assert train_fast(config_from_dict(raw, moved), out, resume=True)["steps"] == 3
    # Written the same, read elsewhere: said, so that other data cannot pass unseen.
    [moved_data] = [r.getMessage() for r in caplog.records if "read its data from" in r.message]
    assert str(tmp_path / "a" / "data") in moved_data and str(tmp_path / "b") in moved_data
    raw["data"]["sources"] = raw["data"]["sources"][:1]
    with pytest.raises(CheckpointError, match=r"differs in data\.sources \['\$\{DESMOKE_DATA\}"):
        train_fast(config_from_dict(raw, moved), out, resume=True)


def test_a_checkpoint_from_before_recorded_configs_resumes_with_a_warning(
    clip: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    train_fast(config_from_dict(tiny_config(clip, max_steps=1, val_every_steps=0)), out)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    del state["config"], state["config_file"]
    torch.save(state, out / "checkpoint.pt")
    resumed = config_from_dict(tiny_config(clip, max_steps=2), tmp_path / "b.toml")
    assert train_fast(resumed, out, resume=True)["steps"] == 2
    err = capsys.readouterr().err
    assert f"warning: {out / 'checkpoint.pt'} was written before checkpoints recorded" in err


@pytest.mark.parametrize("out_name", ["run", "new/deeper/run"])
def test_a_run_refused_at_start_up_leaves_no_folder(clip: Path, tmp_path: Path, out_name) -> None:
    """QA: a missing source, a mismatched init_weights ... each left runs/NAME/ empty."""
    out = tmp_path / out_name
    missing = config_from_dict(tiny_config(tmp_path / "missing.mp4"))
    with pytest.raises(DataError, match=r"missing\.mp4: data source not found"):
        train_fast(missing, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nor the parents made for it
    mine = tmp_path / "mine"
    mine.mkdir()  # the user's own folder, empty: it stays
    with pytest.raises(DataError):
        train_fast(missing, mine)
    assert mine.is_dir() and not any(mine.iterdir())
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(DataError):
        train_fast(missing, mine / "run")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_the_seed_fixes_the_initial_weights(clip: Path, tmp_path: Path) -> None:
    """The networks are built after torch is seeded: two runs of one config train the same
    weights, and another seed other ones (before, the seed came after the build)."""

    def trained(name: str, seed: int) -> dict[str, torch.Tensor]:
        raw = tiny_config(clip, max_steps=1, val_every_steps=0, seed=seed)
        train_fast(config_from_dict(raw), tmp_path / name)
        return load_network(tmp_path / name / "last.safetensors")[0].state_dict()

    first, again, other = trained("a", 0), trained("b", 0), trained("c", 1)
    torch.testing.assert_close(first, again)
    assert any(not torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("dark", [True, False])
def test_paper_run_with_and_without_the_dark_channel(clip: Path, tmp_path: Path, dark) -> None:
    arch = {"ngf": 4, "use_dark_channel": dark}
    config = config_from_dict(tiny_config(clip, "paper", arch=arch, max_steps=2))
    summary = train_paper(config, tmp_path / "paper")
    assert summary["steps"] == 2
    network, weights_config = load_network(tmp_path / "paper" / "best.safetensors")
    assert weights_config["arch"] == arch and network.use_dark_channel is dark
    assert network(torch.rand(1, 4, 256, 256)).shape == (1, 3, 256, 256)
    resumed = config_from_dict(tiny_config(clip, "paper", arch=arch, max_steps=3))
    assert train_paper(resumed, tmp_path / "paper", resume=True)["steps"] == 3


def test_fine_tuning_starts_from_init_weights(clip: Path, tmp_path: Path) -> None:
    first = config_from_dict(tiny_config(clip, max_steps=2))
    train_fast(first, tmp_path / "stage1")
    stage1 = tmp_path / "stage1" / "last.safetensors"
    raw = tiny_config(clip, max_steps=1, val_every_steps=0, init_weights="stage1/last.safetensors")
    config = config_from_dict(raw, tmp_path / "finetune.toml")  # relative to the config file
    assert config.train.init_weights == str(tmp_path / "stage1" / "last.safetensors")
    net = build_network("fast", FAST_ARCH)
    init_from_weights(net, config)
    loaded, _ = load_network(stage1)
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(net.state_dict()[name], tensor)
    assert train_fast(config, tmp_path / "stage2")["steps"] == 1


def test_init_weights_missing_or_of_another_arch_fails_before_data(tmp_path: Path) -> None:

    missing_data = tmp_path / "missing.mp4"
    raw = tiny_config(missing_data, init_weights=str(tmp_path / "none.safetensors"))
    with pytest.raises(ConfigError, match=r"none\.safetensors: no such file .*--init-weights"):
        train_fast(config_from_dict(raw), tmp_path / "run1")
    other = build_network("fast", {"widths": [8, 16, 16]})
    save_weights(
        tmp_path / "other.safetensors", other, default_config("fast", {"widths": [8, 16, 16]})
    )
    raw = tiny_config(missing_data, init_weights=str(tmp_path / "other.safetensors"))
    with pytest.raises(ConfigError, match=r"train\.init_weights .*other\.safetensors holds"):
        train_fast(config_from_dict(raw), tmp_path / "run2")
    assert not (tmp_path / "run1").exists() and not (tmp_path / "run2").exists()


def test_init_weights_on_the_command_line(clip: Path, tmp_path: Path) -> None:
    """--init-weights replaces the config's start: a shipped stage config's init_weights
    points into a checkout's runs/, which an installed project lacks; `fast` names the
    shipped weights (fine-tuning them), a file its own; not with --resume."""
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    raw = tiny_config(clip, init_weights="../../runs/fast_stage1.safetensors")
    config_file = write_toml(raw, tmp_path / "stage.toml")

    def configured(*extra: str):
        return configured_run(parser.parse_args(["--config", str(config_file), *extra]))

    config, out = configured("--init-weights", "fast")
    assert Path(config.train.init_weights) == shipped_weights("fast")
    assert config.paths_as_written["train.init_weights"] == "fast"
    assert out == Path("runs/stage")
    mine = save_weights(
        tmp_path / "mine.safetensors",
        build_network("fast", FAST_ARCH),
        default_config("fast", FAST_ARCH),
    )
    config, _ = configured("--init-weights", str(mine), "-o", str(tmp_path / "run"))
    assert config.train.init_weights == str(mine)
    assert train_fast(config, tmp_path / "run")["steps"] == 4
    with pytest.raises(ConfigError, match="ships no weights for 'paper'"):
        configured("--init-weights", "paper")
    with pytest.raises(ConfigError, match=r"^--init-weights nowhere\.safetensors: no such file"):
        configured("--init-weights", "nowhere.safetensors")  # said as the option, not the config
    (tmp_path / "fast").mkdir()  # a folder of that name (a run's, -o fast) is not weights
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        assert Path(configured("--init-weights", "fast")[0].train.init_weights) == shipped_weights(
            "fast"
        )
    with pytest.raises(ConfigError, match="--init-weights starts a new run"):
        configured("--init-weights", "fast", "--resume")
    config, _ = configured()  # the config's own start, missing here: said with the way out
    with pytest.raises(ConfigError, match=r"fast_stage1\.safetensors: no such file"):
        init_from_weights(build_network("fast", FAST_ARCH), config)


def toml_value(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)  # strings, ints and floats read the same in TOML


def write_toml(raw: dict, path: Path) -> Path:
    lines = []
    for section, values in raw.items():
        lines += [f"[{section}]"] + [f"{k} = {toml_value(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available in this torch build",
)
@pytest.mark.parametrize("model", ["fast", "paper"])
def test_torchrun_trains_on_two_processes_and_resumes(clip: Path, tmp_path: Path, model) -> None:
    """DistributedDataParallel for real: two CPU processes (gloo) under torchrun."""
    steps = 4 if model == "fast" else 2
    out = tmp_path / "run"

    def torchrun(max_steps: int, *extra: str) -> list[dict]:
        config = write_toml(
            tiny_config(clip, model, max_steps=max_steps, threads=1), tmp_path / "c.toml"
        )
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc_per_node=2", "-m", f"training.trainer_{model}"]
        command += ["--config", str(config), "--out", str(out), *extra]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]

    records = torchrun(steps)
    assert [r["world_size"] for r in records if r.get("event") == "start"] == [2]
    assert [r["step"] for r in records if "train" in r] == list(range(1, steps + 1))
    network, _ = load_network(out / "best.safetensors")
    assert sum(p.numel() for p in network.parameters()) > 0
    records = torchrun(steps + 1, "--resume")
    assert [r["step"] for r in records if "train" in r] == list(range(1, steps + 2))


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available in this torch build",
)
def test_ctrl_c_under_torchrun_checkpoints_and_leaves_the_group(clip: Path, tmp_path: Path) -> None:
    """Ctrl-C in the terminal (SIGINT to the whole group) stops both ranks at one step with a
    checkpoint; they leave the process group before exiting (the DDP wrapper, collected at
    exit instead, aborted a rank: "terminate called without an active exception", 1 of 6
    runs before)."""
    out = tmp_path / "run"
    config = write_toml(
        tiny_config(clip, max_steps=100_000, threads=1, checkpoint_every_steps=1),
        tmp_path / "c.toml",
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", "-m", "training.trainer_fast"]
    command += ["--config", str(config), "--out", str(out)]
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert "terminate called" not in stderr and "--resume continues from there" in stderr
    step = read_checkpoint(out / "checkpoint.pt", load_config(config))["step"]
    logged = [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
              if "train" in r]  # fmt: skip
    assert step >= 1 and logged[-1] == step


def test_trainer_refuses_the_other_model(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not 'fast'"):
        train_fast(config_from_dict(tiny_config(clip, "paper")), tmp_path)
    with pytest.raises(ConfigError, match="not 'paper'"):
        train_paper(config_from_dict(tiny_config(clip)), tmp_path)


# ----------------------------------------------------------------------------- configs


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_shipped_configs_load(monkeypatch) -> None:
    monkeypatch.setenv("DESMOKE_DATA", "/data")
    root = Path(__file__).resolve().parents[1] / "training" / "configs"
    fast = load_config(root / "fast.toml")
    assert fast.model.name == "fast" and fast.data.sources[0] == "/data/clear/endo_720p.mp4"
    assert fast.train.lr == 5e-4
    paper = load_config(root / "paper.toml")
    assert paper.model.name == "paper" and paper.paper.l1_weight == 100.0
    assert fast.smoke == SmokeConfig()  # no [smoke] table: the default synthesis
    tinted = load_config(root / "fast_tinted.toml")
    assert tinted.smoke.tint == (0.0, 0.15) and tinted.smoke.colour_brightness == (0.55, 1.0)
    assert tinted.smoke.tint_probability == 0.4 and tinted.smoke.density == SmokeConfig().density


def test_training_and_validation_smoke_follow_the_config(clip: Path) -> None:
    raw = tiny_config(clip)
    raw["smoke"] = {"tint_probability": 1.0, "colour_brightness": [0.5, 0.6]}
    config = config_from_dict(raw)
    frames = load_frames(config.data)
    assert val_dataset(config, frames, stride=16).synth.config is config.smoke
    run = Run(config, Path("unused"), torch.device("cpu"), 0, 1, budget_s=1.0)
    assert train_loader(config, frames, run, 0).dataset.synth.config is config.smoke


@pytest.mark.parametrize(
    "text, message",
    [
        ("[train]\nbatchsize = 4\n", r"config\.toml: train\.batchsize: unknown key"),
        ("[train]\nbatch_size = 'four'\n", r"config\.toml: train\.batch_size: expected int"),
        ("[train]\nlr = true\n", r"config\.toml: train\.lr: expected float"),
        ("[data]\nsources = 'a.mp4'\n", r"config\.toml: data\.sources: expected list"),
        ("[optimiser]\nlr = 1\n", r"config\.toml: optimiser: unknown table"),
        ("[train\n", r"config\.toml: not valid TOML"),
        ("[model]\nname = 'big'\n", r"config\.toml: model\.name must be 'fast' or 'paper'"),
        ("[data]\nsources = ['${NO_SUCH_VAR_X}/a.mp4']\n", "unset environment variable"),
        ("[smoke]\ntint = [0.1]\n", r"config\.toml: smoke\.tint: expected tuple"),
        ("[smoke]\ntint = [0.2, 0.1]\n", r"config\.toml: smoke: tint range must be"),
        ("[smoke]\ntint_probability = 1.5\n", r"config\.toml: smoke: tint_probability must"),
    ],
)
def test_bad_configs_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: config file not found"):
        load_config(tmp_path / "nope.toml")


def test_bad_architecture_fails_before_reading_data(tmp_path: Path) -> None:
    from engine.models import WeightsError

    raw = tiny_config(tmp_path / "missing.mp4", arch={"depth": 3})
    with pytest.raises(WeightsError, match="do not fit model 'fast'"):
        train_fast(config_from_dict(raw), tmp_path / "run")


def test_cli_train_reports_bad_config_in_one_line(tmp_path: Path, capsys) -> None:
    from desmoke_app.cli import main

    code = main(["train", "--config", str(write(tmp_path, "[train]\nbogus = 1\n"))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "train.bogus: unknown key" in err[0]
