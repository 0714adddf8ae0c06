"""Icons of the desktop app (a package so that setuptools ships the SVG files)."""
