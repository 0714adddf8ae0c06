"""Trainer for the `fast` model (SmokeLayerNet): supervised smoke-layer estimation.

Loss (lessons measured here, NOTES.md "Training a smoke-layer network"):
- restoration on J: alpha and colour upsampled to the crop, J_hat = (I - A alpha) /
  (1 - alpha) with alpha at most 1 - t_min (as the engine inverts); L1 (+ SSIM) to the clear frame, weighted by (1 - alpha_true) so
  dense-smoke pixels (which cannot be inverted) do not blow up the gradient;
- alpha supervision: L1 to alpha_true averaged down to the network's 1/4 resolution;
- colour supervision where the true alpha is significant (elsewhere A is undefined).
Adam(W) at 5e-4 with gradient-norm clipping and a cosine decay over the time budget.

The run around it (folder, lock, resume, DDP, the loop, stopping) is training.run and
training.loop, which trainer_paper shares.
Run: python -m training.trainer_fast --config training/configs/fast.toml --out runs/fast
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.models import build_network
from training.config import Config
from training.data import FrameSet
from training.loop import Recipe, StepFn, evaluating, psnr_batch, train_model
from training.run import run_cli

#: SSIM window: 7x7 uniform, as training.metrics.ssim (scikit-image's default) measures it;
#: a box filter is also 3x cheaper than a Gaussian on CPU (avg_pool vs grouped convolution).
SSIM_WINDOW = 7


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: int = SSIM_WINDOW) -> torch.Tensor:
    """Per-pixel SSIM (uniform window, Wang et al. 2004 constants) of NxCxHxW [0, 1] images."""
    pad = window // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(t, (pad,) * 4, mode="reflect"), window, stride=1)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def invert(
    smoky: torch.Tensor, alpha: torch.Tensor, colour: torch.Tensor, t_min: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """J_hat from the low-resolution smoke layer (bilinear up to the image), inverted as
    engine.restore inverts it (alpha at most 1 - t_min); also alpha up."""
    size = smoky.shape[-2:]
    alpha_up = F.interpolate(alpha, size=size, mode="bilinear", align_corners=False)
    colour_up = F.interpolate(colour, size=size, mode="bilinear", align_corners=False)
    invertible = alpha_up.clamp_max(1 - t_min)
    restored = (smoky - colour_up * invertible) / (1 - invertible)
    return restored, alpha_up


def fast_loss(
    alpha: torch.Tensor,
    colour: torch.Tensor,
    batch: dict[str, torch.Tensor],
    config: Config,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (see the module docstring)."""
    train = config.train
    smoky, clear, alpha_true = batch["input"][:, :3], batch["clear"], batch["alpha"]
    restored, _ = invert(smoky, alpha, colour, train.t_min)
    weight = 1 - alpha_true
    wsum = weight.sum().clamp_min(1.0) * 3
    l1 = ((restored - clear).abs() * weight).sum() / wsum
    total = train.l1_weight * l1
    parts = {"l1": l1.item()}
    if train.ssim_weight > 0:
        dssim = ((1 - ssim_map(restored, clear)) * weight).sum() / wsum
        total = total + train.ssim_weight * dssim
        parts["dssim"] = dssim.item()
    alpha_small = F.adaptive_avg_pool2d(alpha_true, alpha.shape[-2:])
    alpha_l1 = (alpha - alpha_small).abs().mean()
    significant = alpha_small * (alpha_small > 0.05)
    colour_l1 = ((colour - batch["colour"][:, :, None, None]).abs() * significant).sum() / (
        significant.sum() * 3
    ).clamp_min(1.0)
    total = total + train.alpha_weight * alpha_l1 + train.colour_weight * colour_l1
    parts.update(alpha=alpha_l1.item(), colour=colour_l1.item(), total=total.item())
    return total, parts


@torch.no_grad()
def validate_fast(
    net: nn.Module, items: Iterable[dict[str, torch.Tensor]], config: Config, device
) -> dict:
    """Mean PSNR of the restored val frames (working resolution), and of the smoky input."""
    restored_psnr, identity_psnr, alpha_err = [], [], []
    with evaluating(net):
        for item in items:
            x = item["input"][None].to(device)
            alpha, colour = net(x)
            restored, alpha_up = invert(x[:, :3], alpha, colour, config.train.t_min)
            clear = item["clear"][None].to(device)
            restored_psnr.append(psnr_batch(clear, restored).item())
            identity_psnr.append(psnr_batch(clear, x[:, :3]).item())
            alpha_err.append((alpha_up - item["alpha"][None].to(device)).abs().mean().item())
    n = len(restored_psnr)
    return {
        "psnr": sum(restored_psnr) / n,
        "psnr_identity": sum(identity_psnr) / n,
        "alpha_mae": sum(alpha_err) / n,
    }


def _networks(config: Config) -> dict[str, nn.Module]:
    return {"net": build_network("fast", config.model.arch)}


def _optimizers(config: Config, networks: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
    train = config.train
    return {
        "net": torch.optim.AdamW(
            networks["net"].parameters(), lr=train.lr, weight_decay=train.weight_decay
        )
    }


def _step(
    config: Config, networks: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]
) -> StepFn:
    model, optimizer = networks["net"], optimizers["net"]

    def step(batch: dict[str, torch.Tensor]) -> dict[str, float]:
        alpha, colour = model(batch["input"])
        loss, parts = fast_loss(alpha, colour, batch, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
        optimizer.step()
        parts["grad_norm"] = float(norm)
        return parts

    return step


FAST = Recipe("fast", _networks, _optimizers, _step, validate_fast)


def train_fast(
    config: Config,
    out: str | Path,
    *,
    resume: bool = False,
    max_minutes: float | None = None,
    frames: FrameSet | None = None,
) -> dict[str, Any]:
    """Train the `fast` model per `config` into `out`; returns the run summary."""
    return train_model(FAST, config, out, resume=resume, max_minutes=max_minutes, frames=frames)


def main(argv: list[str] | None = None) -> int:
    return run_cli(train_fast, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
