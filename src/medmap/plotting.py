"""Figures of a map."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def class_colours(count: int) -> np.ndarray:
    """Distinct colours for ``count`` classes (tab10/tab20, then a continuous map)."""
    if count <= 10:
        return plt.get_cmap("tab10")(np.arange(count))
    if count <= 20:
        return plt.get_cmap("tab20")(np.arange(count))
    return plt.get_cmap("turbo")(np.linspace(0, 1, count))


def plot_map(
    embedding: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    path: str | Path,
    title: str = "",
) -> None:
    """Scatter of the map coloured by class, with the class names in the legend."""
    figure, axes = plt.subplots(figsize=(8, 6.5), dpi=150)
    colours = class_colours(len(class_names))
    point_size = float(np.clip(2000 / max(len(labels), 1), 0.5, 30))
    order = np.random.default_rng(0).permutation(len(labels))  # no class hides another
    axes.scatter(
        embedding[order, 0],
        embedding[order, 1],
        c=colours[labels[order]],
        s=point_size,
        linewidths=0,
        rasterized=True,
    )
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=colours[i], label=name)
        for i, name in enumerate(class_names)
    ]
    axes.legend(
        handles=handles,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=False,
        fontsize=8,
        markerscale=1.2,
    )
    axes.set_aspect("equal", adjustable="datalim")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
