"""Can a score without labels rank a collection's augmentations as its labels do? (issue 24,
item 7: for `make ablation` on unlabeled collections.)

    python scripts/label_free_scores.py <run dir or folder of runs> ... [--output FILE.md]

For every finished, labeled 2-D map under the given paths (``metrics.json`` + ``embedding.npy``)
it computes candidate scores that read the map alone, on the same 5,000 points of each map
(standardised):

- ``cluster_separation`` (medmap.evaluation, what `make ablation` ranks unlabeled collections
  by): the best silhouette of a k-means partition of the map, k = 2..12 (is the map made of
  well separated groups?);
- ``hdbscan_clustered``: the share of points HDBSCAN (min_cluster_size 50) puts in a cluster
  rather than in noise (how much of the map is dense groups?);
- ``neighbour_contrast``: minus the mean distance to the 15 nearest neighbours over the mean
  distance between random pairs (how much tighter are neighbourhoods than the map?).

and prints, and with ``--output`` writes, one row per map and the Spearman rank correlation of
each candidate with the labels' silhouette and kNN accuracy (``--seed``: the sample's); where
a method and augmentation has several maps (seeds), the same for their means, the ranking
`make ablation` makes.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.cluster import HDBSCAN
from sklearn.neighbors import NearestNeighbors

from medmap.evaluation import cluster_separation, unit_spread_sample

CANDIDATES = ("cluster_separation", "hdbscan_clustered", "neighbour_contrast")
# neighbour contrast spans a narrow range: its fourth decimal tells the maps apart
DECIMALS = {"cluster_separation": 3, "hdbscan_clustered": 3, "neighbour_contrast": 4}


def candidate_cells(row: dict) -> str:
    return " | ".join(f"{row[name]:.{DECIMALS[name]}f}" for name in CANDIDATES)


def label_free_scores(embedding: np.ndarray, points: int = 5000, seed: int = 0) -> dict:
    sample = unit_spread_sample(embedding, points, seed)
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sklearn's HDBSCAN copy= default
        clusters = HDBSCAN(min_cluster_size=50).fit_predict(sample)
    distances, _ = NearestNeighbors(n_neighbors=16).fit(sample).kneighbors(sample)
    pairs = rng.integers(0, len(sample), (2, 5000))
    spread = np.linalg.norm(sample[pairs[0]] - sample[pairs[1]], axis=1).mean()
    return {
        "cluster_separation": cluster_separation(embedding, points=points, seed=seed),
        "hdbscan_clustered": float((clusters >= 0).mean()),
        "neighbour_contrast": float(-distances[:, 1:].mean() / spread),
    }


def finished_maps(paths: list[Path], method: str | None) -> list[Path]:
    """The labeled 2-D maps under ``paths`` (of ``method`` only, when given)."""
    runs = []
    for path in paths:
        for metrics in sorted(path.rglob("metrics.json")):
            run = metrics.parent
            record = json.loads(metrics.read_text())
            if method and record.get("method") != method:
                continue
            if (run / "embedding.npy").is_file() and record.get("silhouette") is not None:
                runs.append(run)
    return runs


def correlations(rows: list[dict]) -> list[str]:
    """Spearman rank correlation of each candidate with the class scores, as table lines."""
    lines = ["| candidate | Spearman with silhouette | Spearman with kNN |", "|---|---|---|"]
    for name in CANDIDATES:
        values = [row[name] for row in rows]
        with_silhouette = spearmanr(values, [row["silhouette"] for row in rows])[0]
        with_knn = spearmanr(values, [row["knn_acc"] for row in rows])[0]
        lines.append(f"| {name} | {with_silhouette:+.2f} | {with_knn:+.2f} |")
    return lines


def aug_means(rows: list[dict]) -> list[dict]:
    """One row per (method, aug): every score's mean over its maps (the seeds)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["aug"]), []).append(row)
    scores = ("silhouette", "knn_acc", *CANDIDATES)
    return [{"method": method, "aug": aug, "maps": len(group),
             **{name: float(np.mean([row[name] for row in group])) for name in scores}}
            for (method, aug), group in groups.items()]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default="tsimcne", help="only its maps ('' for all)")
    args = parser.parse_args()
    rows = []
    for run in finished_maps(args.paths, args.method):
        metrics = json.loads((run / "metrics.json").read_text())
        scores = label_free_scores(np.load(run / "embedding.npy"), seed=args.seed)
        rows.append({"run": run.name, "method": metrics.get("method"), "aug": metrics.get("aug"),
                     "silhouette": metrics["silhouette"], "knn_acc": metrics["knn_acc"],
                     **scores})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    lines = ["| run | silhouette | kNN | " + " | ".join(CANDIDATES) + " |",
             "|---|---|---|" + "---|" * len(CANDIDATES)]  # fmt: skip
    for row in rows:
        lines.append(f"| {row['run']} | {row['silhouette']:.3f} | {row['knn_acc']:.1f} | "
                     f"{candidate_cells(row)} |")  # fmt: skip
    lines += ["", f"Over the {len(rows)} maps:", "", *correlations(rows)]
    means = aug_means(rows)
    if len(means) < len(rows):  # several seeds of an augmentation: rank the augmentations
        lines += ["", "Means over each augmentation's maps (its seeds; what `make ablation` "
                  "ranks):", "",
                  "| method | aug | maps | silhouette | kNN | " + " | ".join(CANDIDATES) + " |",
                  "|---|---|---|---|---|" + "---|" * len(CANDIDATES)]  # fmt: skip
        for row in sorted(means, key=lambda r: -r["silhouette"]):
            lines.append(f"| {row['method']} | {row['aug']} | {row['maps']} | "
                         f"{row['silhouette']:.3f} | {row['knn_acc']:.1f} | "
                         f"{candidate_cells(row)} |")  # fmt: skip
        lines += ["", *correlations(means)]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)


if __name__ == "__main__":
    main()
