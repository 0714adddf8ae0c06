"""About box: what the app is, and where the running model comes from (provenance)."""

from __future__ import annotations

from html import escape
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from desmoke_app import version
from desmoke_app.commands.common import visible
from desmoke_app.gui.lifetime import dispose_dialog
from engine.models.weights import provenance_summary

PAPER = (
    "Salazar-Colores et al. 2020, “Desmoking laparoscopy surgery images using an "
    "image-to-image translation guided by an embedded dark channel”, IEEE Access 8:208898"
)
DCP = "He, Sun, Tang 2009/2011, “Single image haze removal using dark channel prior”"


def provenance(model_name: str, description: str, config: dict[str, Any], notice: str) -> str:
    """HTML lines on the running model: method, source, training and metrics if recorded.
    The description and notice name files (the weights'): shown as they are, never read as
    HTML."""
    lines = [f"<b>Running:</b> {_as_html(description)}"]
    if notice:
        lines.append(f"<b>Note:</b> {_as_html(notice)}")
    if model_name == "paper":
        lines.append(f"<b>Method:</b> pix2pix U-Net-256 with an embedded dark channel ({PAPER}).")
    elif model_name == "fast":
        lines.append(
            "<b>Method:</b> smoke-layer network at a low working resolution; the frame is "
            "restored at full resolution by inverting the smoke compositing model."
        )
    else:
        lines.append(f"<b>Method:</b> classical dark-channel prior, no weights ({DCP}).")
    if config.get("training") or config.get("metrics"):
        lines.append(f"<b>Weights:</b> {_as_html(provenance_summary(config))}")
    return "<br>".join(lines)


def _as_html(text: str) -> str:
    """Plain `text` as HTML showing it as it is, on one line."""
    return escape(visible(text))


def about_html(model_name: str, description: str, config: dict[str, Any], notice: str) -> str:
    return (
        f"<h3>desmoke {version()}</h3>"
        "<p>Real-time surgical smoke removal for laparoscopic video: original, dark-channel "
        "mask and desmoked frame side by side; full-resolution output at low-resolution "
        "network cost.</p>"
        f"<p>{provenance(model_name, description, config, notice)}</p>"
        f"<p>Origin: {PAPER}.</p>"
        "<p>Research software, not a medical device. MIT licence.</p>"
    )


def show_about(parent: QWidget, html: str) -> None:
    box = QMessageBox(parent)
    box.setWindowTitle("About desmoke")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(html)
    box.exec()
    dispose_dialog(box)
