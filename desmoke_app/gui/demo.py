"""The built-in demo: a generated laparoscopic-looking scene with smoke synthesised live.

The scene (tissue texture, vessels, a moving metal instrument, speculars, the scope's
circular field) is drawn procedurally, so the demo needs no data file. Smoke rises from the
instrument's jaws as it does from a cautery tip (CauterySmoke): soft puffs that drift,
spread and thin out, curled by training.smoke's fBm (the noise the network is trained on;
plain smooth noise where that module is missing). Not a full-frame training sample: those
(dense sheets, edge fades) look like a see-through box when shown as the app's first view.

DemoSource is a SeekableSource (engine/video/source.py), as a FileSource is. Frames are
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
        self._draw_instrument(image, index)
        image *= self._vignette
        return np.clip(image, 0, 255).astype(np.uint8)

    def tip(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The instrument in frame `index`: its tip (x, y in pixels) and its unit axis."""
        phase = 2 * math.pi * index / DEMO_FRAMES
        w, h = self.width, self.height
        tip = np.array([w * (0.55 + 0.08 * math.sin(phase)), h * (0.55 + 0.06 * math.cos(phase))])
        base = np.array([w * 1.05, h * 1.1])
        return tip, (tip - base) / np.linalg.norm(tip - base)

    def _draw_instrument(self, image: np.ndarray, index: int) -> None:
        w, h = self.width, self.height
        tip, axis = self.tip(index)
        base = np.array([w * 1.05, h * 1.1])
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


#: Smoke colour A: a slightly warm white, as cautery smoke under the scope's light.
SMOKE_COLOUR = (0.93, 0.91, 0.86)


def _texture(rng: np.random.Generator, shape: tuple[int, int], zoom: float) -> np.ndarray:
    """Billow texture: fBm normalised to mean 0, std 1.

    training.smoke's fbm_field (the noise the network is trained on) where it imports; a
    few octaves of _smooth_noise where it does not (the demo then needs only the app).
    """
    height, width = shape
    try:
        from training.smoke import fbm_field

        field = fbm_field(height, width, rng, zoom=zoom, anisotropy=1.5, angle=math.pi / 2)
    except Exception as error:  # noqa: BLE001 - missing or broken training module
        log.info("demo smoke: training.smoke unavailable (%s); using plain noise", error)
        cells = max(2, round(3 / zoom))
        field = sum(0.6**k * _smooth_noise(rng, shape, cells * 2**k) for k in range(4)).astype(
            np.float32
        )
    field = field - field.mean()
    return (field / max(float(field.std()), 1e-6)).astype(np.float32)


class CauterySmoke:
    """Smoke rising from the instrument's jaws, periodic in DEMO_FRAMES (a seamless loop).

    Puffs leave the jaws every few frames; each rises (slowing), drifts with a slow sway,
    spreads and thins out. Their soft Gaussian sum is curled by a rising fBm displacement
    (billows, wisps) and saturates softly: dense near the source, translucent higher up,
    over a thin uneven haze that gathers near the top. Nothing makes a straight edge. The
    opacity is smooth, so it is computed at half resolution and upsampled once.
    """

    EMIT_EVERY = 3  # frames between puffs
    LIFETIME = 90  # frames a puff lives (3.6 s at 25 fps)
    RISE = 1  # rise of the billow texture, half-resolution pixels per frame (an integer)
    PEAK = 0.65  # densest opacity (the network over-corrects wide areas much above ~0.7)

    def __init__(self, scene: DemoScene, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.scene = scene
        w, h = scene.width, scene.height
        self._small = (max(8, w // 2), max(8, h // 2))  # (w, h) of the opacity grid
        sw, sh = self._small
        self._scale = np.float32(sw / w), np.float32(sh / h)
        self._xs = np.arange(sw, dtype=np.float32) + 0.5
        self._ys = np.arange(sh, dtype=np.float32) + 0.5
        self._grid = np.meshgrid(self._xs - 0.5, self._ys - 0.5)
        # Texture layers scroll up through tall textures, two at a time, each restarting
        # while its weight is zero (a flow-noise cross-fade): a rise without bound that loops.
        self._span = self.RISE * DEMO_FRAMES
        tall = (sh + self._span, sw)
        self._warp = [_texture(rng, tall, zoom=0.5) for _ in range(2)]  # x, y displacement
        self._grain = _texture(rng, tall, zoom=0.25)
        haze = _texture(rng, (sh, sw), zoom=0.8)
        top = np.linspace(1.0, 0.3, sh, dtype=np.float32)[:, None]  # smoke gathers up top
        self._haze = np.clip(0.12 * top * (1.0 + 0.5 * haze), 0.0, 0.2)
        # One puff per emission: frame, rise and drift (px per frame), size, opacity.
        count = DEMO_FRAMES // self.EMIT_EVERY
        unit = h / 150
        self._puffs = np.stack(
            [
                np.arange(count) * self.EMIT_EVERY,
                rng.uniform(0.8, 1.2, count) * unit,
                rng.normal(-0.35, 0.35, count) * unit,
                rng.uniform(0.8, 1.25, count),
                rng.uniform(0.45, 0.65, count),
            ],
            axis=1,
        )
        self._sway = rng.uniform(0, 2 * math.pi)
        self._sources = []  # where each puff left the jaws
        for born in self._puffs[:, 0]:
            tip, axis = scene.tip(int(born))
            self._sources.append(tip + axis * 0.08 * h)

    def _scroll(self, texture: np.ndarray, t: int) -> np.ndarray:
        """The rising view of a tall texture at frame t (unit variance at every t)."""
        height = self._small[1]
        weights, total = [], np.zeros((height, self._small[0]), np.float32)
        for shift in (0.0, 0.5):
            p = (t / DEMO_FRAMES + shift) % 1.0
            offset = self._span - round(p * self._span)  # scrolls up as p grows
            weight = 1.0 - abs(2.0 * p - 1.0)
            total += np.float32(weight) * texture[offset : offset + height]
            weights.append(weight)
        return total / np.float32(math.hypot(*weights))

    def alpha(self, index: int) -> np.ndarray:
        """Opacity (HxW float32 in [0, 1]) of frame `index`."""
        w, h = self.scene.width, self.scene.height
        sx, sy = self._scale
        t = index % DEMO_FRAMES
        clear = np.ones((self._small[1], self._small[0]), np.float32)  # 1 - puff opacity
        for (born, rise, drift, size, peak), (bx, by) in zip(
            self._puffs, self._sources, strict=True
        ):
            age = (t - born) % DEMO_FRAMES
            if age >= self.LIFETIME:
                continue
            life = age / self.LIFETIME
            sway = 0.05 * w * math.sin(4 * math.pi * t / DEMO_FRAMES + self._sway) * life
            x = bx + drift * age + sway
            y = by - rise * age * (1 - 0.4 * life)  # rises, slowing down
            sigma = size * (0.025 + 0.17 * life**0.7) * h
            # Spreading thins it (the smoke is conserved), and it fades out at the end.
            opacity = peak * min(1.0, age / 3) * (0.025 * h * size / sigma) * (1 - life)
            gx = np.exp(-0.5 * ((self._xs - x * sx) / (1.3 * sigma * sx)) ** 2)
            gy = np.exp(-0.5 * ((self._ys - y * sy) / (sigma * sy)) ** 2)
            clear *= 1.0 - np.float32(opacity) * np.outer(gy, gx)
        density = 1.0 - clear
        # Curl the plume by a rising displacement (billows, wisps), vary it a little.
        reach = np.float32(0.04 * h * sy)
        map_x = self._grid[0] + reach * self._scroll(self._warp[0], t)
        map_y = self._grid[1] + reach * self._scroll(self._warp[1], t)
        density = cv2.remap(density, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        density *= np.clip(1.0 + 0.25 * self._scroll(self._grain, t), 0.5, 1.5)
        plume = np.float32(self.PEAK) * np.tanh(np.float32(2.4) * density)  # soft saturation
        alpha = 1.0 - (1.0 - plume) * (1.0 - self._haze)
        return cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)


def _smoky_frames(scene: DemoScene, seed: int) -> Iterator[np.ndarray]:
    """Smoky uint8 frames, endlessly (the scene and the smoke are periodic)."""
    smoke = CauterySmoke(scene, seed)
    colour = np.asarray(SMOKE_COLOUR, np.float32) * 255
    index = 0
    while True:
        clear = scene.frame(index).astype(np.float32)
        alpha = smoke.alpha(index)[:, :, None]
        yield (clear + (colour - clear) * alpha + 0.5).astype(np.uint8)
        index += 1


class DemoSource:
    """FileSource-like demo clip; frames are synthesised on first use, then cached."""

    is_live = False
    has_audio = False
    codec = "generated"
    frame_count_exact = True
    # Every frame it states decodes: no end found short of them (SeekableSource's).
    last_index = None
    end_time = None

    def __init__(self, size: tuple[int, int] = DEMO_SIZE, seed: int = DEMO_SEED) -> None:
        self.path = "demo"
        self.width, self.height = size
        self.fps = DEMO_FPS
        self.frame_count = DEMO_FRAMES
        self.duration = self.video_duration = DEMO_FRAMES / DEMO_FPS
        self.skipped_frames = 0
        self.notices: tuple[str, ...] = ()
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
