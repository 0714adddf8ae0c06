"""Files written whole or not at all: a temporary file beside the target, renamed onto it.

One way for every file the project delivers (weights, ONNX exports, checkpoints, compiled
kernels, TensorRT engines, evaluation reports, snapshots, videos): new_temporary, then
move_into_place on success or discard on failure. replaced_on_success wraps the three for
a file written in one block; the video writer (engine.video.writer), which encodes over
many calls, uses them directly. replace_together writes a set of files that belong together
(weights and their description, an engine and its sidecar, an evaluation's reports) so
that all change or none does. cache_file saves what can be made again (ONNX exports,
compiled kernels), warning instead of failing where the cache cannot be written. Where
Windows will not let a finished file replace its target (another program has it open),
move_into_place tries again for a while; asked to (the video writer: an export is long
work), it then keeps the file under a free name beside it and says where (KeptAsideError).

Also the one answer to "do these names mean one file?" (file_identity, same_file,
path_key), a file's sha256 (file_sha256), why a path is not a file to read
(not_a_file_reason), where caches go (cache_root), whether a cache folder may be trusted
(usable_cache_folder) and the default name of a desmoked video (desmoked_name).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import sys
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

#: The longest file name, in bytes, where the file system does not say (Windows has no
#: pathconf; ext4, XFS, btrfs, APFS and NTFS all allow 255).
NAME_MAX = 255
#: Characters mkstemp adds to make a name unique (tempfile's random part).
_RANDOM_CHARS = 8

#: What file_identity gives: an existing file's (device, inode), else its path_key.
FileKey = tuple[int, int] | str

#: Seconds between tries of a rename Windows refused: a player showing the old file, or an
#: antivirus scanning the new one, holds it a moment; about 1.5 s in all.
_RENAME_WAITS = (0.1, 0.2, 0.4, 0.8)


class KeptAsideError(PermissionError):
    """`filename` could not be replaced (Windows: another program has it open, or it is
    read-only), so the finished file was kept beside it; strerror says so, naming it."""

    def __init__(self, path: Path, kept: Path) -> None:
        reason = (
            f"in use by another program, such as a player showing it, or read-only; the new "
            f"file was kept as {kept}: close that program or clear read-only, then rename it"
        )
        super().__init__(errno.EACCES, reason, str(path))


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once, at import (os.umask can only be read by setting it).
_UMASK = _process_umask()


def _name_max(folder: Path) -> int:
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        return NAME_MAX
    return limit if limit > 0 else NAME_MAX


def name_too_long(path: str | Path) -> bool:
    """Whether `path`'s file name is longer than its folder's file system allows (no file
    can have it: Python 3.11's Path.exists and is_dir raise on it rather than say False)."""
    path = Path(path)
    return len(os.fsencode(path.name)) > _name_max(path.parent)


def _fit(name: str, limit: int) -> str:
    """`name` cut to at most `limit` bytes, on a character boundary."""
    while len(os.fsencode(name)) > limit:
        name = name[:-1]
    return name


def new_temporary(path: str | Path, suffix: str = ".part") -> Path:
    """A new empty file beside `path` (same folder, so the rename is atomic), hidden and
    recognisable (".NAME.RANDOM" + suffix), of this call's own: mkstemp's random part keeps
    concurrent writers to one target apart. NAME is shortened as far as needed for the
    whole to fit the file system's limit, so any legal `path` gets one. A `path` whose own
    name is too long raises OSError naming it, before anything is written: it could never
    be renamed onto. The folder must exist."""
    path = Path(path)
    if name_too_long(path):
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(path))
    limit = _name_max(path.parent)
    room = limit - len(os.fsencode(suffix)) - _RANDOM_CHARS - 2  # the two dots
    fd, name = tempfile.mkstemp(prefix=f".{_fit(path.name, room)}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def move_into_place(temp: Path, path: str | Path, keep_aside: bool = False) -> None:
    """Rename a complete `temp` (from new_temporary) onto `path`, atomically. Windows
    refuses while another program has `path` open (a player showing the last export) or
    an antivirus scans `temp`, and for good where `path` is read-only: tried again for a while, then PermissionError, `temp` left
    to the caller to discard. With `keep_aside` (a file that was long work to make, alone:
    never one of a set that must change together, nor a cache that would pile up copies),
    `temp` is instead kept as a free "NAME (2).SUFFIX" beside `path` and KeptAsideError
    says so (the work is not lost)."""
    temp.chmod(0o666 & ~_UMASK)  # mkstemp makes it owner-only: as open() would make it
    if sys.platform != "win32":  # elsewhere a refusal is for good: no waiting
        os.replace(temp, path)
        return
    path = Path(path)
    try:
        _replace_when_free(temp, path)
    except PermissionError as refused:
        if not keep_aside:
            raise
        try:
            kept = _keep_aside(temp, path)
        except OSError:
            raise refused from None
        raise KeptAsideError(path, kept) from refused


def _replace_when_free(temp: Path, path: Path) -> None:
    """os.replace, tried again after each of _RENAME_WAITS while it raises PermissionError."""
    for wait in (*_RENAME_WAITS, None):
        try:
            os.replace(temp, path)
            return
        except PermissionError:
            if wait is None:
                raise
            time.sleep(wait)


def _keep_aside(temp: Path, path: Path) -> Path:
    """Rename `temp` to the first free "NAME (N).SUFFIX" beside `path` (N from 2), visible
    rather than hidden as a temporary file is; returns that path. The name is claimed first
    (created only where no file is): no other file is replaced."""
    number = 1
    while True:
        number += 1
        candidate = _numbered(path, number)
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            continue
        try:
            _replace_when_free(temp, candidate)  # the antivirus may be scanning either
        except OSError:
            discard(candidate)
            raise
        return candidate


def _numbered(path: Path, number: int) -> Path:
    """`path` as "NAME (number).SUFFIX", NAME shortened to fit the file system's limit."""
    tail = f" ({number}){path.suffix}"
    room = _name_max(path.parent) - len(os.fsencode(tail))
    return path.with_name(_fit(path.stem, room) + tail)


def discard(temp: Path) -> None:
    """Remove `temp` after a failure; an error here is not raised, so that it cannot hide
    the failure that is being handled (a stray hidden file is the lesser harm)."""
    try:
        temp.unlink(missing_ok=True)
    except OSError as error:
        log.debug("cannot remove %s: %s", temp, error)


@contextmanager
def replaced_on_success(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to (see new_temporary). Renamed onto `path`
    when the block ends; removed when it raises (Ctrl-C included): `path` never holds a
    partial file, and an existing one is kept. The folder must exist."""
    temp = new_temporary(path)
    try:
        yield temp
        move_into_place(temp, path)
    except BaseException:
        discard(temp)
        raise


def write_atomically(path: str | Path, data: bytes) -> Path:
    """`data` into `path`, whole or not at all (see replaced_on_success)."""
    with replaced_on_success(path) as temp:
        temp.write_bytes(data)
    return Path(path)


def replace_together(files: dict[Path, bytes | None]) -> None:
    """Write each file of `files` (None: remove it) so that all change or none does: every
    one goes to its temporary first (a full disk fails there, before any rename), then all
    are renamed; a rename or removal that still fails puts back the ones already done. The
    old contents are held in memory meanwhile: for files of a model's size at most (reports,
    weights, engines), not videos. The folders must exist."""
    before = {path: path.read_bytes() if path.is_file() else None for path in files}
    done: list[Path] = []
    try:
        with ExitStack() as stack:
            for path, data in files.items():
                if data is not None:
                    temp = stack.enter_context(_renamed_when_written(path, done))
                    temp.write_bytes(data)  # renamed when the stack closes, once all are written
        for path, data in files.items():
            if data is None and before[path] is not None:
                path.unlink()
                done.append(path)
    except BaseException:
        _put_back(done, before)
        raise


@contextmanager
def _renamed_when_written(path: Path, done: list[Path]) -> Iterator[Path]:
    """replaced_on_success, noting `path` in `done` once it is renamed into place."""
    with replaced_on_success(path) as temp:
        yield temp
    done.append(path)


def _put_back(paths: list[Path], before: dict[Path, bytes | None]) -> None:
    """Each of `paths` as it was before: its old contents, or no file where there was none."""
    for path in paths:
        if before[path] is None:
            path.unlink(missing_ok=True)
        else:
            write_atomically(path, before[path])


def cache_file(path: str | Path, data: bytes) -> bool:
    """Save `data` to the cache file `path` (folders created), whole or not at all. False,
    with a warning, when it cannot be saved (a read-only or full cache, a file where the
    folder should be): a cache only saves time, so the caller carries on with `data`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data)  # a concurrent reader never sees half a file
    except OSError as error:
        log.warning("cannot cache %s in %s (%s)", path.name, path.parent, error)
        return False
    return True


# -- which file a name means --------------------------------------------------------
def path_key(path: str | Path) -> str:
    """One spelling per path, whether or not a file is there yet: absolute, links
    resolved, case folded where the system's disks ignore it by default (Windows; macOS,
    whose APFS ignores the Unicode normal form too); the path as given for a name no file
    can have (a NUL), which the writer then refuses. A case-sensitive disk there is taken
    as ignoring case: refusing two names as one file is safer than one replacing the other."""
    try:
        key = os.path.normcase(os.path.realpath(path))
    except (OSError, ValueError):
        return str(path)
    if sys.platform == "darwin":
        return unicodedata.normalize("NFD", key.casefold())
    return key


def file_identity(path: str | Path) -> FileKey:
    """What names one file however it is spelled (./a, /abs/a, a symbolic or hard link to
    it, another case on a case-insensitive disk): an existing file's device and inode, else
    its path_key (a file not written yet, or one on a disk of no inode numbers: Windows
    gives 0 for WebDAV, sshfs-win and VirtualBox shared folders, CPython issue 78116)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):  # not there (yet), a name too long, a NUL
        return path_key(path)
    if info.st_ino == 0:  # would make every file of that disk one file
        return path_key(path)
    return info.st_dev, info.st_ino


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether `a` and `b` name one existing file (False where either does not exist)."""
    return os.path.exists(a) and file_identity(a) == file_identity(b)


#: The DESMOKE_CACHE values already warned about (once each: every backend load asks).
_refused_cache_values: set[str] = set()


def cache_root() -> Path:
    """The folder of desmoke's caches (ONNX exports, compiled CUDA kernels, TensorRT
    engines: all made again when missing): $DESMOKE_CACHE with ~ expanded, else the
    platform's (_platform_cache_root). A relative $DESMOKE_CACHE is refused for the
    default, with a warning: it would mean another folder in each working folder."""
    value = os.environ.get("DESMOKE_CACHE", "")
    default = _platform_cache_root()
    if not value:
        return default
    try:
        root = Path(value).expanduser()
    except RuntimeError:  # "~name" of no such user: refused below as relative
        root = Path(value)
    if root.is_absolute():
        return root
    if value not in _refused_cache_values:
        _refused_cache_values.add(value)
        log.warning(
            "DESMOKE_CACHE=%s is not an absolute path (give a full one); caching in %s instead",
            value,
            default,
        )
    return default


def _platform_cache_root() -> Path:
    """Where the platform keeps caches, desmoke's folder there: %LOCALAPPDATA%\\desmoke\\cache
    on Windows, ~/Library/Caches/desmoke on macOS, else $XDG_CACHE_HOME/desmoke or
    ~/.cache/desmoke. A relative value of those variables is ignored (the XDG spec's rule)."""
    if sys.platform == "win32":
        local = _absolute_env("LOCALAPPDATA", Path.home() / "AppData" / "Local")
        return local / "desmoke" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "desmoke"
    return _absolute_env("XDG_CACHE_HOME", Path.home() / ".cache") / "desmoke"


def _absolute_env(name: str, default: Path) -> Path:
    """The folder in environment variable `name` where that is an absolute path, else `default`."""
    value = os.environ.get(name, "")
    return Path(value) if value and os.path.isabs(value) else default


#: The cache folders already refused, with why (warned once each: every backend load asks).
_refused_cache_folders: set[tuple[Path, str]] = set()


def usable_cache_folder(folder: str | Path) -> bool:
    """Whether desmoke may read and write its cache folder `folder` (cache_root()/onnx,
    /cuda, /tensorrt): made owner-only (0o700) where missing, and so is its parent, the
    cache root. False, warned once, where either cannot be made, or is another user's or
    writable by group or others (unsafe_folder_reason): anyone who can write there could
    plant an export, kernels or an engine that desmoke would run (ssh refuses such a
    ~/.ssh). A caller given False works without the cache (exports or compiles in memory)."""
    folder = Path(folder)
    problem = _private_folder_problem(folder.parent) or _private_folder_problem(folder)
    if not problem:
        return True
    if (folder, problem) not in _refused_cache_folders:
        _refused_cache_folders.add((folder, problem))
        log.warning("not using the cache folder %s: %s", folder, problem)
    return False


def _private_folder_problem(folder: Path) -> str:
    """`folder` made owner-only where missing; why it may not be used ("" when it may)."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return unsafe_folder_reason(folder)
    except OSError as error:  # a file where a folder should be, a read-only disk
        return f"{folder} cannot be made ({error.strerror or error})"


def unsafe_folder_reason(folder: Path) -> str:
    """Why the files in `folder` may not be the user's own ("" when they are): the folder
    belongs to another user (root excepted: root can write anywhere anyway) or group or
    others may write in it. "" on Windows, which has no such modes. OSError where the
    folder cannot be looked at."""
    if sys.platform == "win32":
        return ""
    info = os.stat(folder)
    if info.st_uid not in (os.getuid(), 0):
        return (
            f"{folder} belongs to another user (uid {info.st_uid}); set DESMOKE_CACHE to a "
            "folder of your own"
        )
    if info.st_mode & 0o022:
        return (
            f"{folder} is writable by other users (mode {info.st_mode & 0o777:o}); run "
            f"chmod go-w {folder}, or set DESMOKE_CACHE to a folder only you can write"
        )
    return ""


def not_a_file_reason(path: str | Path) -> str:
    """Why `path` cannot be read as a file ("" when it is a regular file, through links):
    "not found", or what it is instead: a directory, a FIFO (reading one, or /dev/stdin
    from a pipe, waits for a writer), a device (/dev/zero never ends) or a socket."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in it
        return "not found"
    except OSError as error:  # no permission to look, a name too long
        return f"cannot be looked at ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (a pipe), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    return "is not a regular file (a socket?)"


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex), read in blocks: engines are hundreds of MB."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def desmoked_name(source: str | Path) -> str:
    """The file name a desmoked export of `source` gets unless told otherwise."""
    return f"{Path(source).stem}_desmoked.mp4"
