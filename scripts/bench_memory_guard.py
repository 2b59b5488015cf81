"""How close the memory guard's estimate (src/medmap/runtime/memory.py) comes to a real step's peak.

    python scripts/bench_memory_guard.py            (each case runs in its own process)

For each (width, image size, batch) it measures the growth of the process's peak RSS over one
real float32 training step on the CPU and prints it beside the guard's estimate.
"""

from __future__ import annotations

import resource
import subprocess
import sys

import numpy as np
import torch

CASES = [(16, 28, 256), (64, 28, 128), (16, 96, 64), (64, 96, 32)]


def one_case(width: int, size: int, batch: int) -> str:
    from medmap.api import compose_config
    from medmap.builders import build_module
    from medmap.data import ImageCollection
    from medmap.runtime.memory import measure_step_memory

    cfg = compose_config(["experiment=smoke", f"model.width={width}", "model.head_hidden=1024"],
                         "outputs/bench-memory")  # fmt: skip
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    module = build_module(cfg, ImageCollection("x", images, np.zeros(batch), ["a"]), batch)
    estimate = measure_step_memory(module, size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
    views = torch.rand(2 * batch, 3, size, size)
    module.loss_fn(*module(views).chunk(2)).backward()
    optimizer.step()
    measured = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    guess = estimate.step_bytes(batch)
    return (f"| {width} | {size} | {batch} | {measured / 2**20:.0f} | {guess / 2**20:.0f} | "
            f"{guess / measured:.2f} |")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 4:
        print(one_case(*map(int, sys.argv[1:])))
    else:
        print("| width | px | batch | measured MiB | estimate MiB | estimate / measured |")
        print("|---|---|---|---|---|---|")
        for case in CASES:
            done = subprocess.run([sys.executable, __file__, *map(str, case)],
                                  capture_output=True, text=True)  # fmt: skip
            print(done.stdout.strip().splitlines()[-1] if done.returncode == 0 else done.stderr)
