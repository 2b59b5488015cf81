"""The cost of the backbone's crash-safe shortcut (models.PointwiseStridedConv) against the
strided 1x1 convolution it replaces: one training step's forward + backward of the whole
network, the two interleaved, at the shapes the configs use (results/shortcut-cpu.md).

The strided form crashes on AVX-512 CPUs at width 8 and 64 px and up, so only shapes where it
runs are compared."""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from medmap.models import PointwiseStridedConv, SmallImageResNet18

SHAPES = [  # (width, pixels, images per step = 2 views x batch): cpu, paper and PCam budgets
    (16, 28, 256),
    (64, 28, 64),
    (16, 96, 32),
]


def with_strided_shortcuts(network: SmallImageResNet18) -> SmallImageResNet18:
    for module in network.modules():
        for name, child in module.named_children():
            if isinstance(child, PointwiseStridedConv):
                strided = nn.Conv2d(child.in_channels, child.out_channels, 1, child.step,
                                    bias=False)  # fmt: skip
                strided.weight = child.weight
                setattr(module, name, strided)
    return network


def step_seconds(network: nn.Module, images: torch.Tensor, bf16: bool) -> float:
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        network(images).float().sum().backward()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    print(f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{threads} threads; median of {args.steps} steps, interleaved")  # fmt: skip
    print("| width | px | images | precision | strided 1x1 ms | subsample + 1x1 ms | change |")
    print("|---|---|---|---|---|---|---|")
    for width, pixels, count in SHAPES:
        for bf16 in (False, True):
            torch.manual_seed(0)
            safe = SmallImageResNet18(width).to(memory_format=torch.channels_last)
            strided = with_strided_shortcuts(SmallImageResNet18(width))
            strided.load_state_dict(safe.state_dict())
            strided = strided.to(memory_format=torch.channels_last)
            images = torch.randn(count, 3, pixels, pixels).contiguous(
                memory_format=torch.channels_last
            )
            times: dict[str, list[float]] = {"strided": [], "safe": []}
            for _ in range(args.steps + 2):
                times["strided"].append(step_seconds(strided, images, bf16))
                times["safe"].append(step_seconds(safe, images, bf16))
            a, b = (statistics.median(times[k][2:]) * 1000 for k in ("strided", "safe"))
            print(f"| {width} | {pixels} | {count} | {'bf16' if bf16 else 'float32'} | "
                  f"{a:.1f} | {b:.1f} | {100 * (b / a - 1):+.1f}% |")  # fmt: skip


if __name__ == "__main__":
    main()
