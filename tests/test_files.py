"""Files written whole or not at all (engine.files)."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from engine.files import (
    cache_file,
    desmoked_name,
    file_identity,
    path_key,
    replace_together,
    replaced_on_success,
    same_file,
    write_atomically,
)


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


def test_writers_to_one_target_each_get_a_temporary_file_of_their_own(tmp_path) -> None:
    """Two writers at once (the app recording and exporting to one name): neither sees the
    other's bytes; the file is one whole write, the last one finished."""
    target = tmp_path / "out.bin"
    with replaced_on_success(target) as first, replaced_on_success(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        assert first.name.startswith(".out.bin.") and second.name.startswith(".out.bin.")
        first.write_bytes(b"first")
        second.write_bytes(b"second")
    assert target.read_bytes() == b"first"  # the outer block ends last
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.parametrize("name", ["a" * 251 + ".bin", "é" * 125 + ".bin", "x" * 255])
def test_a_long_legal_name_gets_a_temporary_name_that_fits(tmp_path, name: str) -> None:
    target = tmp_path / name
    assert len(os.fsencode(name)) <= 255
    with replaced_on_success(target) as temp:
        assert len(os.fsencode(temp.name)) <= 255 and temp.name.startswith(f".{name[:8]}")
        temp.write_bytes(b"data")
    assert target.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_a_name_too_long_is_refused_naming_it_before_anything_is_written(tmp_path) -> None:
    target = tmp_path / ("a" * 252 + ".bin")  # 256 bytes: no file system allows it
    with pytest.raises(OSError) as caught, replaced_on_success(target):
        pytest.fail("the block must not run: its work could never be saved")
    assert caught.value.errno == errno.ENAMETOOLONG and caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_clean_up_does_not_hide_the_error(tmp_path, monkeypatch) -> None:
    """The temporary file cannot be removed (e.g. the folder became read-only): the error
    that stopped the writing is the one raised."""
    monkeypatch.setattr(Path, "unlink", _refused)
    with pytest.raises(KeyboardInterrupt), replaced_on_success(tmp_path / "a.bin"):
        raise KeyboardInterrupt


def _refused(self: Path, missing_ok: bool = False) -> None:
    raise PermissionError(13, "Permission denied", str(self))


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_files_replaced_together_are_written_created_and_removed(tmp_path) -> None:
    (tmp_path / "old.md").write_bytes(b"old report")
    (tmp_path / "sheet.png").write_bytes(b"old sheet")
    replace_together(
        {
            tmp_path / "old.md": b"new report",
            tmp_path / "new.json": b"{}",
            tmp_path / "sheet.png": None,  # this set has none: the old one goes
            tmp_path / "never.png": None,  # none before either: nothing to do
        }
    )
    assert _contents(tmp_path) == {"new.json": b"{}", "old.md": b"new report"}


def test_a_full_disk_while_writing_a_set_leaves_every_old_file(tmp_path, monkeypatch) -> None:
    """The second file did not fit: the first, already written to its temporary, is not
    renamed either; no temporary is left."""
    (tmp_path / "a.bin").write_bytes(b"old a")
    (tmp_path / "b.bin").write_bytes(b"old b")
    real_write = Path.write_bytes

    def full_at_b(path: Path, data: bytes) -> int:
        if data == b"new b":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(Path, "write_bytes", full_at_b)
    with pytest.raises(OSError, match="No space left"):
        replace_together({tmp_path / "a.bin": b"new a", tmp_path / "b.bin": b"new b"})
    assert _contents(tmp_path) == {"a.bin": b"old a", "b.bin": b"old b"}


def test_a_rename_refused_part_way_puts_the_renamed_files_back(tmp_path) -> None:
    (tmp_path / "report.md").mkdir()  # nothing can be renamed onto a folder
    (tmp_path / "report.md" / "keep.txt").write_text("mine")
    (tmp_path / "report.json").write_bytes(b"old json")
    with pytest.raises(OSError):
        replace_together(
            {
                tmp_path / "report.md": b"new md",  # renamed last, refused
                tmp_path / "report.json": b"new json",  # renamed: put back
                tmp_path / "sheet.png": b"new png",  # renamed, none before: removed
            }
        )
    assert _contents(tmp_path) == {"report.json": b"old json"}
    assert (tmp_path / "report.md" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]


def test_a_removal_refused_puts_the_renamed_files_back(tmp_path, monkeypatch) -> None:
    (tmp_path / "report.md").write_bytes(b"old md")
    (tmp_path / "sheet.png").write_bytes(b"old sheet")
    real_unlink = Path.unlink

    def refused_for_the_sheet(path: Path, missing_ok: bool = False) -> None:
        if path.name == "sheet.png":
            _refused(path)
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refused_for_the_sheet)
    with pytest.raises(PermissionError):
        replace_together({tmp_path / "report.md": b"new md", tmp_path / "sheet.png": None})
    assert _contents(tmp_path) == {"report.md": b"old md", "sheet.png": b"old sheet"}


def test_a_cache_file_is_saved_with_its_folders(tmp_path) -> None:
    target = tmp_path / "cache" / "onnx" / "net.onnx"
    assert cache_file(target, b"model") is True
    assert target.read_bytes() == b"model"
    assert [p.name for p in target.parent.iterdir()] == ["net.onnx"]


def test_a_cache_that_cannot_be_written_is_a_warning(tmp_path, caplog) -> None:
    """A file where the folder goes (as a read-only home or a full disk): the caller
    carries on with what it made."""
    (tmp_path / "cache").write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="engine.files"):
        assert cache_file(tmp_path / "cache" / "net.onnx", b"model") is False
    assert "cannot cache net.onnx" in caplog.text
    assert (tmp_path / "cache").read_text() == "not a folder"


def test_one_file_under_every_spelling(tmp_path, monkeypatch) -> None:
    """./a, the absolute path, a symbolic link and a hard link name one existing file."""
    real = tmp_path / "surgery.mp4"
    real.write_bytes(b"video")
    (tmp_path / "link.mp4").symlink_to(real)
    os.link(real, tmp_path / "hard.mp4")
    (tmp_path / "other.mp4").write_bytes(b"video")
    monkeypatch.chdir(tmp_path)
    for spelling in ["surgery.mp4", "./surgery.mp4", "link.mp4", "hard.mp4", str(real)]:
        assert same_file(spelling, real) and file_identity(spelling) == file_identity(real)
    assert not same_file("other.mp4", real)  # same bytes, another file
    assert file_identity("other.mp4") != file_identity(real)


def test_names_of_files_not_written_yet(tmp_path, monkeypatch) -> None:
    """Not there yet: one key per path (links in the folder resolved), and never the same
    file as an existing one; a name no file can have is a key, not an error."""
    (tmp_path / "real").mkdir()
    (tmp_path / "folder_link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    new = tmp_path / "real" / "out.mp4"
    assert file_identity("folder_link/out.mp4") == file_identity(new) == path_key("real/./out.mp4")
    assert file_identity(tmp_path / "real" / "b.mp4") != file_identity(new)
    assert not same_file(new, new)  # nothing there: no file to be the same
    (tmp_path / "exists.mp4").write_bytes(b"")
    assert not same_file(new, "exists.mp4") and not same_file("exists.mp4", new)
    assert path_key("bad\0name.mp4") == "bad\0name.mp4"
    assert not same_file("bad\0name.mp4", "exists.mp4")


def test_the_desmoked_name() -> None:
    assert desmoked_name("/videos/case 12.avi") == "case 12_desmoked.mp4"
    assert desmoked_name(Path("clip.mp4")) == "clip_desmoked.mp4"
