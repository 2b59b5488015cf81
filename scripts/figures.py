"""Figures from finished runs under outputs/ (no training): `make figures`.

For each dataset and budget: a thumbnail map and a grid view of each trained run (lowest
seed per method and augmentation), and the comparison panel t-SNE of pixels | t-SNE of
ImageNet features | t-SimCNE default | t-SimCNE rot90. Written to
outputs/figures/<budget>/<dataset>/ as PNG and PDF.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from medmap.errors import UserFacingError
from medmap.reporting.explorer import load_run_images
from medmap.reporting.figures import comparison_panel, grid_view, thumbnail_map
from medmap.reporting.plotting import run_title, score_text
from medmap.reporting.tables import Run, collect_runs, latest_per_identity

REPO = Path(__file__).resolve().parents[1]
PANELS = (
    ("t-SNE of pixels", {"method": "tsne", "features": "pixels"}),
    ("t-SNE of ImageNet features", {"method": "tsne", "features": "resnet18"}),
    ("t-SimCNE default", {"method": "tsimcne", "aug": "default"}),
    ("t-SimCNE rot90", {"method": "tsimcne", "aug": "rot90"}),
)


def lowest_seed(runs: list[Run]) -> list[Run]:
    chosen: dict[tuple, Run] = {}
    for run in sorted(runs, key=lambda r: r.identity.get("seed") or 0, reverse=True):
        key = tuple(v for k, v in run.identity.items() if k != "seed")
        chosen[key] = run
    return list(chosen.values())


def figures_for(dataset: str, budget: str, runs: list[Run], root: Path) -> list[Path]:
    written = []
    out = root / str(budget) / dataset
    for run in lowest_seed(runs):
        if run.identity["method"] == "tsne":
            continue
        embedding = np.load(run.directory / "embedding.npy")
        labels = np.load(run.directory / "labels.npy")
        try:
            images = load_run_images(run.directory, labels)
        except UserFacingError as error:
            print(f"skipped {run.directory}: {error}")
            continue
        injected_file = run.directory / "injected.npy"
        planted = np.load(injected_file) if injected_file.is_file() else None
        name = f"{run.identity['method']}-{run.identity['aug']}-seed{run.identity['seed']}"
        title = run_title(run.metrics)
        names = run.metrics["class_names"]
        written += thumbnail_map(
            embedding, labels, names, images, out / f"{name}-map", title, planted=planted
        )
        written += grid_view(embedding, images, out / f"{name}-grid", title=title)
    panels, class_names = [], None
    for title, match in PANELS:
        found = sorted((r for r in runs if r.matches(match)), key=lambda r: r.identity["seed"])
        if not found and match.get("features") == "resnet18":
            found = [r for r in runs if r.matches({"method": "tsne", "features": "resnet152"})]
        if found:
            run = found[0]
            class_names = run.metrics["class_names"]
            embedding = np.load(run.directory / "embedding.npy")
            labels = np.load(run.directory / "labels.npy")
            knn = score_text(run.metrics["knn_acc"], ".1f")
            panels.append((title, embedding, labels, f"kNN acc. {knn}%", ""))
        else:
            panels.append((title, None, None, None, "no finished run"))
    if class_names and sum(p[1] is not None for p in panels) >= 2:
        written += comparison_panel(panels, class_names, out / "comparison")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outputs", type=Path, default=REPO / "outputs")
    args = parser.parse_args()
    finished = [r for r in latest_per_identity(collect_runs(args.outputs)) if r.status == "ok"]
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in finished:
        groups[run.identity["dataset"], run.identity["budget"]].append(run)
    for (dataset, budget), runs in sorted(groups.items(), key=str):
        for path in figures_for(dataset, budget, runs, args.outputs / "figures"):
            print(path)


if __name__ == "__main__":
    main()
