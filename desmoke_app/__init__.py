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
