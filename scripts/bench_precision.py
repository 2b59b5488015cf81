"""Training-step speed of the cpu budget's network in float32, float32 + channels_last and
bf16 autocast + channels_last on this machine: why ``trainer.precision=auto`` exists.

    python scripts/bench_precision.py [--width 16] [--views 256] [--steps 3]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from medmap.models import SmallImageResNet18
from medmap.runtime.devices import cpu_flags, native_bf16


def time_step(width: int, views: int, steps: int, channels_last: bool, bf16: bool) -> float:
    """Seconds per SGD step on ``views`` random 28x28 images (after one warm-up step)."""
    torch.manual_seed(0)
    network, batch = SmallImageResNet18(width), torch.randn(views, 3, 28, 28)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
        batch = batch.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output = network(batch)
        output.float().pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()

    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--views", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    bf16_flags = sorted({"avx512_bf16", "amx_bf16"} & cpu_flags()) or "none"
    print(f"CPU: {platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, capability {torch.backends.cpu.get_cpu_capability()}, "
          f"bf16 flags {bf16_flags}; precision=auto picks "
          f"{'bf16-mixed' if native_bf16('cpu') else '32-true'}")  # fmt: skip
    print("| setting | s/step | views/s |\n|---|---|---|")
    for name, channels_last, bf16 in (
        ("float32", False, False),
        ("float32 + channels_last", True, False),
        ("bf16 autocast + channels_last", True, True),
    ):
        seconds = time_step(args.width, args.views, args.steps, channels_last, bf16)
        print(f"| {name} | {seconds:.3f} | {args.views / seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
