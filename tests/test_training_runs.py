"""The run folder of a training: one training writes it at a time, a new run does not write
over an earlier one's results, and stdout carries only the run's summary."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.frames import tissue, write_video
from tests.test_trainers import HUNG_RUN, StderrReader, tiny_config, write_toml


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trainclip")
    return write_video(folder / "tissue.mp4", [tissue(i, (96, 64)) for i in range(30)])


def train_cli(argv: list[str], capsys) -> tuple[int, str, list[str]]:
    """`desmoke train ARGV`: its exit code, stdout, and stderr's lines."""
    from desmoke_app.cli import main

    code = main(["train", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def wait_for_a_checkpoint(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        assert time.monotonic() < deadline, f"no {path} in {timeout} s"
        time.sleep(0.05)


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="pauses the first run with SIGSTOP")
def test_a_folder_a_training_is_writing_is_refused_to_another(
    clip: Path, tmp_path: Path, capsys
) -> None:
    """QA: two trainings into one -o both ran, each overwriting the other's files; a
    --resume into a folder a live run was writing trimmed its log under it."""
    out = tmp_path / "run"
    raw = tiny_config(clip, max_steps=100_000, val_every_steps=0, checkpoint_every_steps=1)
    config = write_toml(raw, tmp_path / "c.toml")
    command = [sys.executable, "-m", "training.trainer_fast", "--config", str(config)]
    first = subprocess.Popen(
        [*command, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_a_checkpoint(out / "checkpoint.pt")
        os.kill(first.pid, signal.SIGSTOP)  # still holding the folder, but writing nothing
        time.sleep(0.2)
        before = folder_contents(out)
        # The second one's data is missing: it must be refused before reading any.
        other = write_toml(tiny_config(tmp_path / "missing.mp4"), tmp_path / "other.toml")
        busy = f"desmoke: error: {out}: another training (pid {first.pid}) is writing this folder"
        for argv in (["--config", str(other)], ["--config", str(config), "--resume"]):
            code, stdout, err = train_cli([*argv, "--out", str(out)], capsys)
            assert (code, stdout, err) == (1, "", [busy])
        assert folder_contents(out) == before
        os.kill(first.pid, signal.SIGKILL)  # its lock file stays behind, but not its lock
        first.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            first.kill()
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    longer = write_toml(
        tiny_config(clip, max_steps=step + 1, val_every_steps=0), tmp_path / "c.toml"
    )
    code, stdout, err = train_cli(["--config", str(longer), "--out", str(out), "--resume"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["steps"] == step + 1
    assert not (out / ".lock").exists()  # (a .part file the kill cut short may stay)


def test_a_run_that_ends_leaves_the_folder_to_the_next(clip: Path, tmp_path: Path, capsys) -> None:
    """Refused (a config that does not continue the run), failed or done: the folder is
    free again at once, in the same process too."""
    out = tmp_path / "run"
    first = write_toml(tiny_config(clip, max_steps=1, val_every_steps=0), tmp_path / "a.toml")
    assert train_cli(["--config", str(first), "--out", str(out)], capsys)[0] == 0
    other = write_toml(tiny_config(clip, max_steps=2, lr=1e-3), tmp_path / "b.toml")
    code, _, err = train_cli(["--config", str(other), "--out", str(out), "--resume"], capsys)
    assert code == 1 and "differs in train.lr" in err[0]
    longer = write_toml(tiny_config(clip, max_steps=2, val_every_steps=0), tmp_path / "a.toml")
    assert train_cli(["--config", str(longer), "--out", str(out), "--resume"], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "best.json",
        "best.safetensors",
        "checkpoint.pt",
        "last.json",
        "last.safetensors",
        "metrics.jsonl",
    ]


def test_a_new_run_does_not_write_over_an_earlier_runs_results(
    clip: Path, tmp_path: Path, capsys
) -> None:
    """QA: a fresh run into a folder holding results but no checkpoint.pt replaced the
    better best weights and appended to metrics.jsonl."""
    out = tmp_path / "run"
    config = write_toml(tiny_config(clip, max_steps=2), tmp_path / "c.toml")
    assert train_cli(["--config", str(config), "--out", str(out)], capsys)[0] == 0
    (out / "checkpoint.pt").unlink()
    before = folder_contents(out)
    code, stdout, err = train_cli(["--config", str(config), "--out", str(out)], capsys)
    assert code == 1 and stdout == "" and len(err) == 1, err
    assert err[0].startswith(f"desmoke: error: {out}: holds an earlier run's results (")
    assert "best.safetensors" in err[0] and "metrics.jsonl" in err[0]
    assert err[0].endswith("use another --out, or delete the folder")
    assert folder_contents(out) == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")  # files of the user's own do not count
    assert train_cli(["--config", str(config), "--out", str(mine)], capsys)[0] == 0
    assert (mine / "notes.txt").read_text() == "keep"


def test_stdout_holds_only_the_summary(clip: Path, tmp_path: Path, capsys) -> None:
    """QA: `desmoke train ... | jq` failed: the validation lines went to stdout too."""
    config = write_toml(tiny_config(clip, max_steps=2, val_every_steps=1), tmp_path / "c.toml")
    code, stdout, err = train_cli(["--config", str(config), "--out", str(tmp_path / "r")], capsys)
    assert code == 0
    assert json.loads(stdout)["steps"] == 2  # the whole of stdout is one JSON document
    assert [line.split(":")[0] for line in err if line.startswith("step ")] == [
        "step 0",
        "step 1",
        "step 2",
    ]


def test_a_run_stopped_before_its_first_checkpoint_says_how_to_start_again(
    clip: Path, tmp_path: Path, capsys
) -> None:
    """A second Ctrl-C before any checkpoint leaves the step-0 results but nothing to
    resume: the advice is what a new run into that folder needs."""
    out = tmp_path / "run"
    config = write_toml(tiny_config(clip, max_steps=20), tmp_path / "c.toml")
    argv = ["train", "--config", str(config), "--out", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-c", HUNG_RUN, "step", "1", *argv],  # hangs in step 1
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    err = StderrReader(process)
    try:
        err.wait_for("HUNG")
        process.send_signal(signal.SIGINT)
        err.wait_for("SIGINT: stopping after the step under way", timeout=10)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 130
    finally:
        process.kill()
    advice = (
        "SIGINT again: stopped at once; no checkpoint written yet, so nothing to resume; "
        f"to start again, delete {out} or use another --out"
    )
    assert advice in err.to_the_end()
    assert not (out / "checkpoint.pt").exists() and (out / "metrics.jsonl").exists()
    code, _, refused = train_cli(argv[1:], capsys)
    assert code == 1 and "holds an earlier run's results" in refused[0]
    shutil.rmtree(out)
    assert train_cli(argv[1:], capsys)[0] == 0


def test_a_resume_removes_what_a_killed_save_left_half_written(
    clip: Path, tmp_path: Path, capsys
) -> None:
    """A run killed while saving leaves .NAME.RANDOM.part; the next run of the folder (which
    holds its lock, so no writer owns them) removes them; the user's own files stay."""
    out = tmp_path / "run"
    config = write_toml(tiny_config(clip, max_steps=1, val_every_steps=0), tmp_path / "a.toml")
    assert train_cli(["--config", str(config), "--out", str(out)], capsys)[0] == 0
    left = [out / ".checkpoint.pt.k2j4x9.part", out / ".best.safetensors.a8b7c6.part"]
    own = [out / ".notes.txt.1.part", out / "notes.txt"]
    for path in left + own:
        path.write_bytes(b"half")
    longer = write_toml(tiny_config(clip, max_steps=2, val_every_steps=0), tmp_path / "a.toml")
    assert train_cli(["--config", str(longer), "--out", str(out), "--resume"], capsys)[0] == 0
    assert not any(path.exists() for path in left)
    assert all(path.read_bytes() == b"half" for path in own)
