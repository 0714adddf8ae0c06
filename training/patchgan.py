"""The conditional 70x70 PatchGAN discriminator of pix2pix (Isola et al. 2017).

D sees the condition (the smoky input, with or without its dark channel) concatenated with
a clear or restored frame and scores every 70x70 patch as real or fake (logits): C64 (no
norm) - C128 - C256 - C512 (stride 1) - 1, 4x4 convolutions, BatchNorm, LeakyReLU 0.2.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchGAN(nn.Module):
    """(condition NxCxHxW, image Nx3xHxW) in [0, 1] -> patch logits Nx1x(H/8-2)x(W/8-2)."""

    def __init__(self, condition_channels: int = 4, ndf: int = 64, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [
            nn.Conv2d(condition_channels + 3, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        width = ndf
        for index in range(1, layers + 1):
            stride = 2 if index < layers else 1
            out = ndf * min(2**index, 8)
            blocks += [
                nn.Conv2d(width, out, 4, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width = out
        blocks.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*blocks)
        self.condition_channels = condition_channels
        for module in self.modules():  # pix2pix's N(0, 0.02) initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if condition.shape[1] != self.condition_channels:
            raise ValueError(
                f"PatchGAN expects {self.condition_channels} condition channels, "
                f"got {condition.shape[1]}"
            )
        x = torch.cat([condition, image], dim=1) * 2.0 - 1.0
        return self.net(x)
