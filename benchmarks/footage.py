"""The footage the speed benchmarks run on: the shared 720p clear clip, and that clip with
synthesised smoke (seeded), optionally upscaled to a capture card's size."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.video import FileSource, Mp4Writer  # noqa: E402
from training.smoke import synthesize_video  # noqa: E402

CLEAR_CLIP = Path("clear") / "endo_720p.mp4"


def clear_clip() -> Path | None:
    """The clear clip in $DESMOKE_DATA (default ../shared/data); None, said on stderr, when
    it is not there."""
    data = Path(os.environ.get("DESMOKE_DATA", Path(__file__).parents[2] / "shared" / "data"))
    clip = data / CLEAR_CLIP
    if not clip.is_file():
        print(f"benchmark needs {clip} (set DESMOKE_DATA)", file=sys.stderr)
        return None
    return clip


def smoky_clip(clear: Path, folder: Path, height: int | None = None) -> Path:
    """The clear clip with synthesised smoke (seed 7), upscaled to `height` if given."""
    clip = folder / "smoky_720p.mp4"
    synthesize_video(clear, clip, seed=7)
    return upscaled(clip, height, folder / f"smoky_{height}p.mp4") if height else clip


def upscaled(clip: Path, height: int, out: Path) -> Path:
    """The clip resized to `height` (aspect kept, even width), re-encoded at high quality."""
    with FileSource(clip) as source:
        width = round(source.width * height / source.height / 2) * 2
        with Mp4Writer(out, fps=source.rate, size=(width, height), crf=16) as writer:
            for frame in source.frames():
                resized = cv2.resize(frame.rgb, (width, height), interpolation=cv2.INTER_CUBIC)
                writer.write_image(resized)
    return out
