"""Settings remembered between sessions (QSettings): processing controls, recent files, view.

The settings file is the user's to edit, and a session cut short (a crash, a full disk)
can leave it damaged: a stored value that is not what its key needs (a window geometry
that is no byte array, a strength of NaN, an unknown layout) is ignored and its default
used, and unusable_note() names the keys once, for the message bar."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from desmoke_app.commands.common import PATCH_RANGE, WORKING_SIZE_RANGE
from engine.backends import BACKEND_NAMES
from engine.models import MODEL_NAMES
from engine.video import LAYOUTS
from engine.video.writer import MAX_CRF

ORGANISATION = "desmoke"
APPLICATION = "desmoke-app"
MAX_RECENT = 8

DEFAULT_PROCESSING: dict[str, Any] = {
    "model": "fast",
    "backend": "auto",
    "working_short_side": 256,
    "patch_size": 15,
    "strength": 1.0,
}
#: How QSettings stores a bool in a text file, and what a user may write instead.
FLAG_TEXTS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _within(low: float, high: float) -> Callable[[float], bool]:
    return lambda value: math.isfinite(value) and low <= value <= high


def _known_model(model: str) -> bool:
    return model in MODEL_NAMES or bool(Path(model).suffix)  # a name, or a weights file


#: The stored values checked before use: (the type they are read as, whether one is
#: usable). Any other value is used as read (converted to its default's type).
CHECKED: dict[str, tuple[type, Callable[[Any], bool]]] = {
    "processing/model": (str, _known_model),
    "processing/backend": (str, BACKEND_NAMES.__contains__),
    "processing/working_short_side": (int, _within(*WORKING_SIZE_RANGE)),
    "processing/patch_size": (int, _within(*PATCH_RANGE)),
    "processing/strength": (float, _within(0.0, 1.0)),
    "export/layout": (str, LAYOUTS.__contains__),
    "export/crf": (int, _within(0, MAX_CRF)),
}
#: Stored as byte arrays (QWidget.saveGeometry, QMainWindow.saveState).
BYTE_ARRAYS = ("window/geometry", "window/state")
FLAGS = ("playback/loop", "view/split", "export/labels")


class AppSettings:
    """Typed access to QSettings; tests pass their own (e.g. an INI file in tmp_path)."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store or QSettings(ORGANISATION, APPLICATION)
        self._unusable: list[str] = []  # keys whose stored value was ignored, in order

    def _get(self, key: str, default: Any, kind: type) -> Any:
        if not self.store.contains(key):
            return default
        kind, usable = CHECKED.get(key, (kind, lambda _value: True))
        value = self.store.value(key)
        try:
            # str() takes anything: a list (an INI value with a comma) is no text.
            if kind is str and not isinstance(value, str):
                raise TypeError(key)
            value = kind(value)
            if usable(value):
                return value
        except (TypeError, ValueError, OverflowError):
            pass
        self.mark_unusable(key)
        return default

    def mark_unusable(self, key: str) -> None:
        """Note that `key`'s stored value is ignored (its default used): unusable_note()."""
        if key not in self._unusable:
            self._unusable.append(key)

    def unusable_note(self) -> str:
        """One line naming the settings file and every key whose stored value is ignored
        (all checked keys are read for it); "" when there is none."""
        for key, (kind, _usable) in CHECKED.items():
            self._get(key, None, kind)
        for key in BYTE_ARRAYS:
            self.byte_array(key)
        for key in FLAGS:
            self.flag(key, False)
        if not self._unusable:
            return ""
        keys = ", ".join(self._unusable)
        return (
            f"ignored unusable settings in {self.store.fileName()}: {keys} "
            "(the defaults are used until set again in the app)"
        )

    # -- processing ---------------------------------------------------------------------
    def processing(self) -> dict[str, Any]:
        return {
            key: self._get(f"processing/{key}", default, type(default))
            for key, default in DEFAULT_PROCESSING.items()
        }

    def set_processing(self, settings: dict[str, Any]) -> None:
        for key, value in settings.items():
            self.store.setValue(f"processing/{key}", value)

    # -- recent files -------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        value = self.store.value("recent_files", [])
        if isinstance(value, str):  # QSettings returns a lone string for a 1-item list
            value = [value]
        return [str(v) for v in (value or []) if v]

    def add_recent_file(self, path: str | Path) -> list[str]:
        path = str(Path(path).resolve())
        files = [path] + [f for f in self.recent_files() if f != path]
        files = files[:MAX_RECENT]
        self.store.setValue("recent_files", files)
        return files

    def remove_recent_file(self, path: str) -> list[str]:
        files = [f for f in self.recent_files() if f != path]
        self.store.setValue("recent_files", files)
        return files

    def clear_recent_files(self) -> None:
        self.store.setValue("recent_files", [])

    # -- view and export ----------------------------------------------------------------
    def value(self, key: str, default: Any) -> Any:
        return self._get(key, default, type(default))

    def flag(self, key: str, default: bool) -> bool:
        value = self.store.value(key, default)
        if isinstance(value, str):
            if value.lower() in FLAG_TEXTS:
                return FLAG_TEXTS[value.lower()]
        elif isinstance(value, (bool, int)):
            return bool(value)
        self.mark_unusable(key)
        return default

    def byte_array(self, key: str) -> QByteArray | None:
        """A stored byte array (a window's geometry or state), or None where there is none
        or the stored value is something else (a damaged file)."""
        value = self.store.value(key)
        if value is None or (isinstance(value, QByteArray) and value.isEmpty()):
            return None
        if isinstance(value, (QByteArray, bytes)):
            return QByteArray(value)
        self.mark_unusable(key)
        return None

    def set_value(self, key: str, value: Any) -> None:
        self.store.setValue(key, value)

    def sync(self) -> None:
        self.store.sync()
