"""The `fast` network: predicts the smoke layer (opacity alpha and smoke colour A).

It never outputs the image: restoration inverts I = J (1 - alpha) + A alpha at full
resolution (engine.restore), so detail stays native and the network can run small.
Pixel-unshuffle by 4 turns the working-resolution input into 1/4-resolution features
cheaply; a 3-level U-Net (widths 32-64-128 by default) follows; both heads come out at 1/4
of the working resolution, where smoke (a low-frequency signal) is fully described.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.models.blocks import ConvAct, ResidualBlock, UpsampleConcat, pad_to_stride

#: Initial opacity: a sigmoid head that starts near 0 or 1 saturates and never recovers
#: (measured: the first version collapsed to alpha = 0 everywhere).
INITIAL_ALPHA = 0.1


class SmokeLayerNet(nn.Module):
    """RGB + dark channel in [0, 1] (Nx4xHxW) -> alpha (Nx1xH/4xW/4), colour (Nx3xH/4xW/4)."""

    output_names = ("alpha", "colour")

    def __init__(
        self, in_channels: int = 4, widths: tuple[int, int, int] = (32, 64, 128), unshuffle: int = 4
    ) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.unshuffle_factor = unshuffle
        self.stride = unshuffle * 4  # two stride-2 levels below the unshuffled input
        self.unshuffle = nn.PixelUnshuffle(downscale_factor=unshuffle)
        self.stem = ConvAct(in_channels * unshuffle * unshuffle, w1)
        self.enc1 = ResidualBlock(w1)
        self.down1 = ConvAct(w1, w2, stride=2)
        self.enc2 = ResidualBlock(w2)
        self.down2 = ConvAct(w2, w3, stride=2)
        self.bottleneck = nn.Sequential(ResidualBlock(w3), ResidualBlock(w3))
        self.up2 = UpsampleConcat(w3, w2, w2)
        self.dec2 = ResidualBlock(w2)
        self.up1 = UpsampleConcat(w2, w1, w1)
        self.dec1 = ResidualBlock(w1)
        self.alpha_head = nn.Conv2d(w1, 1, kernel_size=3, stride=1, padding=1)
        self.colour_head = nn.Conv2d(w1, 3, kernel_size=3, stride=1, padding=1)
        nn.init.zeros_(self.alpha_head.weight)
        nn.init.constant_(self.alpha_head.bias, math.log(INITIAL_ALPHA / (1 - INITIAL_ALPHA)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, (height, width) = pad_to_stride(x, self.stride)
        f1 = self.enc1(self.stem(self.unshuffle(x * 2.0 - 1.0)))
        f2 = self.enc2(self.down1(f1))
        f3 = self.bottleneck(self.down2(f2))
        d1 = self.dec1(self.up1(self.dec2(self.up2(f3, f2)), f1))
        out_h = -(-height // self.unshuffle_factor)
        out_w = -(-width // self.unshuffle_factor)
        alpha = torch.sigmoid(self.alpha_head(d1))[:, :, :out_h, :out_w]
        colour = torch.sigmoid(self.colour_head(d1))[:, :, :out_h, :out_w]
        return alpha, colour
