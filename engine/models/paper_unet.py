"""The paper's network: pix2pix U-Net-256 with the dark channel as a 4th input channel.

Salazar-Colores et al. 2020 use Isola et al.'s generator unchanged apart from the input:
8 stride-2 4x4 convolution levels, ngf 64, BatchNorm, LeakyReLU 0.2 on the way down,
ReLU on the way up, dropout 0.5 in the three innermost decoder blocks, tanh out, inputs in
[-1, 1]. `PaperDesmoker` wraps it with the project's I/O contract (RGB + dark channel in
[0, 1] -> restored RGB in [0, 1]), so every backend and the ONNX export see the same thing.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.blocks import pad_to_stride

#: 8 stride-2 levels: inputs must be multiples of 2**8.
PAPER_STRIDE = 256


class DownLevel(nn.Module):
    """LeakyReLU(0.2) -> 4x4 stride-2 conv -> BatchNorm (no act on the outermost, no norm
    on the outermost and innermost levels, as in pix2pix)."""

    def __init__(self, in_channels: int, out_channels: int, *, act: bool, norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if act:
            layers.append(nn.LeakyReLU(negative_slope=0.2, inplace=True))
        layers.append(
            nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False)
        )
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class UpLevel(nn.Module):
    """ReLU -> 4x4 stride-2 transposed conv -> BatchNorm [-> Dropout 0.5] (or -> tanh out)."""

    def __init__(
        self, in_channels: int, out_channels: int, *, outermost: bool, dropout: bool
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(
                in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=outermost
            ),
        ]
        if outermost:
            layers.append(nn.Tanh())
        else:
            layers.append(nn.BatchNorm2d(out_channels))
            if dropout:
                layers.append(nn.Dropout(p=0.5))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class UNet256(nn.Module):
    """pix2pix `UnetGenerator(num_downs=8)`, written as explicit down and up levels."""

    def __init__(self, in_channels: int = 4, out_channels: int = 3, ngf: int = 64) -> None:
        super().__init__()
        widths = [ngf, ngf * 2, ngf * 4, ngf * 8, ngf * 8, ngf * 8, ngf * 8, ngf * 8]
        self.down = nn.ModuleList()
        previous = in_channels
        for level, width in enumerate(widths):
            outermost, innermost = level == 0, level == len(widths) - 1
            self.down.append(
                DownLevel(previous, width, act=not outermost, norm=not (outermost or innermost))
            )
            previous = width
        self.up = nn.ModuleList()
        for level in reversed(range(len(widths))):
            outermost, innermost = level == 0, level == len(widths) - 1
            in_ch = widths[level] if innermost else 2 * widths[level]
            out_ch = out_channels if outermost else widths[level - 1]
            # Dropout in the three decoder blocks just outside the innermost one.
            dropout = level in (len(widths) - 2, len(widths) - 3, len(widths) - 4)
            self.up.append(UpLevel(in_ch, out_ch, outermost=outermost, dropout=dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in self.down:
            x = level(x)
            skips.append(x)
        x = skips.pop()
        for level in self.up:
            x = level(x)
            if skips:
                x = torch.cat([skips.pop(), x], dim=1)
        return x


class PaperDesmoker(nn.Module):
    """RGB + dark channel in [0, 1] (Nx4xHxW) -> restored RGB in [0, 1] (Nx3xHxW)."""

    stride = PAPER_STRIDE
    output_names = ("restored",)

    def __init__(self, use_dark_channel: bool = True, ngf: int = 64) -> None:
        super().__init__()
        self.use_dark_channel = use_dark_channel
        self.unet = UNet256(in_channels=4 if use_dark_channel else 3, out_channels=3, ngf=ngf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (height, width) = pad_to_stride(x, self.stride)
        if not self.use_dark_channel:
            x = x[:, :3]
        y = self.unet(x * 2.0 - 1.0)
        return ((y + 1.0) * 0.5)[:, :, :height, :width]
