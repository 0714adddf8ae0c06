"""Training into a run folder that cannot be written: a full disk, a read-only folder, a file
or a name too long as --out. One line naming the file and the reason, no traceback, the last
checkpoint kept and said, and --resume working once there is room.

A full disk is a file size limit (RLIMIT_FSIZE, no root needed): writes past it fail with
EFBIG, as past a full disk with ENOSPC, and each library reports it its own way."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from tests.frames import tissue, write_video
from tests.test_trainers import tiny_config, write_toml
from training.checkpoint import RunWriteError, read_checkpoint, save_checkpoint
from training.config import config_from_dict, load_config
from training.run import LOG_NAME, Run

resource = pytest.importorskip("resource", reason="file size limits are POSIX only")

#: Between the tiny network's weights (~270 kB) and its checkpoint (~840 kB with Adam).
LIMIT_BELOW_CHECKPOINT = 500_000


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trainclip")
    return write_video(folder / "tissue.mp4", [tissue(i, (96, 64)) for i in range(30)])


@contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """Writes past `size` bytes fail (EFBIG) within the block. Python ignores SIGXFSZ, which
    would otherwise kill the process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def limit_in_child() -> None:
    resource.setrlimit(
        resource.RLIMIT_FSIZE,
        (LIMIT_BELOW_CHECKPOINT, resource.getrlimit(resource.RLIMIT_FSIZE)[1]),
    )


def train_cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    from desmoke_app.cli import main

    code = main(["train", *argv])
    return code, capsys.readouterr().err.strip().splitlines()


def test_save_checkpoint_names_the_file_and_the_reason(tmp_path: Path) -> None:
    """torch.save reported a full disk as "RuntimeError: unexpected pos N vs M"."""
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    with file_size_limit(10_000), pytest.raises(RunWriteError) as failed:
        save_checkpoint(path, {"step": 2, "x": torch.zeros(100_000)})
    assert str(failed.value) == f"{path}: cannot write (File too large)"
    assert torch.load(path, weights_only=True) == {"step": 1}  # the old one, whole
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left


def test_the_metrics_log_never_ends_in_half_a_record(tmp_path: Path) -> None:
    config = config_from_dict(tiny_config(tmp_path / "unused.mp4"))
    run = Run(config, tmp_path, torch.device("cpu"))
    run.log({"step": 1})
    before = (tmp_path / LOG_NAME).read_bytes()
    with file_size_limit(len(before) + 10), pytest.raises(RunWriteError) as failed:
        run.log({"step": 2, "train": {"loss": 0.123456789}})  # 10 bytes fit, the rest not
    assert str(failed.value) == f"{tmp_path / LOG_NAME}: cannot write (File too large)"
    assert (tmp_path / LOG_NAME).read_bytes() == before


def test_a_full_disk_is_one_line_and_resume_continues_from_the_last_checkpoint(
    clip: Path,
    tmp_path: Path,
    capsys,
) -> None:
    out = tmp_path / "run"
    argv = ["--config", str(write_toml(tiny_config(clip), tmp_path / "c.toml")), "--out", str(out)]
    assert train_cli(argv, capsys)[0] == 0  # 4 steps, the checkpoint at step 4
    longer = ["--config", str(write_toml(tiny_config(clip, max_steps=6), tmp_path / "c.toml"))]
    resume = [*longer, "--out", str(out), "--resume"]
    with file_size_limit(LIMIT_BELOW_CHECKPOINT):  # weights fit, the step-6 checkpoint not
        code, err = train_cli(resume, capsys)
    checkpoint = out / "checkpoint.pt"
    assert code == 1 and not any("Traceback" in line for line in err)
    assert err[-2] == f"checkpoint at step 4 ({checkpoint}); --resume continues from there"
    assert err[-1] == f"desmoke: error: {checkpoint}: cannot write (File too large)"
    assert read_checkpoint(checkpoint, load_config(tmp_path / "c.toml"))["step"] == 4
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
    assert train_cli(resume, capsys)[0] == 0
    records = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    assert [r["step"] for r in records if "train" in r] == [1, 2, 3, 4, 5, 6]


def test_weights_that_cannot_be_written_are_named(clip: Path, tmp_path: Path, capsys) -> None:
    """safetensors reported it as "SafetensorError: ... I/O error: ... (os error 27)"."""
    out = tmp_path / "run"
    argv = ["--config", str(write_toml(tiny_config(clip), tmp_path / "c.toml")), "--out", str(out)]
    with file_size_limit(100_000):
        code, err = train_cli(argv, capsys)
    assert code == 1 and not any("Traceback" in line for line in err)
    assert err[-1] == f"desmoke: error: {out / 'best.safetensors'}: cannot write (File too large)"
    assert "--resume" not in "\n".join(err)  # no checkpoint yet: nothing to resume from


def read_only(*args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system")


@pytest.mark.parametrize("case", ["a file", "name too long", "read-only"])
def test_an_unwritable_out_fails_before_any_data_is_read(
    case: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    import training.loop as loop

    def no_data(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(loop, "load_frames", no_data)
    out, reason = tmp_path / "run", "a file, not a folder"
    if case == "a file":
        out.write_text("notes")
    elif case == "name too long":
        out, reason = tmp_path / ("r" * 300), "File name too long"
    else:  # as root, a read-only mode does not stop writes: the probe meets the error
        monkeypatch.setattr(tempfile, "mkstemp", read_only)
        reason = "Read-only file system"
    config = write_toml(tiny_config(tmp_path / "clip.mp4"), tmp_path / "c.toml")
    code, err = train_cli(["--config", str(config), "--out", str(out)], capsys)
    assert code == 1 and err == [f"desmoke: error: {out}: cannot write ({reason})"]
    if case == "a file":
        assert out.read_text() == "notes"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_ranks(command: list[str], world_size: int) -> list[subprocess.Popen]:
    """The ranks of `command` as torchrun starts them (its environment variables), each
    with its own exit code and stderr to check."""
    shared = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    shared["WORLD_SIZE"] = str(world_size)
    return [
        subprocess.Popen(
            command,
            env={**os.environ, **shared, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=limit_in_child,
        )
        for rank in range(world_size)
    ]


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available in this torch build",
)
@pytest.mark.parametrize("when, every_minutes", [("mid-run", 0.0), ("at the end", 5.0)])
def test_with_ddp_a_failed_write_stops_every_rank_at_once(
    when: str, every_minutes: float, clip: Path, tmp_path: Path
) -> None:
    """Rank 0 writes; the other ranks stop at the same step and leave the process group
    with it. Before, rank 0 left alone and rank 1 crashed on the lost peer ("Connection
    closed by peer") with a traceback, or waited in a collective until torchrun killed it."""
    out = tmp_path / "run"
    raw = tiny_config(clip, threads=1, checkpoint_every_minutes=every_minutes)
    command = [sys.executable, "-m", "training.trainer_fast"]
    command += ["--config", str(write_toml(raw, tmp_path / "c.toml")), "--out", str(out)]
    ranks = start_ranks(command, 2)
    try:
        errors = [rank.communicate(timeout=120)[1] for rank in ranks]
    finally:
        for rank in ranks:
            rank.kill()
    expected = f"desmoke: error: {out / 'checkpoint.pt'}: cannot write (File too large)"
    assert ranks[0].returncode == 1 and errors[0].splitlines()[-1] == expected, errors[0]
    assert ranks[1].returncode == 0 and "Error" not in errors[1], errors[1]
    assert "Traceback" not in errors[0] + errors[1]
    assert not (out / "checkpoint.pt").exists()
