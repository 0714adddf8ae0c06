"""Shared test set-up: headless Qt, the real-footage folder (optional), small generated media."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _data_dir() -> Path | None:
    folder = os.environ.get("DESMOKE_DATA")
    if folder and Path(folder).is_dir():
        return Path(folder)
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data via DESMOKE_DATA; tests using it skip where it is absent (fresh clone)."""
    folder = _data_dir()
    if folder is None:
        pytest.skip("real footage not available: set DESMOKE_DATA to the shared data folder")
    return folder
