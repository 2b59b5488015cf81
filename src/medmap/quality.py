"""What a run finds wrong in the data (the study's data-quality use of a map): isolated images,
label-error candidates and near-duplicate pairs; and how well these finders recover problems
planted on purpose (data/inject.py).

Every finder works on the map and, where the run has them, the backbone's features: the map
shows what a user sees, the features keep detail that two dimensions lose.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler, normalize

from medmap.data.collection import ImageCollection
from medmap.data.inject import ARTEFACT, DUPLICATE, LABEL_FLIPPED
from medmap.evaluation import isolation, neighbourhood_share


def nearest_neighbours(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of each point's ``k`` nearest other points. The point itself is
    left out by index, not by position: identical points may come first in any order."""
    k = min(k, len(points) - 1)
    distances, indices = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    itself = indices == np.arange(len(points))[:, None]
    itself[~itself.any(axis=1), -1] = True  # not among the k+1 found: drop the farthest
    keep = ~itself
    return distances[keep].reshape(len(points), k), indices[keep].reshape(len(points), k)


def neighbour_votes(labels: np.ndarray, neighbours: np.ndarray, classes: int) -> np.ndarray:
    """(N, classes): the share of each point's neighbours in each class."""
    votes = np.zeros((len(labels), classes))
    np.add.at(
        votes,
        (np.repeat(np.arange(len(labels)), neighbours.shape[1]), labels[neighbours].ravel()),
        1,
    )
    return votes / neighbours.shape[1]


def out_of_fold_probabilities(
    features: np.ndarray, labels: np.ndarray, classes: int, folds: int, seed: int, max_iter: int
) -> np.ndarray:
    """(N, classes) class probabilities of a linear classifier on the features, each image's
    from a model that did not see it (cross-validated): an image whose given label gets a low
    probability from the others is a label-error candidate (confident learning)."""
    counts = np.bincount(labels, minlength=classes)
    folds = int(min(folds, counts[counts > 0].min()))
    if folds < 2:
        return np.full((len(labels), classes), 1.0 / classes)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    present = np.flatnonzero(counts)
    probabilities = np.zeros((len(labels), classes))
    with warnings.catch_warnings():  # a capped number of iterations is a deliberate budget
        warnings.simplefilter("ignore", ConvergenceWarning)
        probabilities[:, present] = cross_val_predict(
            classifier, features, labels, cv=split, method="predict_proba"
        )
    return probabilities


@dataclass
class LabelSuspects:
    """Per image: ``score`` in [0, 1] (1 - the support its label gets from the evidence; high =
    likely mislabelled) and ``expected`` (the class the evidence favours)."""

    score: np.ndarray
    expected: np.ndarray


def label_suspects(
    labels: np.ndarray,
    classes: int,
    map_neighbours: np.ndarray,
    features: np.ndarray | None = None,
    feature_neighbours: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
    max_iter: int = 100,
) -> LabelSuspects:
    """Rank images by how strongly the rest of the data disagrees with their label: the
    average of the class shares among their map neighbours, among their feature neighbours
    and of a cross-validated linear classifier on the features (the last two when given)."""
    evidence = [neighbour_votes(labels, map_neighbours, classes)]
    if feature_neighbours is not None:
        evidence.append(neighbour_votes(labels, feature_neighbours, classes))
    if features is not None:
        evidence.append(out_of_fold_probabilities(features, labels, classes, folds, seed, max_iter))
    support = np.mean(evidence, axis=0)
    return LabelSuspects(
        score=1.0 - support[np.arange(len(labels)), labels], expected=support.argmax(axis=1)
    )


def feature_graph(features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image's ``k`` nearest other images by cosine geometry (unit-length features):
    distances and indices."""
    return nearest_neighbours(normalize(features.astype(np.float64)), k)


def near_duplicates(
    distances: np.ndarray, neighbours: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) of images closer than ``threshold`` times the median distance of an image
    to its nearest neighbour (in ``feature_graph``), each pair once, closest first; returns
    (pairs (M, 2), distances (M,))."""
    limit = threshold * float(np.median(distances[:, 0]))
    rows, columns = np.nonzero(distances < limit)
    a, b = rows, neighbours[rows, columns]
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1).reshape(-1, 2)
    pairs, first = np.unique(pairs, axis=0, return_index=True)
    found = distances[rows, columns][first]
    order = np.argsort(found, kind="stable")
    return pairs[order], found[order]


def label_noise_scores(score: np.ndarray, injected: np.ndarray) -> dict[str, float | int]:
    """How well ``score`` ranks the images whose labels were flipped on purpose: AUROC, and
    precision among the top k where k = the number flipped."""
    flipped = injected == LABEL_FLIPPED
    k = int(flipped.sum())
    top = np.argsort(-score, kind="stable")[:k]
    return {
        "fraction": round(k / int((injected != DUPLICATE).sum()), 4),
        "flipped": k,
        "auroc": float(roc_auc_score(flipped, score)),
        "precision_at_k": float(flipped[top].mean()),
    }


def duplicate_scores(pairs: np.ndarray, injected: np.ndarray, source: int | None) -> dict:
    """Recall: the share of planted copies found in a pair with another copy or with their
    source image. Precision: the share of reported pairs that join two of these."""
    group = injected == DUPLICATE
    if source is not None:
        group[source] = True
    within = group[pairs[:, 0]] & group[pairs[:, 1]] if len(pairs) else np.zeros(0, bool)
    found = np.zeros(len(injected), bool)
    found[pairs[within].ravel()] = True
    copies = injected == DUPLICATE
    return {
        "pairs": len(pairs),
        "recall": float(found[copies].mean()),
        "precision": float(within.mean()) if len(pairs) else float("nan"),
    }


@dataclass
class Findings:
    """What a run found: every image's ``isolation`` in the map, label ``suspects`` (None
    without 2+ classes), each image's nearest ``feature_neighbours`` (cosine) and
    near-duplicate ``pairs`` with their feature ``distances`` (these None without features)."""

    isolation: np.ndarray
    suspects: LabelSuspects | None
    feature_neighbours: np.ndarray | None
    pairs: np.ndarray | None
    distances: np.ndarray | None


def find_problems(
    collection: ImageCollection,
    embedding: np.ndarray,
    features: np.ndarray | None,
    k: int,
    classifier_folds: int,
    classifier_max_iter: int,
    duplicate_threshold: float,
    seed: int = 0,
) -> Findings:
    """Run every finder that the collection (labels) and the run (features) allow."""
    _, map_neighbours = nearest_neighbours(embedding, k)
    feature_distances = feature_neighbours = pairs = distances = None
    if features is not None:
        feature_distances, feature_neighbours = feature_graph(features, k)
        pairs, distances = near_duplicates(
            feature_distances, feature_neighbours, duplicate_threshold
        )
    suspects = None
    if collection.labeled and len(np.unique(collection.labels)) > 1:
        suspects = label_suspects(
            collection.labels,
            len(collection.class_names),
            map_neighbours,
            features,
            feature_neighbours,
            folds=classifier_folds,
            seed=seed,
            max_iter=classifier_max_iter,
        )
    return Findings(isolation(embedding, k=k), suspects, feature_neighbours, pairs, distances)


def planted_scores(
    collection: ImageCollection, embedding: np.ndarray, findings: Findings
) -> dict[str, dict]:
    """How the run's finders did on the problems planted in ``collection`` (metrics.json:
    ``injected`` per kind, ``label_noise``)."""
    injected, scores = collection.injected, {}
    if findings.suspects is not None and (injected == LABEL_FLIPPED).any():
        scores["label_noise"] = label_noise_scores(findings.suspects.score, injected)
    drawn = injected_scores(embedding, injected)
    if "duplicates" in drawn and findings.pairs is not None:
        drawn["duplicates"].update(
            duplicate_scores(findings.pairs, injected, planted_source(collection))
        )
    if drawn:
        scores["injected"] = drawn
    return scores


def planted_source(collection: ImageCollection) -> int | None:
    """The index of the image the planted duplicates were copied from (named in their ids)."""
    copies = np.flatnonzero(collection.injected == DUPLICATE)
    if not len(copies):
        return None
    source_id = collection.ids[copies[0]].split("-of-", 1)[1]
    matches = np.flatnonzero(collection.ids == source_id)
    return int(matches[0]) if len(matches) else None


def injected_scores(embedding: np.ndarray, injected: np.ndarray) -> dict:
    """Per planted problem kind drawn on the map: how many, and the share whose 15 map
    neighbours are mostly planted the same way (an island in the map)."""
    return {
        kind: {
            "count": int((injected == code).sum()),
            "neighbourhood_share": neighbourhood_share(embedding, injected == code, k=15),
        }
        for kind, code in (("duplicates", DUPLICATE), ("artefacts", ARTEFACT))
        if (injected == code).any()
    }
