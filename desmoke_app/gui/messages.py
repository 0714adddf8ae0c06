"""The one line the app shows for an error: the engine's own message where it has one."""

from __future__ import annotations

from engine.video.errors import VideoError


def one_line(error: BaseException, context: str) -> str:
    """One readable line: the error's own message, else `context` before it (or its class
    name where it says nothing)."""
    text = " ".join(str(error).split())
    if not text:
        return f"{context}: {type(error).__name__}"
    # These name the file, device or setting themselves (the engine's VideoError and
    # WeightsError, a ValueError, an OSError): the context would only repeat it.
    if isinstance(error, (VideoError, ValueError, OSError)):
        return text
    return f"{context}: {text}"
