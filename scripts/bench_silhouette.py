"""Time ``medmap.evaluation.silhouette`` (chunked, torch) against scikit-learn's
``silhouette_score`` on the same map, and check that they agree (docs/method.md §4 asks for all
points).

    python scripts/bench_silhouette.py [--points 49152] [--classes 8] [--device cpu]

Prints a Markdown row; the recorded results are in results/silhouette.md.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from sklearn.metrics import silhouette_score

from medmap.evaluation import silhouette


def timed(function, *args, **kwargs) -> tuple[float, float]:
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=49152)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-sklearn", action="store_true", help="ours only (large N)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, args.classes, args.points)
    centres = rng.normal(scale=20.0, size=(args.classes, 2))
    embedding = centres[labels] + rng.normal(scale=5.0, size=(args.points, 2))
    ours, ours_seconds = timed(silhouette, embedding, labels, device=args.device)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print("| points | device | medmap s | scikit-learn s | ratio | difference |")
    if args.skip_sklearn:
        print(f"| {args.points} | {args.device} | {ours_seconds:.2f} | – | – | – |")
        return
    reference, reference_seconds = timed(silhouette_score, embedding, labels)
    print(
        f"| {args.points} | {args.device} | {ours_seconds:.2f} | {reference_seconds:.2f} | "
        f"{ours_seconds / reference_seconds:.3f} | {abs(ours - reference):.1e} |"
    )


if __name__ == "__main__":
    main()
