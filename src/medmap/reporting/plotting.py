"""Figures of a map."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medmap.data.inject import ARTEFACT, DUPLICATE  # noqa: E402


def score_text(value: float | None, form: str) -> str:
    """A score for a title; an undefined one (NaN, or null in metrics.json) reads "n/a"."""
    return "n/a" if value is None or not np.isfinite(value) else format(value, form)


def run_title(metrics: dict) -> str:
    """One line naming a run and its scores: its map, its figures and its explorer page."""
    variant = f"aug={metrics['aug']}" if metrics.get("aug") else f"features={metrics['features']}"
    return (
        f"{metrics['method']} · {metrics['dataset']} · {variant} · "
        f"silhouette {score_text(metrics.get('silhouette'), '.2f')} · "
        f"kNN {score_text(metrics.get('knn_acc'), '.1f')}"
        + ("%" if metrics.get("knn_acc") is not None else "")
    )


def class_colours(count: int) -> np.ndarray:
    """Distinct colours for ``count`` classes (tab10/tab20, then a continuous map)."""
    if count <= 10:
        return plt.get_cmap("tab10")(np.arange(count))
    if count <= 20:
        return plt.get_cmap("tab20")(np.arange(count))
    return plt.get_cmap("turbo")(np.linspace(0, 1, count))


def class_handles(class_names: list[str], colours: np.ndarray) -> list:
    """Legend entries: one coloured dot per class name."""
    return [
        plt.Line2D([], [], marker="o", linestyle="", color=colours[i], label=name)
        for i, name in enumerate(class_names)
    ]


def finish_map_figure(figure, axes, handles: list, title: str, path: str | Path):
    """Legend below the map, equal aspect, no ticks, title; saved and closed."""
    legend = axes.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.02),
        ncol=3 if len(handles) > 8 else 2,
        frameon=False,
        fontsize=8,
    )
    axes.set_aspect("equal", adjustable="box")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title, fontsize=9)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return legend


# How planted images (data/inject.py codes) are marked on a map: kind -> (marker, legend).
PLANTED_MARKS = {DUPLICATE: ("o", "planted duplicates"), ARTEFACT: ("X", "painted artefacts")}


def scatter_map(axes, embedding, labels, colours, planted: np.ndarray | None = None) -> list:
    """The class-coloured scatter (in a fixed random order, so no class hides another), with
    planted images (``planted``: 0 untouched, 1 duplicate, 2 artefact) marked in black by
    kind. Returns legend handles for the marks."""
    order = np.random.default_rng(0).permutation(len(labels))
    size = float(np.clip(2000 / max(len(labels), 1), 0.5, 30))
    axes.scatter(*embedding[order].T, c=colours[labels[order]], s=size, linewidths=0,
                 rasterized=True)  # fmt: skip
    if planted is None:
        return []
    handles = []
    for code, (marker, name) in PLANTED_MARKS.items():
        chosen = planted == code
        if chosen.any():
            axes.scatter(*embedding[chosen].T, s=max(size * 6, 12), marker=marker,
                         facecolors="none", edgecolors="black", linewidths=0.6)  # fmt: skip
            label = f"{name} ({chosen.sum()})"
            handles.append(plt.Line2D([], [], marker=marker, linestyle="", color="black",
                                      markerfacecolor="none", label=label))  # fmt: skip
    return handles


def plot_map(
    embedding: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    path: str | Path,
    title: str = "",
    planted: np.ndarray | None = None,
) -> list[str]:
    """Scatter of the map coloured by class, with the class names in the legend (returned),
    and planted duplicates and artefacts marked (``planted`` codes, see ``scatter_map``).
    Without class names (an unlabeled collection) all points share one colour."""
    figure, axes = plt.subplots(figsize=(7, 8), dpi=150)
    colours = class_colours(max(1, len(class_names)))
    marks = scatter_map(axes, embedding, labels, colours, planted)
    legend = finish_map_figure(
        figure, axes, class_handles(class_names, colours) + marks, title, path
    )
    return [text.get_text() for text in legend.get_texts()][: len(class_names)]


def plot_new_over_map(
    old: np.ndarray,
    old_labels: np.ndarray,
    new: np.ndarray,
    new_labels: np.ndarray,
    class_names: list[str],
    path: str | Path,
    title: str = "",
) -> None:
    """New points (outlined, by class) over the existing map (faded): where new images land."""
    figure, axes = plt.subplots(figsize=(7, 8), dpi=150)
    colours = class_colours(len(class_names))
    axes.scatter(old[:, 0], old[:, 1], c=colours[old_labels], s=2, alpha=0.12, linewidths=0,
                 rasterized=True)  # fmt: skip
    axes.scatter(new[:, 0], new[:, 1], c=colours[new_labels], s=9, edgecolors="black",
                 linewidths=0.3, rasterized=True)  # fmt: skip
    finish_map_figure(figure, axes, class_handles(class_names, colours), title, path)
