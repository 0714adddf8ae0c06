"""The built-in demo: a generated laparoscopic-looking scene with smoke synthesised live.

The scene (tissue texture, vessels, a moving metal instrument, speculars, the scope's
circular field) is drawn procedurally, so the demo needs no data file. Smoke comes from
training.smoke (the same seeded fBm synthesis the network is trained on); where that
module is missing, a simple drifting Gaussian plume stands in.

DemoSource has FileSource's interface (read, seek_frame, seek, frames, close). Frames are
rendered on first use and cached, so seeking back is instant and the clip loops seamlessly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import cv2
import numpy as np

from engine.video import VideoFrame

log = logging.getLogger(__name__)

DEMO_SIZE = (512, 288)  # (w, h)
DEMO_FPS = 25.0
DEMO_FRAMES = 150
DEMO_SEED = 7


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a small random lattice upsampled bicubically."""
    height, width = shape
    lattice = rng.random((max(2, cells * height // width), cells)).astype(np.float32)
    field = cv2.resize(lattice, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(field, 0.0, 1.0)


class DemoScene:
    """Procedural clear frames: a tissue texture panned slowly, an instrument moving."""

    def __init__(self, size: tuple[int, int] = DEMO_SIZE, seed: int = DEMO_SEED) -> None:
        self.width, self.height = size
        rng = np.random.default_rng(seed)
        big = (int(self.height * 1.3), int(self.width * 1.3))
        self._texture = self._tissue(rng, big)
        yy, xx = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32)
        cx, cy, r = self.width / 2, self.height / 2, 0.62 * self.width
        dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / r
        self._vignette = np.clip((1.0 - dist) * 6, 0.0, 1.0)[:, :, None]

    @staticmethod
    def _tissue(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        low = _smooth_noise(rng, shape, 6)
        mid = _smooth_noise(rng, shape, 24)
        fat = _smooth_noise(rng, shape, 5) ** 3
        dark = np.array([110, 22, 28], np.float32)
        pink = np.array([225, 115, 105], np.float32)
        yellow = np.array([235, 200, 120], np.float32)
        mix = (0.6 * low + 0.4 * mid)[:, :, None]
        image = dark + (pink - dark) * mix
        image += (yellow - image) * np.clip(fat * 2.5 - 0.3, 0, 0.8)[:, :, None]
        vessels = np.zeros(shape, np.float32)
        for _ in range(7):  # wandering vessels: smooth random walks
            heading = np.cumsum(rng.normal(0, 0.25, 60)) + rng.uniform(0, 2 * np.pi)
            steps = np.stack([np.cos(heading), np.sin(heading)], axis=1) * shape[1] / 80
            points = np.cumsum(steps, axis=0) + rng.uniform((0, 0), (shape[1], shape[0]))
            width = int(rng.integers(2, 6))
            cv2.polylines(vessels, [points.astype(np.int32)], False, 1.0, width, cv2.LINE_AA)
        vessels = cv2.GaussianBlur(vessels, (0, 0), 1.5)[:, :, None]
        image = image * (1 - 0.55 * vessels) + np.array([90, 10, 20], np.float32) * 0.55 * vessels
        sheen = np.clip(_smooth_noise(rng, shape, 30) - 0.9, 0, 1) * 8 * 255  # wet-tissue speculars
        image += sheen[:, :, None]
        return np.clip(image, 0, 255).astype(np.float32)

    def frame(self, index: int) -> np.ndarray:
        """Clear RGB uint8 frame `index` (periodic in DEMO_FRAMES: the loop is seamless)."""
        phase = 2 * math.pi * index / DEMO_FRAMES
        tex_h, tex_w = self._texture.shape[:2]
        ox = int((tex_w - self.width) / 2 * (1 + 0.8 * math.sin(phase)))
        oy = int((tex_h - self.height) / 2 * (1 + 0.8 * math.sin(2 * phase)))
        image = self._texture[oy : oy + self.height, ox : ox + self.width].copy()
        self._draw_instrument(image, phase)
        image *= self._vignette
        return np.clip(image, 0, 255).astype(np.uint8)

    def _draw_instrument(self, image: np.ndarray, phase: float) -> None:
        w, h = self.width, self.height
        tip = np.array([w * (0.55 + 0.08 * math.sin(phase)), h * (0.55 + 0.06 * math.cos(phase))])
        base = np.array([w * 1.05, h * 1.1])
        axis = (tip - base) / np.linalg.norm(tip - base)
        normal = np.array([-axis[1], axis[0]]) * h * 0.045
        shaft = np.array([base + normal, tip + normal, tip - normal, base - normal], np.int32)
        mask = np.zeros((h, w), np.float32)
        cv2.fillConvexPoly(mask, shaft, 1.0, cv2.LINE_AA)
        jaw = tip + axis * h * 0.07
        cv2.line(mask, tuple(tip.astype(int)), tuple((jaw + normal).astype(int)), 1.0, 4)
        cv2.line(mask, tuple(tip.astype(int)), tuple((jaw - normal).astype(int)), 1.0, 4)
        # Metal shading: brighter along one edge of the shaft.
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        unit = normal / np.linalg.norm(normal)
        across = ((xx - tip[0]) * unit[0] + (yy - tip[1]) * unit[1]) / (h * 0.045)
        shade = 150 + 90 * np.exp(-((across - 0.4) ** 2) / 0.05)
        metal = np.stack([shade, shade * 1.02, shade * 1.05], axis=2)
        image += (metal - image) * mask[:, :, None]


class _SimplePlume:
    """Fallback smoke when training.smoke is missing: a drifting, breathing Gaussian plume."""

    def clip(self, frames, seed: int) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(seed)
        for index, frame in enumerate(frames):
            h, w = frame.shape[:2]
            noise = _smooth_noise(rng, (h, w), 8)
            t = 2 * math.pi * index / DEMO_FRAMES
            cx, cy = w * (0.4 + 0.15 * math.sin(t)), h * (0.45 + 0.1 * math.cos(t))
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            plume = np.exp(-(((xx - cx) / (0.35 * w)) ** 2 + ((yy - cy) / (0.45 * h)) ** 2))
            alpha = np.clip(plume * (0.55 + 0.35 * noise), 0, 0.9)[:, :, None]
            smoke = np.array([0.93, 0.92, 0.88], np.float32)
            clear = frame.astype(np.float32) / 255
            yield clear * (1 - alpha) + smoke * alpha


def _smoky_frames(scene: DemoScene, seed: int) -> Iterator[np.ndarray]:
    """Smoky uint8 frames, endlessly (the scene is periodic)."""
    clear = (scene.frame(i) for i in range(DEMO_FRAMES))
    try:
        from training.smoke import SmokeConfig, SmokeSynthesizer

        # Dense enough to be obvious in a demo; no background augmentation.
        config = SmokeConfig(density=(0.6, 0.8), coverage=(-0.6, 0.0), augment_probability=0.0)
        samples = (s.smoky for s in SmokeSynthesizer(config, seed).clip(clear, seed))
    except Exception as error:  # noqa: BLE001 - missing or broken training module
        log.info("demo smoke: training.smoke unavailable (%s); using a simple plume", error)
        samples = _SimplePlume().clip(clear, seed)
    for smoky in samples:
        yield (np.clip(smoky, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


class DemoSource:
    """FileSource-like demo clip; frames are synthesised on first use, then cached."""

    is_live = False
    has_audio = False
    codec = "generated"
    frame_count_exact = True

    def __init__(self, size: tuple[int, int] = DEMO_SIZE, seed: int = DEMO_SEED) -> None:
        self.path = "demo"
        self.width, self.height = size
        self.fps = DEMO_FPS
        self.frame_count = DEMO_FRAMES
        self.duration = DEMO_FRAMES / DEMO_FPS
        self.skipped_frames = 0
        self._frames = _smoky_frames(DemoScene(size, seed), seed)
        self._cache: list[np.ndarray] = []
        self._next = 0

    def _frame(self, index: int) -> VideoFrame:
        while len(self._cache) <= index:
            self._cache.append(next(self._frames))
        rgb = self._cache[index].copy()  # receivers may keep it; the cache stays pristine
        self._next = index + 1
        return VideoFrame(index=index, time=index / self.fps, rgb=rgb)

    def read(self) -> VideoFrame | None:
        return self._frame(self._next) if self._next < self.frame_count else None

    def seek_frame(self, index: int) -> VideoFrame | None:
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}")
        return self._frame(index) if index < self.frame_count else None

    def seek(self, time: float) -> VideoFrame | None:
        return self.seek_frame(int(math.floor(max(0.0, time) * self.fps + 1e-6)))

    def frames(self, start: float = 0.0, end: float | None = None) -> Iterator[VideoFrame]:
        frame = self.seek(start)
        while frame is not None and (end is None or frame.time < end):
            yield frame
            frame = self.read()

    def close(self) -> None:
        self._cache.clear()

    def __enter__(self) -> DemoSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
