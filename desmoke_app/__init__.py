"""The desktop app (gui/) and the `desmoke` command line (cli.py, commands/)."""

from __future__ import annotations

#: The version a source tree that is not installed reports (pyproject.toml's).
SOURCE_TREE_VERSION = "0.1.0"


def version() -> str:
    """The installed package's version, for --version and the About box."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("desmoke")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return SOURCE_TREE_VERSION


def source_commit() -> str:
    """The source tree's short git HEAD, "+dirty" when tracked files have changes, for
    reports saying what made them; "unknown" for a copy that is no checkout of its own
    (installed, or a folder inside another repository, such as a venv in a checkout)."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root:
            return "unknown"
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")
