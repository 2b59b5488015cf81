"""An interactive map of a run in one self-contained HTML file (works offline, no CDN).

Zoom (wheel) and pan (drag) the map, show or hide classes in the legend, hover a point to see
its image, class and index, shift-drag a rectangle to list the images inside it, and browse
the most isolated images (``outliers.csv``). Every name from files or folders reaches the
page as JSON data and is shown with ``textContent``, never parsed as HTML.
"""

from __future__ import annotations

import base64
import io
import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
from matplotlib.colors import to_hex
from omegaconf import OmegaConf
from PIL import Image

from medmap.data import load_dataset
from medmap.errors import UserFacingError
from medmap.plotting import class_colours, run_title


def thumbnail_atlas(images: np.ndarray, size: int, quality: int) -> tuple[str, int, int]:
    """All images as one JPEG sprite sheet (a data URI), each in a cell of ``cell`` pixels
    (``size`` rounded up to JPEG's 8-pixel blocks so neighbours do not bleed into each other).
    Returns the URI, the cell size and the number of columns."""
    cell = 8 * math.ceil(size / 8)
    columns = max(1, math.ceil(math.sqrt(len(images))))
    rows = max(1, math.ceil(len(images) / columns))
    sheet = Image.new("RGB", (columns * cell, rows * cell))
    for index, pixels in enumerate(images):
        thumbnail = Image.fromarray(pixels)
        if thumbnail.size != (size, size):
            thumbnail = thumbnail.resize((size, size), Image.Resampling.BICUBIC)
        sheet.paste(thumbnail, ((index % columns) * cell, (index // columns) * cell))
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode(), cell, columns


def _html_json(payload: dict) -> str:
    """JSON that cannot close the <script> element it sits in."""
    return json.dumps(payload, separators=(",", ":")).replace("<", "\\u003c")


def write_explorer(
    path: str | Path,
    embedding: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    images: np.ndarray,
    title: str = "",
    outliers: list[int] | None = None,
    thumbnail_size: int = 32,
    jpeg_quality: int = 90,
) -> Path:
    """Write the explorer page for a map of ``images`` (uint8 N x H x W x 3)."""
    if not len(embedding) == len(labels) == len(images):
        raise ValueError(
            f"{len(embedding)} map points, {len(labels)} labels and {len(images)} images"
        )
    atlas, cell, columns = thumbnail_atlas(images, thumbnail_size, jpeg_quality)
    colours = [to_hex(rgba) for rgba in class_colours(len(class_names))]
    payload = {
        "title": title,
        "x": np.round(embedding[:, 0].astype(float), 4).tolist(),
        "y": np.round(embedding[:, 1].astype(float), 4).tolist(),
        "labels": np.asarray(labels).astype(int).tolist(),
        "classNames": [str(name) for name in class_names],
        "colours": colours,
        "outliers": [int(i) for i in (outliers or [])],
        "atlas": {"cell": cell, "size": thumbnail_size, "columns": columns},
    }
    template = resources.files("medmap").joinpath("explorer.html").read_text()
    page = template.replace("__DATA__", _html_json(payload)).replace(
        "__ATLAS__", _html_json({"src": atlas})
    )
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path


def load_run_images(run_dir: Path, labels: np.ndarray) -> np.ndarray:
    """The run's images in map order, reloaded through its own dataset config (the images are
    not copied into run directories). Refuses data that no longer matches the run's labels."""
    saved = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    collection = load_dataset(saved.dataset, saved.seed)
    if len(collection) != len(labels) or not np.array_equal(collection.labels, labels):
        raise UserFacingError(
            f"The dataset the run {run_dir} was trained on no longer matches it "
            f"({len(collection)} images now, {len(labels)} in the run). Set DATA_DIR (or the "
            "dataset's root/path) to the data the run used."
        )
    return collection.images


def explore_run(
    run_dir: str | Path,
    output: str | Path | None = None,
    thumbnail_size: int = 32,
    jpeg_quality: int = 90,
    outliers_shown: int = 50,
) -> Path:
    """The explorer page of a run directory written by train.py (default: <run>/explorer.html)."""
    run_dir = Path(run_dir)
    if not (run_dir / "embedding.npy").is_file():
        raise UserFacingError(
            f"{run_dir} holds no embedding.npy: point run= at a finished train.py run directory."
        )
    embedding = np.load(run_dir / "embedding.npy")
    labels = np.load(run_dir / "labels.npy")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    outliers = []
    if (run_dir / "outliers.csv").is_file():
        rows = (run_dir / "outliers.csv").read_text().splitlines()[1 : outliers_shown + 1]
        outliers = [int(row.split(",")[1]) for row in rows]
    return write_explorer(
        Path(output) if output else run_dir / "explorer.html",
        embedding,
        labels,
        metrics["class_names"],
        load_run_images(run_dir, labels),
        title=run_title(metrics),
        outliers=outliers,
        thumbnail_size=thumbnail_size,
        jpeg_quality=jpeg_quality,
    )
