"""Settings remembered between sessions (QSettings): processing controls, recent files, view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

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


class AppSettings:
    """Typed access to QSettings; tests pass their own (e.g. an INI file in tmp_path)."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store or QSettings(ORGANISATION, APPLICATION)

    def _get(self, key: str, default: Any, kind: type) -> Any:
        value = self.store.value(key, default)
        try:
            return kind(value)
        except (TypeError, ValueError):
            return default

    # -- processing ---------------------------------------------------------------------
    def processing(self) -> dict[str, Any]:
        d = DEFAULT_PROCESSING
        return {
            "model": self._get("processing/model", d["model"], str),
            "backend": self._get("processing/backend", d["backend"], str),
            "working_short_side": self._get(
                "processing/working_short_side", d["working_short_side"], int
            ),
            "patch_size": self._get("processing/patch_size", d["patch_size"], int),
            "strength": self._get("processing/strength", d["strength"], float),
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
            return value.lower() in ("1", "true", "yes")
        return bool(value)

    def set_value(self, key: str, value: Any) -> None:
        self.store.setValue(key, value)

    def sync(self) -> None:
        self.store.sync()
