"""Synthetic frames and clips the tests share: textured tissue-like images, smooth smoke
opacity, and H.264 clips written from frames."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np


def smooth_alpha(height: int, width: int, peak: float = 0.8) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    bump = np.exp(-(((x - width / 2) / (width / 3)) ** 2 + ((y - height / 2) / (height / 3)) ** 2))
    return (peak * bump).astype(np.float32)


def textured_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(40, 200, (8, 8, 3), dtype=np.uint8), (width, height))
    noise = rng.integers(-20, 21, (height, width, 3))
    return np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)


def tissue(seed: int, size: tuple[int, int] = (96, 64), scope: bool = False) -> np.ndarray:
    """A colourful, textured RGB frame (size = (w, h)); optionally a black scope surround."""
    width, height = size
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 1, (height // 4, width // 4, 3)).astype(np.float32)
    noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    base = np.array([0.75, 0.3, 0.25], np.float32)
    image = np.clip(base + 0.25 * (noise - 0.5), 0, 1)
    if scope:
        yy, xx = np.mgrid[:height, :width]
        radius = height * 0.5
        outside = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 > radius**2
        image[outside] = 0
    return (image * 255).astype(np.uint8)


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "ultrafast"}
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path
