"""Scores of a 2-D map against the true classes (docs/method.md §4)."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def silhouette(
    embedding: np.ndarray, labels: np.ndarray, device: str | torch.device = "cpu"
) -> float:
    """Euclidean silhouette of all points, as scikit-learn defines it (docs/method.md §4); NaN when
    fewer than 2 classes or too few points.

    Computed exactly, in float64 with torch on ``device`` (the run's), block by block: with
    the points sorted by class, each block of distances is summed (both ways: the matrix is
    symmetric, so each pair of blocks is made once) as soon as it is made, so memory stays
    bounded and the blocks stay in cache (results/silhouette-cpu.md)."""
    classes, codes = np.unique(labels, return_inverse=True)
    n = len(labels)
    if not 2 <= len(classes) <= n - 1:
        return float("nan")
    order = np.argsort(codes, kind="stable")
    codes = torch.as_tensor(codes[order], device=device)
    points = torch.as_tensor(np.asarray(embedding, dtype=np.float64)[order], device=device)
    sizes = torch.bincount(codes, minlength=len(classes)).to(torch.float64)
    starts = np.concatenate([[0], np.cumsum(sizes.cpu().numpy().astype(int))])
    # Blocks of points of one class each; the distance matrix is symmetric, so each pair of
    # blocks is computed once and summed both ways.
    side = 512 if points.device.type == "cpu" else 8192  # cache-sized on a CPU
    blocks = [
        (first, min(first + side, starts[k + 1]), k)
        for k in range(len(classes))
        for first in range(starts[k], starts[k + 1], side)
    ]
    distance_sums = torch.zeros(n, len(classes), dtype=torch.float64, device=device)
    for index, (first, last, k) in enumerate(blocks):
        block = points[first:last]
        for other_first, other_last, other_k in blocks[index:]:
            distances = torch.cdist(
                block, points[other_first:other_last], compute_mode="donot_use_mm_for_euclid_dist"
            )
            distance_sums[first:last, other_k] += distances.sum(dim=1)
            if other_first != first:
                distance_sums[other_first:other_last, k] += distances.sum(dim=0)
    own_size = sizes[codes]
    intra = distance_sums.gather(1, codes[:, None]).squeeze(1) / (own_size - 1).clamp(min=1)
    inter = (distance_sums / sizes).scatter(1, codes[:, None], float("inf")).min(dim=1).values
    score = (inter - intra) / torch.maximum(intra, inter)
    # a point alone in its class scores 0, as do coincident points (0/0)
    score = torch.where((own_size > 1) & torch.isfinite(score), score, 0.0)
    return float(score.mean())


def knn_accuracy(
    embedding: np.ndarray,
    labels: np.ndarray,
    k: int = 15,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> float:
    """Accuracy (%) of a k-NN classifier (Euclidean) fitted on a stratified 90% of the points
    and scored on the held-out 10%, with a fixed split seed. Tiny datasets whose classes are
    too small to stratify fall back to an unstratified split, and k shrinks to the train size."""
    indices = np.arange(len(labels))
    try:
        train, test = train_test_split(
            indices, test_size=test_fraction, stratify=labels, random_state=seed
        )
    except ValueError:
        train, test = train_test_split(indices, test_size=test_fraction, random_state=seed)
    if len(test) == 0 or len(train) == 0:
        return float("nan")
    classifier = KNeighborsClassifier(n_neighbors=min(k, len(train)))
    with warnings.catch_warnings():  # many classes of few images each: not a regression target
        warnings.filterwarnings("ignore", message="The number of unique classes is greater")
        classifier.fit(embedding[train], labels[train])
    return float(100.0 * np.mean(classifier.predict(embedding[test]) == labels[test]))


def unit_spread_sample(embedding: np.ndarray, points: int, seed: int) -> np.ndarray:
    """Up to ``points`` points of a map (a seeded sample), centred and scaled to unit spread:
    scores of the sample then compare across maps of any size and scale."""
    chosen = np.random.default_rng(seed).choice(len(embedding), min(points, len(embedding)),
                                                replace=False)  # fmt: skip
    sample = np.asarray(embedding, dtype=np.float64)[chosen]
    return (sample - sample.mean(0)) / (sample.std() or 1.0)


def cluster_separation(
    embedding: np.ndarray, max_clusters: int = 12, points: int = 5000, seed: int = 0
) -> float:
    """How well a map falls apart into separate groups, without labels: the best silhouette
    of a k-means partition of the map (k = 2..max_clusters, and at most a tenth of the points,
    so that groups are not a handful of points each), on up to ``points`` points of the map
    scaled to unit spread. On BloodMNIST it ranks the study's augmentations as the class
    silhouette does (results/label-free/README.md); it cannot tell groups of a nuisance factor
    from groups of classes. NaN for a map of under 20 points or with non-finite points."""
    from sklearn.cluster import KMeans

    embedding = np.asarray(embedding, dtype=np.float64)
    if len(embedding) < 20 or not np.isfinite(embedding).all():
        return float("nan")
    sample = unit_spread_sample(embedding, points, seed)
    ks = range(2, max(2, min(max_clusters, len(sample) // 10)) + 1)
    partitions = (KMeans(k, n_init=3, random_state=seed).fit_predict(sample) for k in ks)
    return float(np.nanmax([silhouette(sample, labels) for labels in partitions]))


def map_metrics(
    embedding: np.ndarray, labels: np.ndarray, k: int = 15, seed: int = 0, device: str = "cpu"
) -> dict:
    return {
        "silhouette": silhouette(embedding, labels, device=device),
        "knn_acc": knn_accuracy(embedding, labels, k=k, seed=seed),
    }


def class_scores(
    collection,
    embedding: np.ndarray,
    features: np.ndarray | None,
    k: int = 15,
    split_seed: int = 0,
    linear_max_iter: int = 1000,
    device: str = "cpu",
) -> dict:
    """The scores that need classes: silhouette and kNN accuracy of the map, and the linear
    evaluation of ``features`` (when given). All are undefined (None, with ``scores_note``
    saying why) for an unlabeled or single-class collection: a kNN accuracy of 100% on one
    class would mean nothing."""
    classes = len(np.unique(collection.labels))
    if not collection.labeled or classes < 2:
        why = "the collection is unlabeled" if not collection.labeled else "it has one class"
        return {
            "silhouette": None,
            "knn_acc": None,
            "linear_acc": None,
            "scores_note": f"no class scores: {why} (they need 2 or more classes)",
        }
    scores = map_metrics(embedding, collection.labels, k=k, seed=split_seed, device=device)
    if features is not None:
        scores["linear_acc"] = linear_evaluation(
            features, collection.labels, collection.splits, max_iter=linear_max_iter
        )
    return scores


def linear_evaluation(
    features: np.ndarray,
    labels: np.ndarray,
    splits: np.ndarray,
    max_iter: int = 1000,
) -> float:
    """Accuracy (%) of a linear classifier (multinomial logistic regression on standardised
    features) fitted on the "train" split and scored on the "test" split (Table 3).
    NaN when the dataset has no such pair of splits, or only one class to learn."""
    train, test = splits == "train", splits == "test"
    if not train.any() or not test.any() or len(np.unique(labels[train])) < 2:
        return float("nan")
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    classifier.fit(features[train], labels[train])
    return float(100.0 * np.mean(classifier.predict(features[test]) == labels[test]))


def isolation(embedding: np.ndarray, k: int = 15) -> np.ndarray:
    """Each point's distance to its k-th nearest neighbour in the map: large for images that
    sit apart from everything else (candidates for outliers, artefacts or label errors)."""
    k = min(k, len(embedding) - 1)
    if k < 1:
        return np.zeros(len(embedding))
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding)
    return distances[:, k]  # column 0 is the point itself


def neighbourhood_share(embedding: np.ndarray, members: np.ndarray, k: int = 15) -> float:
    """The share of ``members`` (a boolean mask) whose k nearest neighbours in the map are
    mostly (> half) members too: 1.0 when planted duplicates form one island."""
    if not members.any():
        return float("nan")
    k = min(k, len(embedding) - 1)
    _, neighbours = (
        NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding[members])
    )
    fraction = members[neighbours[:, 1:]].mean(axis=1)
    return float(np.mean(fraction > 0.5))


def strict_json(record: Any) -> str:
    """``record`` as strict JSON text: an undefined score (NaN, e.g. a silhouette with one
    point per class) becomes null, since NaN is not JSON and many readers reject it."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [clean(item) for item in value]
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    return json.dumps(clean(record), indent=2, allow_nan=False) + "\n"
