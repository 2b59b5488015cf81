"""An interactive map of a run in one self-contained HTML file (works offline, no CDN), made to
find problems in the data: which image is where, what its neighbours are, which ones look wrong.

Zoom (wheel) and pan (drag) the map; hover a point for its image, id, class and metadata; click
it for its nearest images in the map and in the backbone's feature space; shift-drag a rectangle
to list the images inside it and download them as CSV; find an image by id; browse the likeliest
label errors (``suspects.csv``), the closest near-duplicate pairs (``duplicates.csv``) and the
most isolated images (``outliers.csv``); colour the points by class or by any column of
``map.csv``. Every name from files or folders reaches the page as JSON data and is shown with
``textContent``, never parsed as HTML.

Sized for large maps: coordinates and neighbour lists travel as packed binary arrays, the page
hit-tests through a uniform grid, and the thumbnails sit in several sprite sheets of bounded size.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex
from omegaconf import OmegaConf
from PIL import Image
from sklearn.neighbors import NearestNeighbors

from medmap.data import load_dataset
from medmap.errors import UserFacingError
from medmap.reporting.plotting import class_colours, run_title
from medmap.reporting.run_files import MAP_COLUMNS

MAX_SHEET_SIDE = 2048  # pixels: one sheet decodes in well under a second when a hover needs it
NEIGHBOURS = 15  # map neighbours listed on click (as many as feature_neighbours.npy holds)
MAX_CATEGORIES = 20  # legend entries of a categorical colouring before the rest become "other"
RAMP_STEPS = 64  # colours of a continuous scale
UNLABELED_COLOUR = "#1f77b4"
OTHER_COLOUR = "#9e9e9e"  # also "missing" on a continuous scale

T = TypeVar("T")


@dataclass(frozen=True)
class Suspect:
    """A likely label error (a row of ``suspects.csv``): the image, the class its neighbours
    and the classifier favour instead of its own, and how sure the run is (0..1)."""

    index: int
    neighbours_class: str
    score: float

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Suspect:
        return cls(int(row["index"]), row["neighbours_class"], float(row["score"]))


@dataclass(frozen=True)
class DuplicatePair:
    """Two near-identical images (a row of ``duplicates.csv``) and their feature distance."""

    index_a: int
    index_b: int
    distance: float

    @classmethod
    def from_row(cls, row: dict[str, str]) -> DuplicatePair:
        return cls(int(row["index_a"]), int(row["index_b"]), float(row["distance"]))


@dataclass
class Colouring:
    """How the points are coloured (``title`` heads the legend): ``codes`` gives each point's
    entry in ``palette``.

    Categorical: ``categories`` names each palette entry (the legend, whose entries hide
    points). Continuous: ``value_range`` holds the values at the two ends of the palette's
    ramp; a point with code ``RAMP_STEPS`` has no value (the grey last palette entry)."""

    title: str
    palette: list[str]
    codes: np.ndarray
    categories: list[str] | None = None
    value_range: tuple[float, float] | None = None
    column: str | None = None  # the map.csv column coloured by (None: the classes)
    values: list[str] | None = None  # its value for each point (the tooltip shows it)


def class_colouring(labels: np.ndarray, class_names: Sequence[str]) -> Colouring:
    """The default: one colour per class, or a single one for an unlabeled collection."""
    if not class_names:
        return Colouring("Classes", [UNLABELED_COLOUR], np.zeros(len(labels), int), ["unlabeled"])
    palette = [to_hex(rgba) for rgba in class_colours(len(class_names))]
    return Colouring("Classes", palette, np.asarray(labels), [str(name) for name in class_names])


def column_colouring(
    name: str, values: Sequence[str], max_categories: int = MAX_CATEGORIES
) -> Colouring:
    """Colour by a column of text values: a continuous scale when every value given is a
    number (empty ones drawn grey), else one colour per value, the ``max_categories`` most
    frequent ones named and the rest pooled as "(other)"."""
    numbers = _as_numbers(values)
    if numbers is not None:
        present = numbers[~np.isnan(numbers)]
        low, high = float(present.min()), float(present.max())
        steps = np.round((numbers - low) / ((high - low) or 1.0) * (RAMP_STEPS - 1))
        codes = np.where(np.isnan(numbers), RAMP_STEPS, steps).astype(int)
        ramp = colormaps["viridis"](np.linspace(0, 1, RAMP_STEPS))
        palette = [to_hex(rgba) for rgba in ramp] + [OTHER_COLOUR]
        return Colouring(f"Colour: {name}", palette, codes, value_range=(low, high),
                         column=name, values=list(values))  # fmt: skip
    counts = Counter(values)
    kept = sorted(value for value, _ in counts.most_common(max_categories))
    code_of = {value: code for code, value in enumerate(kept)}
    codes = np.array([code_of.get(value, len(kept)) for value in values])
    palette = [to_hex(rgba) for rgba in class_colours(len(kept))]
    categories = [value if value else "(empty)" for value in kept]
    if len(counts) > len(kept):
        palette.append(OTHER_COLOUR)
        categories.append("(other)")
    return Colouring(f"Colour: {name}", palette, codes, categories, column=name,
                     values=list(values))  # fmt: skip


def _as_numbers(values: Sequence[str]) -> np.ndarray | None:
    """The values as floats (NaN where empty), or None unless all given ones are finite numbers."""
    numbers = np.full(len(values), np.nan)
    for i, value in enumerate(values):
        if value.strip() == "":
            continue
        try:
            numbers[i] = float(value)
        except ValueError:
            return None
        if not math.isfinite(numbers[i]):
            return None
    return None if np.isnan(numbers).all() else numbers


def map_neighbours(embedding: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """(N, k) each point's nearest other points in the map, closest first (the point itself
    is left out even where other points sit exactly on it)."""
    k = min(k, len(embedding) - 1)
    _, found = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding)
    others = found != np.arange(len(embedding))[:, None]
    others[others.all(axis=1), -1] = False  # itself crowded out by coincident points: drop the last
    return found[others].reshape(len(embedding), k)


def typical_order(
    neighbours: np.ndarray, damping: float = 0.85, iterations: int = 30
) -> np.ndarray:
    """Point indices, most typical first: PageRank over the map's nearest-neighbour graph (each
    point links to its k neighbours), so a point that many others count among their nearest
    ranks high. The explorer's images on the map show the most typical point of each region,
    the choice Apple's Embedding Atlas makes for its representative images."""
    n, k = neighbours.shape
    rank = np.full(n, 1.0 / n)
    for _ in range(iterations):
        passed = np.bincount(neighbours.ravel(), weights=np.repeat(rank / k, k), minlength=n)
        rank = (1 - damping) / n + damping * passed
    return np.argsort(-rank, kind="stable")


def thumbnail_sheets(
    images: np.ndarray, size: int, quality: int, max_side: int = MAX_SHEET_SIDE
) -> tuple[list[str], dict[str, int]]:
    """All images as JPEG sprite sheets (data URIs) of at most ``max_side`` pixels a side,
    filled in index order. Images larger than ``size`` are shrunk to it, smaller ones kept as
    they are (the page scales them); each sits in a cell rounded up to JPEG's 8-pixel blocks so
    neighbours do not bleed into each other. Returns the sheets and their layout."""
    thumbnails = shrunk(images, size)
    side = thumbnails.shape[1]
    cell = 8 * math.ceil(side / 8)
    cells_per_side = max_side // cell
    if cells_per_side < 1:
        raise ValueError(f"a sheet of {max_side} pixels cannot hold a {cell}-pixel thumbnail")
    columns = min(cells_per_side, max(1, math.ceil(math.sqrt(len(images)))))
    per_sheet = columns * cells_per_side
    sheets = []
    for start in range(0, len(images), per_sheet):
        chunk = thumbnails[start : start + per_sheet]
        rows = math.ceil(len(chunk) / columns)
        cells = np.zeros((rows * columns, cell, cell, 3), np.uint8)
        cells[: len(chunk), :side, :side] = chunk
        sheet = cells.reshape(rows, columns, cell, cell, 3).transpose(0, 2, 1, 3, 4)
        buffer = io.BytesIO()
        Image.fromarray(sheet.reshape(rows * cell, columns * cell, 3)).save(
            buffer, format="JPEG", quality=quality
        )
        sheets.append("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode())
    return sheets, {"cell": cell, "size": side, "columns": columns, "perSheet": per_sheet}


def shrunk(images: np.ndarray, size: int) -> np.ndarray:
    """The images at ``size`` pixels a side if they are larger (never enlarged: that would
    only add bytes to the page)."""
    if images.shape[1] <= size:
        return images
    return np.stack(
        [
            np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.LANCZOS))
            for pixels in images
        ]
    )


def _packed(array: np.ndarray, dtype: str) -> str:
    """A numeric array as base64 little-endian bytes: a typed array in the page, far smaller
    and faster to read than JSON numbers for hundreds of thousands of points."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode()


def _records(entries: Sequence[Suspect | DuplicatePair] | None) -> list[dict] | None:
    """Panel entries as JSON objects named like their fields (None: no panel)."""
    return None if entries is None else [asdict(entry) for entry in entries]


def _html_json(payload: object) -> str:
    """JSON that cannot close the <script> element it sits in."""
    return json.dumps(payload, separators=(",", ":")).replace("<", "\\u003c")


def write_explorer(
    path: str | Path,
    embedding: np.ndarray,
    images: np.ndarray,
    ids: Sequence[str],
    *,
    labels: np.ndarray | None = None,
    class_names: Sequence[str] = (),
    metadata: dict[str, Sequence[str]] | None = None,
    splits: Sequence[str] | None = None,
    colouring: Colouring | None = None,
    feature_neighbours: np.ndarray | None = None,
    outliers: Sequence[int] | None = None,
    suspects: Sequence[Suspect] | None = None,
    duplicates: Sequence[DuplicatePair] | None = None,
    title: str = "",
    thumbnail_size: int = 32,
    jpeg_quality: int = 90,
    max_sheet_side: int = MAX_SHEET_SIDE,
) -> Path:
    """Write the explorer page for a map (N x 2) of ``images`` (uint8 N x H x W x 3) named by
    ``ids``, in the same order.

    ``labels`` with ``class_names`` make a labeled page (no class names: unlabeled).
    ``metadata`` columns are shown on hover, and ``splits`` (train/val/test...) too, where
    duplicate pairs across splits are flagged; ``colouring`` defaults to the classes.
    ``feature_neighbours`` (N x k indices) are shown beside each point's map neighbours on
    click. A list left as None hides its panel (the run has no such file); an empty one says
    that nothing was found."""
    n = len(embedding)
    if not n == len(images) == len(ids):
        raise ValueError(f"{n} map points, {len(images)} images and {len(ids)} ids")
    labeled = bool(class_names)
    if labeled and (labels is None or len(labels) != n):
        raise ValueError(f"a labeled page needs {n} labels")
    metadata = metadata or {}
    colouring = colouring or class_colouring(labels if labeled else np.zeros(n, int), class_names)
    splits = list(splits) if splits is not None else None
    for name, values in [*metadata.items(), ("the colouring", colouring.codes),
                         *([("splits", splits)] if splits is not None else [])]:  # fmt: skip
        if len(values) != n:
            raise ValueError(f"{name} has {len(values)} values for {n} map points")
    if feature_neighbours is not None and (
        len(feature_neighbours) != n
        or feature_neighbours.min() < 0
        or feature_neighbours.max() >= n
    ):
        raise ValueError(f"feature_neighbours must be (N={n}, k) indices of map points")
    sheets, layout = thumbnail_sheets(images, thumbnail_size, jpeg_quality, max_sheet_side)
    neighbours = map_neighbours(embedding)
    payload = {
        "title": title,
        "ids": [str(i) for i in ids],
        "x": _packed(embedding[:, 0], "<f4"),
        "y": _packed(embedding[:, 1], "<f4"),
        "labels": np.asarray(labels).astype(int).tolist() if labeled else None,
        "classNames": [str(name) for name in class_names] if labeled else [],
        "metadata": [{"name": k, "values": [str(v) for v in vs]} for k, vs in metadata.items()],
        "splits": None if splits is None else [str(split) for split in splits],
        "colouring": {
            "title": colouring.title,
            "column": colouring.column,
            "values": colouring.values,
            "palette": colouring.palette,
            "codes": _packed(colouring.codes, "<u2"),
            "categories": colouring.categories,
            "range": colouring.value_range,
        },
        "mapNeighbours": {"k": neighbours.shape[1], "indices": _packed(neighbours, "<i4")},
        "typical": _packed(typical_order(neighbours), "<i4"),
        "featureNeighbours": None
        if feature_neighbours is None
        else {"k": feature_neighbours.shape[1], "indices": _packed(feature_neighbours, "<i4")},
        "outliers": None if outliers is None else [int(i) for i in outliers],
        "suspects": _records(suspects),
        "duplicates": _records(duplicates),
        "atlas": layout,
    }
    filled = {"__DATA__": _html_json(payload), "__ATLAS__": _html_json(sheets)}
    template = resources.files("medmap.reporting").joinpath("explorer.html").read_text()
    # one pass, so that a name in the data that reads "__ATLAS__" stays a name
    page = re.sub("__DATA__|__ATLAS__", lambda match: filled[match.group()], template)
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path


def load_run_images(
    run_dir: Path, labels: np.ndarray, ids: Sequence[str] | None = None
) -> np.ndarray:
    """The run's images in map order, reloaded through its own dataset config (the images are
    not copied into run directories). Refuses data that no longer matches the run's labels
    (all zero for an unlabeled run) or, when given, its image ids."""
    saved = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    collection = load_dataset(saved.dataset, saved.seed)
    if (
        len(collection) != len(labels)
        or not np.array_equal(collection.labels, labels)
        or (ids is not None and not np.array_equal(collection.ids, np.asarray(ids, dtype=str)))
    ):
        raise UserFacingError(
            f"The dataset the run {run_dir} was trained on no longer matches it "
            f"({len(collection)} images now, {len(labels)} in the run, or other labels or ids). "
            "Set DATA_DIR (or the dataset's root/path) to the data the run used."
        )
    return collection.images


def read_rows(path: Path, limit: int | None = None) -> list[dict[str, str]]:
    """The first ``limit`` rows (all when None) of a csv file, by column name."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(islice(csv.DictReader(handle), limit))


def read_columns(path: Path) -> dict[str, list[str]]:
    """A csv file as columns of text, in the file's column order."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    return {name: [row[i] for row in rows] for i, name in enumerate(header)}


def _listed(path: Path, limit: int, entry: Callable[[dict[str, str]], T]) -> list[T] | None:
    """The first ``limit`` rows of one of a run's csv files as panel entries; None (no panel)
    when the run has no such file."""
    return [entry(row) for row in read_rows(path, limit)] if path.is_file() else None


def explore_run(
    run_dir: str | Path,
    output: str | Path | None = None,
    colour_by: str | None = None,
    thumbnail_size: int = 32,
    jpeg_quality: int = 90,
    listed: int = 50,
) -> Path:
    """The explorer page of a run directory written by train.py (default: <run>/explorer.html),
    coloured by class or by the map.csv column ``colour_by``, with the first ``listed``
    suspects, duplicate pairs and outliers beside the map."""
    run_dir = Path(run_dir)
    if not (run_dir / "embedding.npy").is_file():
        raise UserFacingError(
            f"{run_dir} holds no embedding.npy: point run= at a finished train.py run directory."
        )
    if not (run_dir / "map.csv").is_file():
        raise UserFacingError(
            f"{run_dir} holds no map.csv (it names each image): the run was written by an older "
            "train.py; train it again."
        )
    table = read_columns(run_dir / "map.csv")
    if colour_by is not None and colour_by not in table:
        raise UserFacingError(
            f"colour_by={colour_by} is not a column of {run_dir / 'map.csv'}; its columns are: "
            f"{', '.join(table)}"
        )
    embedding = np.load(run_dir / "embedding.npy")
    labels = np.load(run_dir / "labels.npy")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if len(table["id"]) != len(embedding):
        raise UserFacingError(
            f"{run_dir}: map.csv has {len(table['id'])} rows but the map {len(embedding)} points."
        )
    colouring = None
    if colour_by not in (None, "class"):
        colouring = column_colouring(colour_by, table[colour_by])
    feature_neighbours = run_dir / "feature_neighbours.npy"
    return write_explorer(
        Path(output) if output else run_dir / "explorer.html",
        embedding,
        load_run_images(run_dir, labels, table["id"]),
        table["id"],
        labels=labels,
        class_names=metrics["class_names"] if metrics["labeled"] else [],
        metadata={name: table[name] for name in table if name not in MAP_COLUMNS},
        splits=table["split"] if len(set(table.get("split", []))) > 1 else None,
        colouring=colouring,
        feature_neighbours=np.load(feature_neighbours) if feature_neighbours.is_file() else None,
        outliers=_listed(run_dir / "outliers.csv", listed, lambda row: int(row["index"])),
        suspects=_listed(run_dir / "suspects.csv", listed, Suspect.from_row),
        duplicates=_listed(run_dir / "duplicates.csv", listed, DuplicatePair.from_row),
        title=run_title(metrics),
        thumbnail_size=thumbnail_size,
        jpeg_quality=jpeg_quality,
    )
