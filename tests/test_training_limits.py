"""Training inputs that may come from anyone: configs with absurd values are refused in one
line; a stop is honoured during a validation too; a checkpoint is read as plain data only,
and each of its fields checked, before a resume; weights record their data's paths as the
config wrote them, never this machine's folders."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import training.data as data
from engine.models import read_config
from tests.frames import tissue, write_video
from tests.test_trainers import tiny_config, write_toml
from training.checkpoint import CheckpointError, read_checkpoint
from training.config import (
    MAX_BATCH_SIZE,
    MAX_NDF,
    MAX_NUM_WORKERS,
    MAX_SCALE_JITTER,
    MAX_SEED,
    MAX_STORE_SHORT_SIDE,
    MAX_THREADS,
    MAX_VAL_FRAMES,
    ConfigError,
    config_from_dict,
    load_config,
    shareable_path,
)
from training.loop import ValidationStopped, falls_due, validation_items
from training.run import TrainingInterrupted, restore_optimiser
from training.trainer_fast import train_fast


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("limitsclip")
    return write_video(folder / "tissue.mp4", [tissue(i, (96, 64)) for i in range(30)])


# ----------------------------------------------------------------------------- config bounds

#: (table, key, the largest value taken): one more is refused.
BOUNDS = [
    ("data", "store_short_side", MAX_STORE_SHORT_SIDE),
    ("train", "batch_size", MAX_BATCH_SIZE),
    ("train", "val_frames", MAX_VAL_FRAMES),
    ("train", "threads", MAX_THREADS),
    ("train", "num_workers", MAX_NUM_WORKERS),
    ("train", "seed", MAX_SEED),
    ("paper", "ndf", MAX_NDF),
]


@pytest.mark.parametrize("table, key, high", BOUNDS)
def test_each_count_has_an_upper_bound_named_with_file_and_key(
    tmp_path: Path, table: str, key: str, high: int
) -> None:
    path = tmp_path / "big.toml"
    path.write_text(f"[{table}]\n{key} = {high}\n")
    assert getattr(getattr(load_config(path), table), key) == high
    path.write_text(f"[{table}]\n{key} = {high + 1}\n")
    with pytest.raises(
        ConfigError, match=rf"big\.toml: {table}\.{key} must be <= {high} \(.+\), got {high + 1}$"
    ):
        load_config(path)


def test_scale_jitter_has_an_upper_bound(tmp_path: Path) -> None:
    path = tmp_path / "zoom.toml"
    path.write_text(f"[train]\nscale_jitter = [0.8, {MAX_SCALE_JITTER}]\n")
    assert load_config(path).train.scale_jitter == [0.8, MAX_SCALE_JITTER]
    path.write_text("[train]\nscale_jitter = [0.8, 1e6]\n")
    with pytest.raises(ConfigError, match=r"zoom\.toml: train\.scale_jitter must be <= 4\.0"):
        load_config(path)


@pytest.mark.parametrize(
    "text, message",
    [  # The security QA's files: a hang at 6.9 GB, days of validation, tracebacks.
        ("[train]\nbatch_size = 1000000000\n", r"train\.batch_size must be <= 1024"),
        ("[train]\nval_frames = 1000000000\n", r"train\.val_frames must be <= 1000"),
        (
            "[data]\nstore_short_side = 1000000\n[train]\ncrop = 1000000\n",
            r"data\.store_short_side must be <= 2160",
        ),
        ("[train]\nthreads = 100000\n", r"train\.threads must be <= 256"),
        ("[train]\nnum_workers = 100000\n", r"train\.num_workers must be <= 64"),
        ("[paper]\nndf = 100000000\n", r"paper\.ndf must be <= 128"),
        (
            "[train]\nseed = 99999999999999999999999\n",
            r"train\.seed must be <= 18446744073709551615",
        ),
    ],
)
def test_absurd_values_are_one_line_in_the_cli(tmp_path: Path, capsys, text, message) -> None:
    from desmoke_app.cli import main

    path = tmp_path / "absurd.toml"
    path.write_text(text)
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "absurd.toml: " in err[0], err
    assert err[0].startswith("desmoke: error: ") and re.search(message, err[0]), err
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- stop in validation


class CountedSamples:
    """A validation set that counts the samples drawn from it."""

    def __init__(self, length: int) -> None:
        self.length, self.drawn = length, 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        self.drawn += 1
        return {"index": index}


def test_a_validation_checks_for_a_stop_before_each_sample() -> None:
    samples, stop = CountedSamples(1000), []
    items = validation_items(samples, lambda: bool(stop))
    assert [next(items)["index"] for _ in range(3)] == [0, 1, 2]
    stop.append(signal.SIGTERM)  # as the signal handler records it
    with pytest.raises(ValidationStopped):
        next(items)
    assert samples.drawn == 3  # none drawn after the stop: it waits for one sample at most
    assert [item["index"] for item in validation_items(CountedSamples(4), lambda: False)] == [
        0,
        1,
        2,
        3,
    ]


def signal_at_validation_sample(monkeypatch, at: int, signum: int = signal.SIGTERM) -> list:
    """Send this process `signum` as the `at`-th validation sample is drawn (from 1); the
    list returned counts the samples drawn."""
    drawn: list[int] = []
    real = data.SmokeDataset.__getitem__

    def item(self, index):
        if not self.train:
            drawn.append(index)
            if len(drawn) == at:
                os.kill(os.getpid(), signum)  # handled before os.kill returns
        return real(self, index)

    monkeypatch.setattr(data.SmokeDataset, "__getitem__", item)
    return drawn


def val_steps(out: Path) -> list[int]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if "val" in r]


def test_a_stop_during_the_baseline_validation_is_honoured_at_once(
    clip: Path, tmp_path: Path, monkeypatch
) -> None:
    """QA: val_frames 1e9 made the step-0 validation endless, and SIGTERM waited for it (17
    minutes, until a second signal). The stop now comes before the next sample: a
    checkpoint at step 0, and --resume validates the baseline again."""
    raw = tiny_config(clip, max_steps=2, val_frames=20, val_every_steps=0)
    config = config_from_dict(raw, tmp_path / "c.toml")
    out = tmp_path / "run"
    drawn = signal_at_validation_sample(monkeypatch, at=2)
    with pytest.raises(TrainingInterrupted) as stop:
        train_fast(config, out)
    assert stop.value.signum == signal.SIGTERM and stop.value.step == 0
    assert len(drawn) == 2  # of 20: not one more once the stop came
    state = read_checkpoint(out / "checkpoint.pt", config)
    assert state["step"] == 0 and state["val_step"] is None
    assert val_steps(out) == [] and not (out / "best.safetensors").exists()
    monkeypatch.undo()
    assert train_fast(config, out, resume=True)["steps"] == 2
    assert val_steps(out) == [0, 2]


@pytest.mark.parametrize(
    ("max_steps", "val_every_steps"),
    [
        (2, 0),  # the budget used: the last validation is cut short
        (4, 2),  # a validation falling due mid-run is cut short
    ],
)
def test_a_validation_a_stop_cuts_short_is_done_on_resume(
    clip: Path, tmp_path: Path, monkeypatch, max_steps: int, val_every_steps: int
) -> None:
    """A stop during step 2's validation: a checkpoint saying it is due, no
    last.safetensors scored with an earlier step's numbers; --resume validates step 2
    first (QA: mid-run, the resumed run went on training, step 2's scores missing) and
    finishes the run."""
    raw = tiny_config(clip, max_steps=max_steps, val_every_steps=val_every_steps)
    config = config_from_dict(raw, tmp_path / "c.toml")
    out = tmp_path / "run"
    drawn = signal_at_validation_sample(monkeypatch, at=3)  # the baseline's 2, then step 2's
    with pytest.raises(TrainingInterrupted) as stop:
        train_fast(config, out)
    assert stop.value.step == 2 and len(drawn) == 3
    assert val_steps(out) == [0] and not (out / "last.safetensors").exists()
    state = read_checkpoint(out / "checkpoint.pt", config)
    assert state["step"] == 2 and state["val_step"] == 0 and state["val_due"] is True
    monkeypatch.undo()
    assert train_fast(config, out, resume=True)["steps"] == max_steps
    assert val_steps(out) == sorted({0, 2, max_steps})
    assert read_checkpoint(out / "checkpoint.pt", config)["val_due"] is False
    assert read_config(out / "last.safetensors")["metrics"]["val"]["step"] == max_steps


#: `desmoke train` whose second training loss raises MemoryError (as batch_size 1e9 did).
FAILING_RUN = """
import sys
import training.trainer_fast as trainer
from desmoke_app.cli import main

calls = []

def loss(*args, real=trainer.fast_loss, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        raise MemoryError
    return real(*args, **kwargs)

trainer.fast_loss = loss
sys.exit(main(sys.argv[1:]))
"""


def test_an_error_in_training_ends_the_process_with_its_loader_workers(
    clip: Path, tmp_path: Path
) -> None:
    """QA: batch_size 1e9 raised MemoryError, then the process hung until killed: the
    error's traceback kept the loader's workers, which ignore SIGTERM, alive past
    multiprocessing's exit handler, which waited for them for ever."""
    raw = tiny_config(clip, max_steps=6, val_every_steps=0, num_workers=1)
    config = write_toml(raw, tmp_path / "c.toml")
    argv = ["train", "--config", str(config), "--out", str(tmp_path / "run")]
    process = subprocess.Popen(
        [sys.executable, "-c", FAILING_RUN, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a failed test ends its worker too
    )
    try:
        _, err = process.communicate(timeout=60)  # hung for ever before
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 1 and err.rstrip().endswith("MemoryError"), err


# ----------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def trained(clip: Path, tmp_path_factory) -> tuple[dict, object]:
    """A real checkpoint's state (a tiny run's, 1 step) and its config."""
    folder = tmp_path_factory.mktemp("ckrun")
    config = config_from_dict(tiny_config(clip, max_steps=1, val_every_steps=0), folder / "c.toml")
    train_fast(config, folder / "run")
    return torch.load(folder / "run" / "checkpoint.pt", weights_only=True), config


def crafted(tmp_path: Path, state: dict) -> Path:
    path = tmp_path / "checkpoint.pt"
    torch.save(state, path)
    return path


class RunsCode:
    """What a crafted pickle holds: loaded unsafely, it would run a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_plain_pickle_is_refused_without_torchs_warning(tmp_path: Path) -> None:
    """QA: a checkpoint.pt written by pickle.dump got torch's "Detected pickle protocol 4"
    UserWarning printed before desmoke's own one-line refusal."""
    import pickle
    import warnings

    from training.checkpoint import CheckpointError, _plain_data

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps({"step": 1}, protocol=4))
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="not a checkpoint desmoke wrote"):
            _plain_data(path)
    assert [str(warning.message) for warning in escaped] == []


def test_a_checkpoint_holding_code_is_refused_in_one_line_without_torchs_advice(
    clip: Path, tmp_path: Path, capsys
) -> None:
    from desmoke_app.cli import main

    out = tmp_path / "run"
    out.mkdir()
    marker = tmp_path / "PWNED"
    torch.save({"model_name": "fast", "step": 1, "x": RunsCode(marker)}, out / "checkpoint.pt")
    config = write_toml(tiny_config(clip, max_steps=2), tmp_path / "c.toml")
    assert main(["train", "--config", str(config), "--out", str(out), "--resume"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "checkpoint.pt: not a checkpoint desmoke wrote, or damaged" in err[0]
    assert "will not load it any other way" in err[0]
    assert "weights_only" not in err[0] and "succeed" not in err[0]
    assert not marker.exists()


@pytest.mark.parametrize(
    "field, value, message",
    [  # The security QA's crafted checkpoints, and their neighbours.
        ("step", "abc", r"its step must be a whole number, 0 to 1000000000000, got 'abc'"),
        ("step", -5, r"its step must be a whole number.*got -5"),
        ("step", 10**30, r"its step must be a whole number.*got 1000000000000000000000000000000"),
        ("step", True, r"its step must be a whole number"),
        ("best", [1, 2], r"its best must be validation scores, got \[1, 2\]"),
        ("best", {"psnr": "high", "step": 1}, r"its best must be validation scores"),
        ("last_val", {"step": 1}, r"its last_val must be validation scores"),  # no psnr
        ("val_step", 7, r"it was validated at step 7, after its own step 1"),
        ("val_step", "1", r"its val_step must be none or a step"),
        ("val_due", 1, r"its val_due must be true or false, got 1"),
        ("elapsed", math.nan, r"its elapsed must be a finite number of seconds >= 0, got nan"),
        ("elapsed", -3.0, r"its elapsed must be a finite number"),
        ("elapsed", 10**400, r"its elapsed must be a finite number"),
        ("config", {"train": "x"}, r"its config must be a table of tables"),
        ("config_file", 3, r"its config_file must be text"),
        ("module_net", [1, 2], r"its module_net must be a network's state"),
        ("module_net", {"w": 1.0}, r"its module_net must be a network's state"),
        ("optim_net", {"state": {}, "param_groups": "x"}, r"its optim_net must be an optimiser"),
        ("optim_net", "x", r"its optim_net must be an optimiser's state"),
    ],
)
def test_each_checkpoint_field_is_checked_at_load(
    trained, tmp_path: Path, field: str, value, message: str
) -> None:
    state, config = trained
    path = crafted(tmp_path, {**state, field: value})
    with pytest.raises(
        CheckpointError,
        match=r"checkpoint\.pt: not a checkpoint desmoke wrote, or damaged: " + message,
    ):
        read_checkpoint(path, config)


def test_a_genuine_checkpoint_passes_the_checks(trained, tmp_path: Path) -> None:
    state, config = trained
    assert read_checkpoint(crafted(tmp_path, state), config)["step"] == 1
    older = {
        k: v for k, v in state.items() if k not in ("config", "val_step", "val_due", "last_val")
    }
    older["best"] = {"psnr": 20.0}  # before scores recorded their step
    assert read_checkpoint(crafted(tmp_path, older), config)["step"] == 1


def with_nan(state: dict, key: str) -> dict:
    state = copy.deepcopy(state)
    if key == "module_net":
        name = next(iter(state[key]))
        state[key][name] = state[key][name].clone().fill_(math.nan)
    elif key == "optim_net":
        moments = next(iter(state[key]["state"].values()))
        moments["exp_avg"] = moments["exp_avg"].clone().fill_(math.inf)
    else:
        state[key] = {**state[key], "psnr": math.nan}
    return state


@pytest.mark.parametrize("key", ["module_net", "optim_net", "last_val", "best"])
def test_non_finite_weights_or_scores_are_refused_at_resume(trained, tmp_path: Path, key) -> None:
    """QA: a checkpoint with NaN weights resumed silently, scored NaN, and wrote a
    last.safetensors that desmoke refuses to load."""
    state, config = trained
    path = crafted(tmp_path, with_nan(state, key))
    with pytest.raises(
        CheckpointError, match=rf"{key} holds values that are not finite .*diverged"
    ):
        read_checkpoint(path, config)


def adam_after_a_step() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, eps=1e-8)
    net(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return net, optimizer


def test_an_optimiser_state_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    _, trained_optimizer = adam_after_a_step()
    state = trained_optimizer.state_dict()
    wrong_shape = copy.deepcopy(state)
    wrong_shape["state"][0]["exp_avg"] = torch.zeros(5)
    negative_step = copy.deepcopy(state)
    negative_step["state"][0]["step"] = torch.tensor(-4.0)
    no_params = copy.deepcopy(state)
    no_params["param_groups"][0]["params"] = "x"
    for bad, reason in (
        (wrong_shape, r"parameter 0's exp_avg has shape \(5,\), the parameter \(2, 3\)"),
        (negative_step, r"parameter 0's step is -4\.0, not >= 0"),
        (no_params, r".+"),  # torch's own words
    ):
        _, optimizer = adam_after_a_step()
        with pytest.raises(
            CheckpointError, match=rf"ck\.pt: optimiser state does not fit \({reason}\)$"
        ):
            restore_optimiser(tmp_path / "ck.pt", optimizer, bad)


def test_an_optimisers_settings_stay_the_configs(tmp_path: Path) -> None:
    """Adam's moments come from the checkpoint, its settings from the config (which a
    resume shares with the run): a crafted eps or betas cannot spoil the training."""
    _, trained_optimizer = adam_after_a_step()
    state = copy.deepcopy(trained_optimizer.state_dict())
    state["param_groups"][0].update(eps=-1.0, betas=(5.0, "x"), weight_decay=1e9)
    _, optimizer = adam_after_a_step()
    restore_optimiser(tmp_path / "ck.pt", optimizer, state)
    group = optimizer.param_groups[0]
    assert group["eps"] == 1e-8 and group["betas"] == (0.9, 0.999) and group["weight_decay"] == 1e-2
    assert torch.equal(
        optimizer.state[group["params"][0]]["exp_avg"],
        trained_optimizer.state_dict()["state"][0]["exp_avg"],
    )


# ----------------------------------------------------------------------------- provenance


@pytest.mark.parametrize(
    "written, stored",
    [
        ("${DESMOKE_DATA}/clear/endo_720p.mp4", "${DESMOKE_DATA}/clear/endo_720p.mp4"),
        ("clips/a.mp4", "clips/a.mp4"),
        ("../data/b.png", "../data/b.png"),
        ("/home/dr/patient_smith/c.mp4", "c.mp4"),
        ("~/patient_smith/d.mp4", "d.mp4"),
        ("C:\\Users\\dr\\patient_smith\\e.mp4", "e.mp4"),
        ("D:/scans/f.mp4", "f.mp4"),
        ("\\\\server\\share\\g.mp4", "g.mp4"),
        ("", ""),
    ],
)
def test_shareable_paths_keep_no_folder_of_this_machine(written: str, stored: str) -> None:
    assert shareable_path(written) == stored


def test_weights_record_the_data_as_the_config_wrote_it(
    clip: Path, tmp_path: Path, monkeypatch
) -> None:
    """QA: the shipped weights carry /work/shared/data/...: a patient's name in a folder
    would travel with them. Sources written with a variable, relative to the config and
    absolute are stored as written, as written and by name; nothing of this machine's
    folders is left in the weights (nor in their .json, nor the run's log)."""
    machine = tmp_path / "home" / "patient_smith"
    (machine / "data" / "clips").mkdir(parents=True)
    (machine / "configs").mkdir()
    for name in ("a.mp4", "clips/b.mp4"):
        (machine / "data" / name).write_bytes(clip.read_bytes())
    (machine / "configs" / "c.mp4").write_bytes(clip.read_bytes())
    monkeypatch.setenv("SHARED_DATA", str(machine / "data"))
    raw = tiny_config(clip, max_steps=1, val_every_steps=0)
    raw["data"]["sources"] = ["${SHARED_DATA}/a.mp4", "${SHARED_DATA}/clips", "c.mp4", str(clip)]
    config = load_config(write_toml(raw, machine / "configs" / "mine.toml"))
    out = tmp_path / "run"
    train_fast(config, out)
    training = read_config(out / "last.safetensors")["training"]
    assert training["config"]["data"]["sources"] == [
        "${SHARED_DATA}/a.mp4",
        "${SHARED_DATA}/clips",
        "c.mp4",
        "tissue.mp4",
    ]
    assert [s["path"] for s in training["data"]["sources"]] == [
        "${SHARED_DATA}/a.mp4",
        "${SHARED_DATA}/clips/b.mp4",
        "c.mp4",
        "tissue.mp4",
    ]
    assert training["config_file"] == "mine.toml"
    assert "paths_as_written" not in training["config"]
    for name in ("last.safetensors", "last.json", "best.json", "metrics.jsonl"):
        text = (out / name).read_bytes().decode("utf-8", "replace")
        assert str(tmp_path) not in text and str(clip.parent) not in text, name
        assert "patient_smith" not in text, name


def test_zero_turns_a_validation_or_checkpoint_trigger_off() -> None:
    """QA: checkpoint_every_minutes = 0 checkpointed after every step (val_every_minutes
    = 0 validated after each), while val_every_steps = 0 meant off: 0 is off for all."""
    assert not falls_due(step=7, every_steps=0, elapsed_s=1e6, every_minutes=0)
    assert falls_due(step=7, every_steps=0, elapsed_s=300, every_minutes=5)
    assert not falls_due(step=7, every_steps=0, elapsed_s=299, every_minutes=5)
    assert falls_due(step=8, every_steps=4, elapsed_s=0, every_minutes=0)
    assert not falls_due(step=7, every_steps=4, elapsed_s=0, every_minutes=5)


def test_a_run_with_every_trigger_off_validates_and_checkpoints_at_its_end(
    clip: Path, tmp_path: Path
) -> None:

    raw = tiny_config(
        clip, max_steps=3, val_every_steps=0, val_every_minutes=0, checkpoint_every_minutes=0
    )
    config = load_config(write_toml(raw, tmp_path / "c.toml"))
    train_fast(config, tmp_path / "run")
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    validated = [entry["step"] for entry in map(json.loads, lines) if "val" in entry]
    assert validated == [0, 3]  # the untrained baseline and the end, none in between
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt", config)["step"] == 3


def test_a_run_with_no_validation_frames_says_so(tmp_path: Path, capsys) -> None:
    """QA: a clip too short to split (under 3 blocks) was validated on its training frames
    without a word: its validation figures and best weights flattered the model."""
    short = write_video(tmp_path / "short.mp4", [tissue(i, (96, 64)) for i in range(8)])
    raw = tiny_config(short, max_steps=1)  # 8 frames: 2 blocks of 5, all for training
    config = load_config(write_toml(raw, tmp_path / "c.toml"))
    train_fast(config, tmp_path / "run")
    err = capsys.readouterr().err
    assert "warning: no frames are held out for validation (a source of 10 frames or fewer" in err
    assert "validation scores training frames" in err
