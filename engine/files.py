"""Files written whole or not at all: a temporary file beside the target, renamed onto it.

One way for every file the project writes in one go (weights, ONNX exports, checkpoints,
compiled kernels, TensorRT engines, evaluation reports, snapshots); videos have their own
writer (engine.video.writer), which follows the same rule while it encodes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _process_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once, at import (os.umask can only be read by setting it).
_UMASK = _process_umask()


@contextmanager
def replaced_on_success(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to (same folder, so the rename is atomic; a
    name of this call's own, so concurrent writers do not collide). Renamed onto `path`
    when the block ends; removed when it raises (Ctrl-C included): `path` never holds a
    partial file. The folder must exist."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        temp.chmod(0o666 & ~_UMASK)  # mkstemp makes it owner-only: as open() would make it
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_atomically(path: str | Path, data: bytes) -> Path:
    """`data` into `path`, whole or not at all (see replaced_on_success)."""
    with replaced_on_success(path) as temp:
        temp.write_bytes(data)
    return Path(path)
