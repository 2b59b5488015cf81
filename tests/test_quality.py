"""The data-quality finders (quality.py) on inputs whose answers are known by hand."""

import numpy as np
import pytest

from medmap.data.collection import ImageCollection
from medmap.data.inject import DUPLICATE, LABEL_FLIPPED
from medmap.quality import (
    duplicate_scores,
    feature_graph,
    find_problems,
    label_noise_scores,
    label_suspects,
    near_duplicates,
    nearest_neighbours,
    neighbour_votes,
    planted_scores,
)


def test_nearest_neighbours_leave_out_the_point_itself_even_among_identical_points():
    points = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    distances, indices = nearest_neighbours(points, 2)
    assert all(i not in row for i, row in enumerate(indices))
    assert indices[0].tolist() in ([1, 2], [2, 1]) and distances[:3].max() == 0.0
    assert distances[3].tolist() == pytest.approx([np.sqrt(50)] * 2)


def test_neighbour_votes_are_class_shares():
    labels = np.array([0, 0, 1, 1])
    neighbours = np.array([[1, 2], [0, 2], [3, 0], [2, 2]])
    votes = neighbour_votes(labels, neighbours, 3)
    assert votes.tolist() == [[0.5, 0.5, 0], [0.5, 0.5, 0], [0.5, 0.5, 0], [0, 1, 0]]


def test_label_noise_scores_by_hand():
    score = np.array([0.9, 0.8, 0.1, 0.2])
    injected = np.array([LABEL_FLIPPED, 0, 0, LABEL_FLIPPED])
    result = label_noise_scores(score, injected)
    # positives 0.9 and 0.2 against negatives 0.8 and 0.1: 3 of 4 pairs ordered right
    assert result["auroc"] == pytest.approx(0.75)
    assert result["precision_at_k"] == 0.5  # top 2 = images 0 (flipped) and 1 (not)
    assert result["flipped"] == 2 and result["fraction"] == 0.5


def two_clusters(seed=0, per_class=40):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * 8, [6.0] * 8])
    features = np.concatenate([c + rng.normal(size=(per_class, 8)) for c in centres])
    labels = np.repeat([0, 1], per_class)
    return features, labels


def test_flipped_labels_rank_first_among_label_suspects():
    features, labels = two_clusters()
    noisy = labels.copy()
    noisy[[3, 50]] = 1 - noisy[[3, 50]]
    _, map_neighbours = nearest_neighbours(features[:, :2], 10)
    _, feature_neighbours = nearest_neighbours(features, 10)
    suspects = label_suspects(noisy, 2, map_neighbours, features, feature_neighbours, folds=3)
    assert set(np.argsort(-suspects.score)[:2]) == {3, 50}
    assert suspects.expected[3] == 0 and suspects.expected[50] == 1  # the true classes
    assert suspects.score.min() >= 0 and suspects.score.max() <= 1


def test_near_duplicates_find_copies_closest_first():
    features, _ = two_clusters()
    rng = np.random.default_rng(1)
    copies = features[5] + rng.normal(scale=1e-3, size=(3, 8))
    features = np.concatenate([features, copies])  # 80, 81, 82 copy image 5
    distances, neighbours = feature_graph(features, 5)
    pairs, found = near_duplicates(distances, neighbours, threshold=0.1)
    group = {5, 80, 81, 82}
    assert {tuple(p) for p in pairs} == {(a, b) for a in group for b in group if a < b}
    assert (np.diff(found) >= 0).all() and found.max() < 0.01
    injected = np.zeros(83, int)
    injected[80:] = DUPLICATE
    scores = duplicate_scores(pairs, injected, source=5)
    assert scores == {"pairs": 6, "recall": 1.0, "precision": 1.0}
    without_source = duplicate_scores(pairs, injected, source=None)
    assert without_source["precision"] == 0.5 and without_source["recall"] == 1.0


def collection_of(features, labels, labeled=True, injected=None, ids=None):
    images = np.zeros((len(labels), 4, 4, 3), np.uint8)
    return ImageCollection(
        "toy", images, labels, ["a", "b"], injected=injected, ids=ids, labeled=labeled
    )


def test_find_problems_skips_label_suspects_without_labels_and_duplicates_without_features():
    features, labels = two_clusters()
    unlabeled = collection_of(features, np.zeros(80, int), labeled=False)
    found = find_problems(unlabeled, features[:, :2], features, 15, 3, 100, 0.2)
    assert found.suspects is None and found.feature_neighbours.shape == (80, 15)
    found = find_problems(collection_of(features, labels), features[:, :2], None, 15, 3, 100, 0.2)
    assert found.suspects is not None and found.pairs is None and found.feature_neighbours is None
    assert found.isolation.shape == (80,)


def test_planted_scores_report_label_noise_and_duplicate_recall():
    features, labels = two_clusters()
    features = np.concatenate([features, features[[7, 7]] + 1e-4])
    labels = np.concatenate([labels, [0, 0]])
    injected = np.zeros(82, np.int8)
    injected[80:] = DUPLICATE
    labels[10], injected[10] = 1, LABEL_FLIPPED
    ids = [f"train/{i}" for i in range(80)]
    ids += ["planted/duplicate-0-of-train/7", "planted/duplicate-1-of-train/7"]
    collection = collection_of(features, labels, injected=injected, ids=ids)
    found = find_problems(collection, features[:, :2], features, 10, 3, 100, 0.2)
    scores = planted_scores(collection, features[:, :2], found)
    assert scores["label_noise"]["flipped"] == 1 and scores["label_noise"]["auroc"] > 0.95
    assert scores["injected"]["duplicates"]["recall"] == 1.0
    assert scores["injected"]["duplicates"]["precision"] == 1.0
