"""Side-by-side composition of the three panes for display and export.

"3up": original | dark channel | desmoked side by side (default); "2up": original | desmoked;
"vertical": the three stacked. Each pane sits in a cell of even width and height (an odd
pane is padded black, right/bottom): yuv420p H.264 needs an even image, and with the panes at
even offsets no 2x2 block of shared chroma straddles two panes, so the grey dark-channel pane
takes no colour from its neighbour.
"""

from __future__ import annotations

import cv2
import numpy as np

LAYOUTS = ("3up", "2up", "vertical")
LABELS = {"original": "original", "dark_channel": "dark channel", "desmoked": "desmoked"}


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")


def _grid(layout: str) -> tuple[int, int]:
    """(columns, rows) of panes."""
    return {"3up": (3, 1), "2up": (2, 1), "vertical": (1, 3)}[layout]


def _cell(width: int, height: int, even: bool) -> tuple[int, int]:
    """(width, height) of the cell a pane of width x height sits in: rounded up to even
    for a video (4:2:0 chroma), the pane's own for an image."""
    return (width + width % 2, height + height % 2) if even else (width, height)


def composed_size(width: int, height: int, layout: str, even_cells: bool = True) -> tuple[int, int]:
    """(width, height) of the composed image for panes of width x height (each padded to
    even unless `even_cells` is False: an image, not a video)."""
    _check_layout(layout)
    columns, rows = _grid(layout)
    cell_w, cell_h = _cell(width, height, even_cells)
    return cell_w * columns, cell_h * rows


def compose_panes(
    original: np.ndarray,
    dark_channel: np.ndarray,
    desmoked: np.ndarray,
    layout: str = "3up",
    labels: bool = False,
    even_cells: bool = True,
) -> np.ndarray:
    """One uint8 HxWx3 image with the panes laid out; the inputs are not modified.

    original/desmoked: HxWx3 uint8; dark_channel: HxW uint8 (shown as a grey pane).
    even_cells: False for an image (a snapshot): odd panes then touch, with no black line.
    """
    _check_layout(layout)
    _check_panes(original, dark_channel, desmoked)
    height, width = original.shape[:2]
    if layout == "2up":
        panes = [("original", original), ("desmoked", desmoked)]
    else:
        panes = [("original", original), ("dark_channel", dark_channel), ("desmoked", desmoked)]
    out_w, out_h = composed_size(width, height, layout, even_cells)
    cell_w, cell_h = _cell(width, height, even_cells)
    padded = (cell_w, cell_h) != (width, height)  # black around odd panes; else they cover it
    out = (np.zeros if padded else np.empty)((out_h, out_w, 3), np.uint8)
    columns = _grid(layout)[0]
    for i, (name, pane) in enumerate(panes):
        y, x = (i // columns) * cell_h, (i % columns) * cell_w
        region = out[y : y + height, x : x + width]
        if pane.ndim == 2:
            # OpenCV's grey-to-RGB, not NumPy's broadcast copy, which was most of the
            # composition's time at 1080p.
            pane = cv2.cvtColor(pane, cv2.COLOR_GRAY2RGB)
        region[...] = pane
        if labels:
            draw_label(region, LABELS[name])
    return out


def _check_panes(original: np.ndarray, dark_channel: np.ndarray, desmoked: np.ndarray) -> None:
    """ValueError naming the first pane that is not uint8 of the shape compose_panes takes:
    a float pane was cast to uint8 unscaled (black, or garbage past 255), silently."""
    if original.ndim != 3 or original.shape[2] != 3 or min(original.shape[:2]) < 1:
        raise ValueError(f"original pane has shape {original.shape}, expected HxWx3")
    height, width = original.shape[:2]
    for name, pane, shape in (
        ("original", original, (height, width, 3)),
        ("dark_channel", dark_channel, (height, width)),
        ("desmoked", desmoked, (height, width, 3)),
    ):
        if pane.shape != shape:
            expected = "x".join(str(n) for n in shape)
            raise ValueError(f"{name} pane has shape {pane.shape}, expected {expected}")
        if pane.dtype != np.uint8:
            raise ValueError(
                f"{name} pane is {pane.dtype}, expected uint8 (0-255): scale and convert it first"
            )


def draw_label(region: np.ndarray, text: str) -> None:
    """Text in the top-left corner of `region` (in place), white on a darkened box, sized to
    the pane so it reads the same at 256 px and at 1080p."""
    height, width = region.shape[:2]
    scale = max(0.3, min(height, width) / 600)
    thickness = max(1, round(scale * 2))
    (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, round(text_h * 0.4))
    x1, y1 = min(width, text_w + 2 * pad), min(height, text_h + baseline + 2 * pad)
    # Draw on a contiguous copy: OpenCV silently draws into a temporary copy of a strided
    # view (a pane inside the composed image), and the text would be lost.
    box = region[:y1, :x1] // 4  # dark backing box: readable on bright tissue and smoke
    cv2.putText(
        box,
        text,
        (pad, pad + text_h),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        thickness,
        cv2.LINE_AA,
    )
    region[:y1, :x1] = box
