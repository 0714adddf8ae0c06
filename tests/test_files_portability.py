"""engine.files and engine.stop_signals on Windows and macOS, simulated here: the platform
name, the OS's refusals and stat results are monkeypatched."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

import engine.stop_signals
from engine import files
from engine.files import (
    KeptAsideError,
    cache_file,
    file_identity,
    move_into_place,
    new_temporary,
    path_key,
    replace_together,
    same_file,
    write_atomically,
)
from engine.video import Mp4Writer, VideoWriteError
from engine.video.errors import describe


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The pauses engine.files makes between tries, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(files, "time", SimpleNamespace(sleep=slept.append))
    return slept


def _refuse_renames_onto(monkeypatch, target: Path, times: int | None = None) -> None:
    """os.replace onto `target` raises PermissionError (as Windows does while a player has
    it open), `times` times or always; other renames work."""
    real_replace = os.replace
    left = [times]

    def replace(src, dst) -> None:
        if Path(dst) == target and (left[0] is None or left[0] > 0):
            if left[0] is not None:
                left[0] -= 1
            raise PermissionError(13, "Access is denied", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def _finished_temporary(target: Path, data: bytes) -> Path:
    """A temporary file beside `target` holding `data`, ready for move_into_place."""
    temp = new_temporary(target)
    temp.write_bytes(data)
    return temp


# -- 1. a target Windows will not let go ----------------------------------------------
def test_a_rename_windows_refuses_for_a_moment_is_tried_again(tmp_path, monkeypatch, waits) -> None:
    """An antivirus scanning the new file holds it a moment: the rename goes through."""
    target = tmp_path / "clip_desmoked.mp4"
    target.write_bytes(b"old")
    monkeypatch.setattr(sys, "platform", "win32")
    _refuse_renames_onto(monkeypatch, target, times=2)
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert waits == list(files._RENAME_WAITS[:2])
    assert [p.name for p in tmp_path.iterdir()] == ["clip_desmoked.mp4"]


def test_a_target_held_open_on_windows_is_kept_aside_when_asked(
    tmp_path, monkeypatch, waits
) -> None:
    """A player shows the previous export: after about 1.5 s the new file is kept, visible,
    beside it ("NAME (2)" is the user's: not replaced), and the error names both."""
    target = tmp_path / "clip_desmoked.mp4"
    target.write_bytes(b"old")
    (tmp_path / "clip_desmoked (2).mp4").write_bytes(b"the user's")
    temp = _finished_temporary(target, b"new")
    monkeypatch.setattr(sys, "platform", "win32")
    _refuse_renames_onto(monkeypatch, target)
    with pytest.raises(KeptAsideError) as caught:
        move_into_place(temp, target, keep_aside=True)
    kept = tmp_path / "clip_desmoked (3).mp4"
    assert caught.value.filename == str(target)
    assert isinstance(caught.value, PermissionError)  # callers' `except OSError` catch it
    assert f"or read-only; the new file was kept as {kept}: close" in describe(caught.value)
    assert 1 <= sum(waits) <= 2
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {
        "clip_desmoked.mp4": b"old",
        "clip_desmoked (2).mp4": b"the user's",
        "clip_desmoked (3).mp4": b"new",
    }


def test_a_long_name_kept_aside_still_fits(tmp_path, monkeypatch, waits) -> None:
    target = tmp_path / ("a" * 251 + ".mp4")
    temp = _finished_temporary(target, b"new")
    monkeypatch.setattr(sys, "platform", "win32")
    _refuse_renames_onto(monkeypatch, target)
    with pytest.raises(KeptAsideError):
        move_into_place(temp, target, keep_aside=True)
    (kept,) = tmp_path.iterdir()
    assert kept.read_bytes() == b"new"
    assert kept.name.endswith(" (2).mp4") and len(kept.name) == 255


def test_a_file_written_whole_is_not_kept_aside_on_windows(tmp_path, monkeypatch, waits) -> None:
    """Keeping aside is the video writer's alone: a snapshot, a report or a checkpoint Windows
    will not save fails after the same retries, and no "NAME (2)" copy is left."""
    target = tmp_path / "snapshot.png"
    target.write_bytes(b"old")
    monkeypatch.setattr(sys, "platform", "win32")
    _refuse_renames_onto(monkeypatch, target)
    with pytest.raises(PermissionError) as caught:
        write_atomically(target, b"new")
    assert not isinstance(caught.value, KeptAsideError)
    assert 1 <= sum(waits) <= 2
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {"snapshot.png": b"old"}


def test_a_set_windows_will_not_replace_whole_is_put_back_with_no_copy_aside(
    tmp_path, monkeypatch, waits
) -> None:
    """Weights and their description change together or not at all: a "(2)" copy of the
    new description would pair with the old weights, so none is made."""
    weights, description = tmp_path / "fast.safetensors", tmp_path / "fast.json"
    weights.write_bytes(b"old weights")
    description.write_bytes(b"old json")
    monkeypatch.setattr(sys, "platform", "win32")
    _refuse_renames_onto(monkeypatch, description)
    with pytest.raises(PermissionError) as caught:
        replace_together({weights: b"new weights", description: b"new json"})
    assert not isinstance(caught.value, KeptAsideError)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {
        "fast.safetensors": b"old weights",
        "fast.json": b"old json",
    }


def test_a_cache_file_windows_will_not_replace_leaves_no_copies(
    tmp_path, monkeypatch, waits
) -> None:
    """An ONNX export in use by another run: the cache is not saved, and no "(N)" copy is
    left to pile up with every later run."""
    target = tmp_path / "fast.onnx"
    target.write_bytes(b"old")
    monkeypatch.setattr(sys, "platform", "win32")
    _refuse_renames_onto(monkeypatch, target)
    assert cache_file(target, b"new") is False
    assert cache_file(target, b"new") is False
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {"fast.onnx": b"old"}


def test_the_writer_says_where_it_kept_an_export_windows_would_not_save(
    tmp_path, monkeypatch, waits
) -> None:
    """The whole export used to be removed: it is kept, and the one-line error (what the
    CLI prints and the app shows) names the file in use and the file kept."""
    target = tmp_path / "clip_desmoked.mp4"
    target.write_bytes(b"the last export, open in a player")
    writer = Mp4Writer(target, fps=25, size=(64, 48))
    for value in (0, 128):
        writer.write_image(np.full((48, 64, 3), value, np.uint8))
    monkeypatch.setattr(sys, "platform", "win32")
    _refuse_renames_onto(monkeypatch, target)
    with pytest.raises(VideoWriteError) as caught:
        writer.close()
    kept = tmp_path / "clip_desmoked (2).mp4"
    message = str(caught.value)
    assert message.startswith(f"{target}: cannot save (in use by another program")
    assert f"or read-only; the new file was kept as {kept}" in message and "\n" not in message
    with av.open(str(kept)) as video:
        assert sum(1 for _ in video.decode(video=0)) == 2
    assert target.read_bytes() == b"the last export, open in a player"
    assert sorted(p.name for p in tmp_path.iterdir()) == [kept.name, target.name]


def test_a_refused_rename_elsewhere_fails_at_once_and_keeps_nothing(
    tmp_path, monkeypatch, waits
) -> None:
    """Linux and macOS rename onto an open file: a refusal there is for good."""
    target = tmp_path / "out.mp4"
    _refuse_renames_onto(monkeypatch, target)
    with pytest.raises(PermissionError) as caught:
        write_atomically(target, b"new")
    assert not isinstance(caught.value, KeptAsideError)
    assert waits == [] and list(tmp_path.iterdir()) == []


# -- 2. macOS ignores case --------------------------------------------------------------
def test_names_differing_in_case_or_unicode_form_are_one_file_on_macos(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert path_key(tmp_path / "Clip_desmoked.mp4") == path_key(tmp_path / "clip_desmoked.mp4")
    assert path_key(tmp_path / "caf\u00e9.mp4") == path_key(tmp_path / "cafe\u0301.mp4")
    assert file_identity(tmp_path / "A.mp4") == file_identity(tmp_path / "a.mp4")  # not written
    assert path_key(tmp_path / "a.mp4") != path_key(tmp_path / "b.mp4")


def test_names_differing_in_case_are_two_files_on_linux(tmp_path) -> None:
    assert path_key(tmp_path / "Clip.mp4") != path_key(tmp_path / "clip.mp4")


# -- 3. disks of no inode numbers -------------------------------------------------------
def test_files_on_a_disk_of_no_inode_numbers_are_told_apart_by_path(tmp_path, monkeypatch) -> None:
    """st_ino 0 for every file (a WebDAV drive on Windows): two inputs are not one file,
    and an existing output is not the source video; the one file still is itself."""
    (tmp_path / "a.mp4").write_bytes(b"a")
    (tmp_path / "b.mp4").write_bytes(b"b")
    real_stat = os.stat

    def no_inode(path, *args, **kwargs) -> os.stat_result:
        info = list(real_stat(path, *args, **kwargs))
        info[1] = 0  # st_ino
        return os.stat_result(info)

    monkeypatch.setattr(os, "stat", no_inode)
    monkeypatch.chdir(tmp_path)
    assert file_identity("a.mp4") != file_identity("b.mp4")
    assert not same_file("a.mp4", "b.mp4")
    assert same_file("a.mp4", tmp_path / "a.mp4") and same_file("./a.mp4", "a.mp4")
    assert file_identity("a.mp4") == file_identity(tmp_path / "a.mp4")


# -- 4. the platform's cache folder ------------------------------------------------------
@pytest.mark.parametrize(
    "platform, variables, expected",
    [
        ("linux", {}, "home/.cache/desmoke"),
        ("linux", {"XDG_CACHE_HOME": "{tmp}/xdg"}, "xdg/desmoke"),
        ("linux", {"XDG_CACHE_HOME": "relative"}, "home/.cache/desmoke"),
        ("win32", {"LOCALAPPDATA": "{tmp}/local"}, "local/desmoke/cache"),
        ("win32", {}, "home/AppData/Local/desmoke/cache"),
        ("darwin", {"XDG_CACHE_HOME": "{tmp}/xdg"}, "home/Library/Caches/desmoke"),
    ],
)
def test_the_cache_is_in_the_platforms_cache_folder(
    platform, variables, expected, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("DESMOKE_CACHE", "XDG_CACHE_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    monkeypatch.setattr(sys, "platform", platform)
    assert files.cache_root() == tmp_path / expected
    monkeypatch.setenv("DESMOKE_CACHE", str(tmp_path / "mine"))  # still first
    assert files.cache_root() == tmp_path / "mine"


# -- 5. Ctrl+Break ----------------------------------------------------------------------
def _stop_signals_module_with_sigbreak(monkeypatch, number: int):
    """A fresh copy of engine.stop_signals, imported where signal has SIGBREAK (Windows)."""
    monkeypatch.setattr(signal, "SIGBREAK", number, raising=False)
    spec = importlib.util.spec_from_file_location("stop_signals_copy", engine.stop_signals.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ctrl_break_stops_a_run_as_ctrl_c_does(monkeypatch) -> None:
    """SIGUSR1 stands in for Windows' SIGBREAK, which Linux has not."""
    module = _stop_signals_module_with_sigbreak(monkeypatch, signal.SIGUSR1)
    assert signal.SIGUSR1 in module.STOP_SIGNALS
    received: list[int] = []
    with module.first_stop_signal(received.append):
        os.kill(os.getpid(), signal.SIGUSR1)
    assert received == [signal.SIGUSR1]
