"""Files written whole or not at all (engine.files)."""

from __future__ import annotations

import os

import pytest

from engine.files import replaced_on_success, write_atomically


def test_a_file_is_replaced_whole(tmp_path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    assert write_atomically(target, b"new") == target
    assert target.read_bytes() == b"new"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would have made it
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failure_leaves_the_old_file_and_no_temporary_one(tmp_path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), replaced_on_success(target) as temp:
        temp.write_text("half")
        raise KeyboardInterrupt  # Ctrl-C mid-write
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_two_files_written_together_stay_old_when_the_writing_fails(tmp_path) -> None:
    """As build-engine writes an engine and its sidecar: a failure before the renames
    (a full disk, Ctrl-C) leaves both old files and no temporary one."""
    engine, sidecar = tmp_path / "m.engine", tmp_path / "m.engine.json"
    engine.write_text("old engine")
    sidecar.write_text("old sidecar")
    with pytest.raises(OSError):
        with replaced_on_success(engine) as a, replaced_on_success(sidecar) as b:
            a.write_text("new engine")
            b.write_text("new sidecar")
            raise OSError("no space left on device")
    assert engine.read_text() == "old engine" and sidecar.read_text() == "old sidecar"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json"]
