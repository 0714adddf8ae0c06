"""Trainer for the `paper` model: pix2pix (U-Net-256 + conditional 70x70 PatchGAN).

As in Salazar-Colores et al. 2020 / pix2pix: generator loss = GAN (BCE on patch logits) +
100 x L1 to the clear frame; discriminator loss = (BCE(real, 1) + BCE(fake, 0)) / 2; Adam
2e-4, betas (0.5, 0.999) for both. The dark-channel input is an ablation switch:
[model] arch = { use_dark_channel = false } trains on RGB only (generator and
discriminator condition alike). The U-Net has 8 stride-2 levels: crops must be 256x256.
Run: python -m training.trainer_paper --config training/configs/paper.toml --out runs/paper
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
from engine.models.paper_unet import PAPER_STRIDE
from training.config import Config, ConfigError
from training.data import FrameSet
from training.loop import Recipe, StepFn, evaluating, psnr_batch, train_model
from training.patchgan import PatchGAN
from training.run import run_cli


def _condition(x: torch.Tensor, use_dark_channel: bool) -> torch.Tensor:
    return x if use_dark_channel else x[:, :3]


def generator_loss(
    discriminator: nn.Module,
    condition: torch.Tensor,
    fake: torch.Tensor,
    clear: torch.Tensor,
    config: Config,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """pix2pix generator loss: GAN (fool D) + l1_weight x L1; also the L1 term and parts.

    Call it after D's step: D's updated parameters score the fake (as pix2pix does).
    """
    logits = discriminator(condition, fake)
    adversarial = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    l1 = (fake - clear).abs().mean()
    loss = config.paper.gan_weight * adversarial + config.paper.l1_weight * l1
    return loss, l1, {"g_gan": adversarial.item(), "l1": l1.item()}


def discriminator_loss(
    discriminator: nn.Module, condition: torch.Tensor, real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    real_logits = discriminator(condition, real)
    fake_logits = discriminator(condition, fake.detach())
    return 0.5 * (
        F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    )


@torch.no_grad()
def validate_paper(
    generator: nn.Module,
    items: Iterable[dict[str, torch.Tensor]],
    config: Config,
    device: torch.device,
) -> dict[str, float]:
    """Mean PSNR of the generator's output on the val frames, and of the smoky input."""
    restored, identity = [], []
    with evaluating(generator):
        for item in items:
            x = item["input"][None].to(device)
            clear = item["clear"][None].to(device)
            restored.append(psnr_batch(clear, generator(x)).item())
            identity.append(psnr_batch(clear, x[:, :3]).item())
    return {"psnr": sum(restored) / len(restored), "psnr_identity": sum(identity) / len(identity)}


def _networks(config: Config) -> dict[str, nn.Module]:
    """The generator ("net", the weights files') and its discriminator, in this order (the
    seed gives both their initial weights)."""
    if config.train.crop % PAPER_STRIDE:
        raise ConfigError(f"{config.path}: train.crop must be a multiple of {PAPER_STRIDE}")
    generator = build_network("paper", config.model.arch)
    discriminator = PatchGAN(4 if _uses_dark_channel(config) else 3, ndf=config.paper.ndf)
    return {"net": generator, "disc": discriminator}


def _uses_dark_channel(config: Config) -> bool:
    return bool(config.model.arch.get("use_dark_channel", True))


def _optimizers(config: Config, networks: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
    paper = config.paper
    betas = (paper.beta1, paper.beta2)
    return {
        name: torch.optim.Adam(net.parameters(), lr=paper.lr, betas=betas)
        for name, net in networks.items()
    }


def _step(
    config: Config, networks: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]
) -> StepFn:
    gen, disc = networks["net"], networks["disc"]
    opt_g, opt_d = optimizers["net"], optimizers["disc"]
    use_dark = _uses_dark_channel(config)

    def step(batch: dict[str, torch.Tensor]) -> dict[str, float]:
        condition = _condition(batch["input"], use_dark)
        fake = gen(batch["input"])
        opt_d.zero_grad(set_to_none=True)
        loss_d = discriminator_loss(disc, condition, batch["clear"], fake)
        loss_d.backward()
        opt_d.step()
        loss_g, _, parts = generator_loss(disc, condition, fake, batch["clear"], config)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()  # D's parameters get gradients here too; zeroed before its next step
        opt_g.step()
        parts["d"] = loss_d.item()
        return parts

    return step


PAPER = Recipe("paper", _networks, _optimizers, _step, validate_paper)


def train_paper(
    config: Config,
    out: str | Path,
    *,
    resume: bool = False,
    max_minutes: float | None = None,
    frames: FrameSet | None = None,
) -> dict[str, Any]:
    """Train the `paper` model per `config` into `out`; returns the run summary."""
    return train_model(PAPER, config, out, resume=resume, max_minutes=max_minutes, frames=frames)


def main(argv: list[str] | None = None) -> int:
    return run_cli(train_paper, argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
