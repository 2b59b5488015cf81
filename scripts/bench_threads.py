"""Training throughput on this CPU: one run on every core, one run on one core, and one
single-core run per core at the same time. On a 2-core host this decides whether a table sweep
should run its jobs one after another (each on both cores) or side by side (each on one).

    python scripts/bench_threads.py [--repeats 3] [hydra overrides, default: the cpu budget]

Each setting runs the real training step (two augmented views, forward, loss, backward, SGD;
``medmap.runtime.time_budget.measure_step_seconds``) of the configured run on its data, in
processes of its own. Prints a markdown table of views/s per process and in all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OVERRIDES = ["experiment=cpu", "dataset=bloodmnist", "aug=randrot"]


def wait_for_the_others(barrier: Path, parties: int) -> None:
    """Start timing only when every process of the setting has loaded its data."""
    (barrier / str(os.getpid())).touch()
    while len(list(barrier.iterdir())) < parties:
        time.sleep(0.05)


def measure_in_this_process(
    threads: int, repeats: int, overrides: list[str], barrier: Path, parties: int
) -> dict:
    import torch

    torch.set_num_threads(threads)
    from medmap.api import compose_config
    from medmap.builders import build_module, effective_batch_size
    from medmap.data import load_dataset
    from medmap.runtime.devices import training_device
    from medmap.runtime.time_budget import measure_step_seconds

    cfg = compose_config(overrides, REPO / "outputs" / "bench-threads")
    collection = load_dataset(cfg.dataset, cfg.seed)
    batch_size = effective_batch_size(cfg.method.batch_size, len(collection))
    module = build_module(cfg, collection, batch_size)
    device = training_device(cfg.trainer)
    wait_for_the_others(barrier, parties)
    seconds = min(
        measure_step_seconds(module, collection.images, batch_size, device, bf16=False)
        for _ in range(repeats)
    )
    return {
        "threads": threads,
        "step_seconds": seconds,
        "views_per_second": 2 * batch_size / seconds,
    }


def launch(threads: int, repeats: int, overrides: list[str], barrier: Path, parties: int):
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--worker", str(threads), "--repeats", str(repeats),
               "--barrier", str(barrier), "--parties", str(parties)]  # fmt: skip
    return subprocess.Popen(
        [*command, *overrides], cwd=REPO, env=environment, stdout=subprocess.PIPE, text=True
    )


def collect(processes: list[subprocess.Popen]) -> list[dict]:
    found = []
    for process in processes:
        output, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"a measuring process failed (exit {process.returncode})")
        found.append(json.loads(output.strip().splitlines()[-1]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--barrier", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parties", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", default=DEFAULT_OVERRIDES)
    args = parser.parse_args()
    if args.worker:
        found = measure_in_this_process(
            args.worker, args.repeats, args.overrides, args.barrier, args.parties
        )
        print(json.dumps(found))
        return
    cores = os.cpu_count() or 1
    settings = {
        f"one run on all {cores} cores": [(cores, 1)],
        "one run on one core": [(1, 1)],
        f"{cores} single-core runs at once": [(1, cores)],
    }
    print(f"{' '.join(args.overrides)}; {cores} cores\n")
    print("| setting | s/step per run | views/s per run | views/s in all |\n|---|---|---|---|")
    for name, [(threads, count)] in settings.items():
        with tempfile.TemporaryDirectory() as barrier:
            found = collect([launch(threads, args.repeats, args.overrides, Path(barrier), count)
                             for _ in range(count)])  # fmt: skip
        steps = ", ".join(f"{result['step_seconds']:.3f}" for result in found)
        rates = [result["views_per_second"] for result in found]
        per_run = ", ".join(f"{rate:.0f}" for rate in rates)
        print(f"| {name} | {steps} | {per_run} | {sum(rates):.0f} |", flush=True)


if __name__ == "__main__":
    main()
