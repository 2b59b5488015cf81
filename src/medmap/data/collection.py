"""The in-memory image collection every method trains on: uint8 pixels, labels, class names."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import train_test_split


@dataclass
class ImageCollection:
    """All images of a dataset with the splits pooled, held as uint8 (N, H, W, 3).

    Labels only colour and score the map; ``splits`` remembers where each image came from
    ("train", "val", "test") so held-out evaluations stay possible after pooling.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    splits: np.ndarray = field(default=None)  # type: ignore[assignment]
    skipped_files: int = 0  # unreadable files left out with dataset.skip_bad_files
    injected: np.ndarray = field(default=None)  # type: ignore[assignment]  # data/inject.py codes

    def __post_init__(self) -> None:
        self.images = np.ascontiguousarray(self.images)
        self.labels = np.asarray(self.labels).reshape(-1).astype(np.int64)
        if self.splits is None:
            self.splits = np.full(len(self.labels), "train")
        self.splits = np.asarray(self.splits).astype(str)
        if self.injected is None:
            self.injected = np.zeros(len(self.labels), dtype=np.int8)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(
                f"{self.name}: images must be uint8 (N, H, W, 3), got {self.images.dtype} "
                f"{self.images.shape}"
            )
        if not (len(self.images) == len(self.labels) == len(self.splits)):
            raise ValueError(
                f"{self.name}: {len(self.images)} images but {len(self.labels)} labels "
                f"and {len(self.splits)} split tags"
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

    def select(self, indices: np.ndarray) -> ImageCollection:
        """A new collection holding only ``indices`` (in that order)."""
        return ImageCollection(
            self.name,
            self.images[indices],
            self.labels[indices],
            list(self.class_names),
            self.splits[indices],
            self.skipped_files,
            self.injected[indices],
        )


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

    Used to fill the corners that an arbitrary rotation exposes (SPEC §2, randrot), so the
    rotated square does not stand out against the background of the images.
    """
    images = np.asarray(images)
    ring = np.ones(images.shape[1:3], dtype=bool)
    ring[1:-1, 1:-1] = False
    per_image = images[:, ring, :].astype(np.float64).mean(axis=1)  # (N, 3)
    return (per_image.mean(axis=0) / 255.0).astype(np.float32)
