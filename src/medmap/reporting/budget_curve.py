"""The map a user gets for the minutes they give (``scripts/map_per_minute.py``): silhouette,
kNN and linear accuracy against training minutes, one curve per training recipe.

A point is one schedule of one recipe, trained with one or more seeds in its own directory
(``<output>/<recipe>-<epochs>-seed<k>``). Its minutes are the *fastest* of its seeds' training
times: runs that shared the cores with other work only took longer, never less.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from medmap.reporting.tables import mean_std  # noqa: E402

METRICS = ("silhouette", "knn_acc", "linear_acc")


def point_name(recipe: str, epochs: list[int], seed: int) -> str:
    """The run directory of one seed of one point, e.g. ``stride2-9-1-8-seed0``."""
    return f"{recipe}-{'-'.join(str(count) for count in epochs)}-seed{seed}"


def curve_rows(recipes: list[dict[str, Any]], output: Path) -> list[dict[str, Any]]:
    """One row per point that has at least one finished seed: recipe, schedule, seeds found,
    minutes (fastest seed) and each metric's mean and standard deviation over the seeds."""
    rows = []
    for recipe in recipes:
        for point in recipe["points"]:
            found = []
            for seed in range(point.get("seeds", 1)):
                metrics = (
                    output / point_name(recipe["name"], point["epochs"], seed) / "metrics.json"
                )
                if metrics.is_file():
                    found.append(json.loads(metrics.read_text()))
            if not found:
                continue
            row = {
                "recipe": recipe["name"],
                "label": recipe["label"],
                "epochs": list(point["epochs"]),
                "seeds": len(found),
                "minutes": min(run["train_seconds"] for run in found) / 60,
            }
            for metric in METRICS:
                row[metric], row[f"{metric}_std"] = mean_std([run[metric] for run in found])
            rows.append(row)
    return rows


def curve_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (means ± std where more than one seed ran)."""

    def cell(row: dict[str, Any], metric: str, digits: int) -> str:
        mean, std = row[metric], row[f"{metric}_std"]
        return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if row["seeds"] > 1 else "")

    lines = [
        "| recipe | epochs | total | minutes | seeds | silhouette | kNN % | linear % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['epochs']} | {sum(row['epochs'])} | {row['minutes']:.1f} "
            f"| {row['seeds']} | {cell(row, 'silhouette', 3)} | {cell(row, 'knn_acc', 1)} "
            f"| {cell(row, 'linear_acc', 1)} |"
        )
    return "\n".join(lines) + "\n"


def plot_curve(rows: list[dict[str, Any]], goals: dict[str, list[float]], path: Path) -> Path:
    """Silhouette and kNN accuracy against minutes, a line per recipe (error bars: std over
    seeds); dashed lines mark ``goals`` (metric -> values)."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for axis, metric, title in zip(
        axes, ("silhouette", "knn_acc"), ("silhouette", "kNN accuracy (%)")
    ):
        for label in dict.fromkeys(row["label"] for row in rows):
            points = sorted(
                (row for row in rows if row["label"] == label), key=lambda r: r["minutes"]
            )
            axis.errorbar([row["minutes"] for row in points], [row[metric] for row in points],
                          yerr=[row[f"{metric}_std"] for row in points], marker="o", capsize=3,
                          label=label)  # fmt: skip
        for goal in goals.get(metric, []):
            axis.axhline(goal, color="grey", linestyle="--", linewidth=1)
        axis.set_xlabel("minutes of training")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False,
                  bbox_to_anchor=(0.5, -0.02))  # fmt: skip
    figure.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
