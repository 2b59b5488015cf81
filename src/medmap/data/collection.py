"""The in-memory image collection every method trains on: uint8 pixels, labels, class names,
and each image's identity (``ids``) and metadata, so every output can name its files."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import train_test_split


@dataclass
class ImageCollection:
    """All images of a dataset with the splits pooled, held as uint8 (N, H, W, 3).

    Labels only colour and score the map; ``splits`` remembers where each image came from
    ("train", "val", "test") so held-out evaluations stay possible after pooling. ``ids`` name
    each image in every output: its path relative to the dataset root for folders,
    ``<split>/<row>`` for array files (the default). An unlabeled collection
    (``labeled=False``) holds one placeholder class; scores that need labels are then undefined.
    ``metadata`` holds extra per-image columns (strings), e.g. from a metadata csv.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    splits: np.ndarray = field(default=None)  # type: ignore[assignment]
    skipped_files: int = 0  # unreadable files left out with dataset.skip_bad_files
    injected: np.ndarray = field(default=None)  # type: ignore[assignment]  # data/inject.py codes
    ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    metadata: dict[str, np.ndarray] = field(default_factory=dict)
    labeled: bool = True

    def __post_init__(self) -> None:
        self.images = np.ascontiguousarray(self.images)
        self.labels = np.asarray(self.labels).reshape(-1).astype(np.int64)
        if self.splits is None:
            self.splits = np.full(len(self.labels), "train")
        self.splits = np.asarray(self.splits).astype(str)
        if self.injected is None:
            self.injected = np.zeros(len(self.labels), dtype=np.int8)
        if self.ids is None:
            self.ids = rows_within_splits(self.splits)
        self.ids = np.asarray(self.ids).astype(str)
        self.metadata = {
            key: np.asarray(column).astype(str) for key, column in self.metadata.items()
        }
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(
                f"{self.name}: images must be uint8 (N, H, W, 3), got {self.images.dtype} "
                f"{self.images.shape}"
            )
        lengths = {len(self.labels), len(self.splits), len(self.ids)}
        lengths |= {len(column) for column in self.metadata.values()}
        if lengths != {len(self.images)}:
            raise ValueError(
                f"{self.name}: {len(self.images)} images but {len(self.labels)} labels, "
                f"{len(self.splits)} split tags, {len(self.ids)} ids and metadata columns of "
                f"{sorted({len(c) for c in self.metadata.values()})} rows"
            )
        if len(self.labels) and (
            self.labels.min() < 0 or self.labels.max() >= len(self.class_names)
        ):
            raise ValueError(
                f"{self.name}: labels span {self.labels.min()}..{self.labels.max()} but there are "
                f"only {len(self.class_names)} class names"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    def describe(self) -> str:
        """One line for the log: how many images, and their classes or that there are none."""
        classes = f"{len(self.class_names)} classes" if self.labeled else "unlabeled"
        extra = f", metadata columns {list(self.metadata)}" if self.metadata else ""
        return f"{self.name}: {len(self)} images, {classes}{extra}"

    @property
    def class_of_each(self) -> np.ndarray:
        """Each image's class name ('' when the collection is unlabeled)."""
        if not self.labeled:
            return np.full(len(self), "")
        return np.asarray(self.class_names, dtype=object)[self.labels].astype(str)

    def select(self, indices: np.ndarray) -> ImageCollection:
        """A new collection holding only ``indices`` (in that order)."""
        return self.replace(
            images=self.images[indices],
            labels=self.labels[indices],
            splits=self.splits[indices],
            injected=self.injected[indices],
            ids=self.ids[indices],
            metadata={key: column[indices] for key, column in self.metadata.items()},
        )

    def replace(self, **changes) -> ImageCollection:
        """A copy with some fields changed (the others shared)."""
        changes.setdefault("class_names", list(self.class_names))
        return dataclasses.replace(self, **changes)


def rows_within_splits(splits: np.ndarray) -> np.ndarray:
    """Default ids ``<split>/<row>``: each image's row within its split's array."""
    ids = np.empty(len(splits), dtype=object)
    for split in dict.fromkeys(splits.tolist()):
        where = np.flatnonzero(splits == split)
        ids[where] = [f"{split}/{row}" for row in range(len(where))]
    return ids.astype(str)


def select_splits(collection: ImageCollection, splits: list[str] | None) -> ImageCollection:
    """Only the images of the given splits (in dataset order); None keeps everything."""
    if splits is None:
        return collection
    present = sorted(set(collection.splits))
    unknown = sorted(set(splits) - set(present))
    if unknown:
        raise ValueError(
            f"dataset.splits asks for {unknown}, but {collection.name} has the splits {present}"
        )
    return collection.select(np.flatnonzero(np.isin(collection.splits, list(splits))))


def stratified_subset(collection: ImageCollection, size: int | None, seed: int) -> ImageCollection:
    """A seeded, class-stratified subset of ``size`` images, kept in dataset order.

    Classes too small to stratify fall back to a plain seeded random subset.
    """
    if size is None or size >= len(collection):
        return collection
    if size <= 0:
        raise ValueError(f"dataset.subset must be a positive number of images, got {size}")
    indices = np.arange(len(collection))
    try:
        chosen, _ = train_test_split(
            indices, train_size=size, stratify=collection.labels, random_state=seed
        )
    except ValueError:
        chosen = np.random.default_rng(seed).choice(indices, size=size, replace=False)
    return collection.select(np.sort(chosen))


def mean_border_colour(images: np.ndarray) -> np.ndarray:
    """Mean RGB of each image's outermost pixel ring, averaged over the dataset, in [0, 1].

    Used to fill the corners that an arbitrary rotation exposes (docs/method.md §2, randrot), so the
    rotated square does not stand out against the background of the images.
    """
    images = np.asarray(images)
    ring = np.ones(images.shape[1:3], dtype=bool)
    ring[1:-1, 1:-1] = False
    per_image = images[:, ring, :].astype(np.float64).mean(axis=1)  # (N, 3)
    return (per_image.mean(axis=0) / 255.0).astype(np.float32)
