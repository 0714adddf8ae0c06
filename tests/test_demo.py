"""The built-in demo's smoke: a plume from the instrument, no box, a seamless loop."""

from __future__ import annotations

import numpy as np

from desmoke_app.gui.demo import DEMO_FRAMES, CauterySmoke, DemoScene, DemoSource


def test_smoke_is_a_soft_plume_from_the_jaws() -> None:
    scene = DemoScene()
    smoke = CauterySmoke(scene, seed=7)
    for index in (0, 40, 100):
        alpha = smoke.alpha(index)
        assert alpha.shape == (scene.height, scene.width) and alpha.dtype == np.float32
        assert 0.0 <= alpha.min() and alpha.max() <= 0.7  # restorable, never opaque
        assert alpha.max() > 0.4  # and clearly visible
        # No straight edge near the frame border (the old synthesis faded in over a few
        # pixels: a see-through box): opacity changes smoothly everywhere.
        assert np.abs(np.diff(alpha, axis=0)).max() < 0.05
        assert np.abs(np.diff(alpha, axis=1)).max() < 0.05
        # Denser above the jaws than far below them.
        tip, axis = scene.tip(index)
        x, y = (tip + axis * 0.08 * scene.height).astype(int)
        assert alpha[max(0, y - 40) : y, x - 30 : x + 10].mean() > 2 * alpha[-20:].mean()


def test_demo_loops_seamlessly() -> None:
    with DemoSource() as demo:
        first, second, last = (demo.seek_frame(i).rgb.astype(int) for i in (0, 1, DEMO_FRAMES - 1))
    step = np.abs(second - first).mean()
    assert np.abs(first - last).mean() < 2 * step  # the wrap is an ordinary step
