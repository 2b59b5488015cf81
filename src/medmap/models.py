"""Backbone and projection head (docs/method.md §3), with the width of the backbone as a parameter.

torchvision's ResNet fixes the channel widths of its BasicBlocks at 64..512, so the small-image
ResNet18 is written out here: same depth and topology at any width, which is what lets CPU runs
use a narrower network without changing the method.
"""

from __future__ import annotations

import torch
from torch import nn


class PointwiseStridedConv(nn.Conv2d):
    """A 1x1 convolution with stride s computed as "keep every s-th pixel (an average pool over
    1x1 windows), then a 1x1 stride-1 convolution": the same numbers and the same weight (so the
    same checkpoints) as ``nn.Conv2d(in, out, 1, s)``, at the same speed
    (scripts/bench_shortcut.py).

    Why: on CPUs with AVX-512, oneDNN's strided 1x1 kernel (``brgconv_strided:avx512_core``,
    torch 2.14.1 / oneDNN 3.12) corrupts the heap in its backward pass for channels-last inputs
    with few channels (8 and fewer at 64 px, 12 at 128 px): the process dies with SIGSEGV or
    "double free or corruption". Unstrided 1x1 convolutions take another kernel and are safe.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(in_channels, out_channels, 1, stride=1, bias=False)
        self.step = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(nn.functional.avg_pool2d(x, 1, self.step))


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                PointwiseStridedConv(in_channels, out_channels, stride),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallImageResNet18(nn.Module):
    """ResNet18 for small images: 3x3 stride-1 first conv, no max-pool, global average pool.

    ``width`` is the channel count of the first stage (64 in the paper); the four stages have
    width, 2, 4 and 8 times width channels, and the output has ``8 * width`` features.
    ``stem_stride`` 2 halves the feature maps from the first convolution on: about 4x fewer
    FLOPs a step, for CPU budgets that buy more epochs with them (1 in the paper).
    """

    def __init__(self, width: int = 64, stem_stride: int = 1) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"model.width must be a positive channel count, got {width}")
        if stem_stride not in (1, 2):
            raise ValueError(f"model.stem_stride must be 1 or 2, got {stem_stride}")
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages, in_channels = [], width
        for stage, stride in enumerate((1, 2, 2, 2)):
            out_channels = width * 2**stage
            stages += [
                BasicBlock(in_channels, out_channels, stride),
                BasicBlock(out_channels, out_channels, 1),
            ]
            in_channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.out_features = in_channels
        # The standard ResNet initialisation (as torchvision's): He-normal convolutions,
        # BatchNorm starting as the identity.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1)


class ProjectionHead(nn.Module):
    """Linear → ReLU → Linear. The output layer can be swapped for one of another dimension
    (t-SimCNE's 128-D → 2-D step) while the hidden layer is kept."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(in_features, hidden_features), nn.ReLU(inplace=True))
        self.output = nn.Linear(hidden_features, out_features)

    @property
    def out_features(self) -> int:
        return self.output.out_features

    def replace_output(self, out_features: int, init_std: float | None = 1.0) -> None:
        """A fresh output layer with ``out_features``; weights ~ N(0, init_std²)
        (docs/method.md §3: N(0, 1) for the new 2-D layer), or PyTorch's default init when
        ``init_std`` is None."""
        layer = nn.Linear(self.output.in_features, out_features)
        layer.to(device=self.output.weight.device, dtype=self.output.weight.dtype)
        if init_std is not None:
            nn.init.normal_(layer.weight, std=init_std)
        self.output = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(x))
