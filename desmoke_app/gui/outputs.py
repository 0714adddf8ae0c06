"""Output files in use: one export or recording writes a file at a time.

An export and a recording (or two exports) writing one file would each rename their own
temporary file onto it, and the last to finish would silently replace the other's work.
The app claims a file for each export and recording before it starts writing and refuses
a second claim on the same file with a message. Claims are taken on the GUI thread
(exports) and the recorder's thread (recordings), so the register takes a lock. A claim
names a file that is not written yet, so files are told apart by engine.files.path_key
(the path, links resolved), not by what is on disk now.
"""

from __future__ import annotations

import threading
from pathlib import Path

from engine.files import path_key


class OutputClaims:
    """Thread-safe register of the files being written and what writes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uses: dict[str, str] = {}  # key -> "recorded" / "exported"
        # The path as claimed -> its key then: a folder link removed meanwhile would give
        # the path another key, and the claim would never be released.
        self._keys: dict[str, str] = {}

    def problem(self, path: str | Path) -> str:
        """Why `path` cannot be written now (another job writes it), or ""."""
        with self._lock:
            use = self._uses.get(path_key(path))
        return _busy(path, use) if use else ""

    def claim(self, path: str | Path, use: str) -> str:
        """Claim `path` for a job that is `use` ("recorded", "exported"): "" when claimed
        (release it when done), else why not (nothing claimed)."""
        key = path_key(path)
        with self._lock:
            held = self._uses.get(key)
            if held is None:
                self._uses[key], self._keys[str(path)] = use, key
                return ""
        return _busy(path, held)

    def release(self, path: str | Path) -> None:
        """Release the claim on `path`, spelled as it was claimed."""
        with self._lock:
            key = self._keys.pop(str(path), None)
            self._uses.pop(key if key is not None else path_key(path), None)


def _busy(path: str | Path, use: str) -> str:
    return f"{Path(path).name} is being {use}: choose another name"


#: The app's register: every window and job of the process writes through the same files.
CLAIMS = OutputClaims()
