"""Publication figures from finished runs (``make figures``; docs/method.md §7), PNG and PDF.

- ``thumbnail_map``: the map coloured by class with example images placed on it and the
  classes named at their centres (the study's Figure 3).
- ``comparison_panel``: maps side by side in the same class colours, each titled with its
  scores (the Leukemia figure: t-SNE of pixels | of pretrained features | t-SimCNE default |
  t-SimCNE rot90; the ablation report's and the reproduction's maps).
- ``grid_view``: the map cut into cells, each showing the image nearest its cell's centre
  of mass (a typical image of that region).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects as path_effects  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402

from medmap.reporting.plotting import class_colours, class_handles, scatter_map  # noqa: E402


def save_both(figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:  # no creation date in the PDF: an unchanged figure rebuilds the same bytes
        metadata = {"CreationDate": None} if path.suffix == ".pdf" else None
        figure.savefig(path, bbox_inches="tight", dpi=200, metadata=metadata)
    plt.close(figure)
    return paths


def representative_points(embedding: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Indices of ``count`` points spread over the map: the point nearest each k-means
    centre, so thumbnails cover every region, dense or not."""
    count = min(count, len(embedding))
    centres = KMeans(n_clusters=count, n_init=1, random_state=seed).fit(embedding).cluster_centers_
    distances = ((embedding[None, :, :] - centres[:, None, :]) ** 2).sum(-1)
    return np.unique(distances.argmin(axis=1))


def _scatter(axes, embedding, labels, colours, planted=None) -> list:
    handles = scatter_map(axes, embedding, labels, colours, planted)
    axes.set_aspect("equal", adjustable="datalim")
    axes.set_xticks([])
    axes.set_yticks([])
    return handles


def thumbnail_map(
    embedding: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    images: np.ndarray,
    stem: Path,
    title: str = "",
    thumbnails: int = 40,
    planted: np.ndarray | None = None,
) -> list[Path]:
    figure, axes = plt.subplots(figsize=(9, 9))
    colours = class_colours(max(1, len(class_names)))  # unlabeled: one colour
    marks = _scatter(axes, embedding, labels, colours, planted)
    zoom = 28 / images.shape[1] * 0.9
    for index in representative_points(embedding, thumbnails):
        box = OffsetImage(images[index], zoom=zoom, interpolation="nearest")
        axes.add_artist(
            AnnotationBbox(box, embedding[index], frameon=True, pad=0.1,
                           bboxprops={"edgecolor": colours[labels[index]], "linewidth": 1.2})
        )  # fmt: skip
    for label, name in enumerate(class_names):
        members = embedding[labels == label]
        if len(members):
            text = axes.text(*np.median(members, axis=0), name, fontsize=8, ha="center",
                             va="center", weight="bold", color=colours[label])  # fmt: skip
            text.set_path_effects([path_effects.withStroke(linewidth=2.5, foreground="white")])
    if marks:
        axes.legend(handles=marks, loc="upper right", fontsize=8)
    axes.set_title(title, fontsize=10)
    return save_both(figure, stem)


def comparison_panel(
    panels: list[tuple[str, np.ndarray | None, np.ndarray | None, str, str]],
    class_names: list[str],
    stem: Path,
) -> list[Path]:
    """Maps side by side in the same class colours. ``panels``: (title, embedding, labels,
    caption under the title, e.g. its scores, note); a panel without an embedding shows its
    note (e.g. why that run is missing). No class names: one colour (an unlabeled collection)."""
    figure, axes_row = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.6))
    colours = class_colours(max(len(class_names), 1))
    for axes, (title, embedding, labels, caption, note) in zip(np.atleast_1d(axes_row), panels):
        if embedding is None:
            axes.text(0.5, 0.5, note, ha="center", va="center", wrap=True, fontsize=8,
                      transform=axes.transAxes)  # fmt: skip
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_title(title, fontsize=10)
            continue
        _scatter(axes, embedding, labels, colours)
        axes.set_title(f"{title}\n{caption}" if caption else title, fontsize=10)
    if class_names:
        handles = class_handles(class_names, colours)
        figure.legend(handles=handles, loc="lower center", ncol=min(8, len(class_names)),
                      frameon=False, fontsize=8, bbox_to_anchor=(0.5, -0.08))  # fmt: skip
    return save_both(figure, stem)


def grid_view(
    embedding: np.ndarray, images: np.ndarray, stem: Path, cells: int = 20, title: str = ""
) -> list[Path]:
    low, high = embedding.min(axis=0), embedding.max(axis=0)
    cell_of = np.minimum(((embedding - low) / (high - low + 1e-12) * cells).astype(int), cells - 1)
    size = images.shape[1]
    canvas = np.full((cells * size, cells * size, 3), 255, dtype=np.uint8)
    for column in range(cells):
        for row in range(cells):
            members = np.flatnonzero((cell_of[:, 0] == column) & (cell_of[:, 1] == row))
            if len(members) == 0:
                continue
            centre = embedding[members].mean(axis=0)
            typical = members[((embedding[members] - centre) ** 2).sum(1).argmin()]
            top = (cells - 1 - row) * size  # map y grows upwards
            canvas[top : top + size, column * size : (column + 1) * size] = images[typical]
    figure, axes = plt.subplots(figsize=(9, 9))
    axes.imshow(canvas, interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title, fontsize=10)
    return save_both(figure, stem)
