import json

import numpy as np
import pytest
from sklearn.metrics import silhouette_samples, silhouette_score

from medmap.evaluation import (
    cluster_separation,
    knn_accuracy,
    linear_evaluation,
    map_metrics,
    silhouette,
    strict_json,
)
from medmap.reporting.plotting import run_title


def two_blobs(spread: float, count: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], count // 2)
    centres = np.array([[0.0, 0.0], [10.0, 0.0]])
    return centres[labels] + rng.normal(scale=spread, size=(count, 2)), labels


def test_silhouette_of_known_points():
    # Points 0,1 in class A at x=0,1; points 2,3 in class B at x=4,5.
    embedding = np.array([[0.0, 0], [1, 0], [4, 0], [5, 0]])
    labels = np.array([0, 0, 1, 1])
    # a(0)=1, b(0)=(4+5)/2=4.5 -> s=3.5/4.5; a(1)=1, b(1)=3.5 -> 2.5/3.5; symmetric for B.
    expected = np.mean([3.5 / 4.5, 2.5 / 3.5, 2.5 / 3.5, 3.5 / 4.5])
    assert silhouette(embedding, labels) == pytest.approx(expected)
    assert np.mean(silhouette_samples(embedding, labels)) == pytest.approx(expected)


def test_silhouette_separates_tight_from_mixed_maps():
    tight, labels = two_blobs(0.5)
    assert silhouette(tight, labels) > 0.9
    mixed = np.random.default_rng(1).normal(size=tight.shape)
    assert abs(silhouette(mixed, labels)) < 0.05
    assert np.isnan(silhouette(tight, np.zeros(len(labels), dtype=int)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_silhouette_matches_scikit_learn_on_awkward_sets(seed):
    """Unsorted string labels, classes of very different sizes, a class of one point (scores
    0), coincident points, and more points than one block of the chunked computation."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.array(["b", "a", "c", "d"]), size=9000, p=[0.6, 0.3, 0.0999, 0.0001])
    labels[rng.integers(9000)] = "single"
    embedding = rng.normal(size=(9000, 2)) * 5 + (labels == "a")[:, None] * 3.0
    embedding[10:20] = embedding[5]
    expected = silhouette_score(embedding, labels)
    assert silhouette(embedding, labels) == pytest.approx(expected, abs=1e-9)


def test_knn_accuracy_is_perfect_on_separated_and_chance_on_random_maps():
    tight, labels = two_blobs(0.5, count=1000)
    assert knn_accuracy(tight, labels) == 100.0
    rng = np.random.default_rng(0)
    random_map = rng.normal(size=(4000, 2))
    random_labels = rng.integers(0, 4, 4000)
    assert knn_accuracy(random_map, random_labels) == pytest.approx(25.0, abs=4.0)


def test_knn_uses_a_stratified_tenth_held_out_with_a_fixed_seed():
    # One point of class 1 sits inside class 0: it is wrong whenever it is held out.
    embedding, labels = two_blobs(0.3, count=100)
    labels = labels.copy()
    assert knn_accuracy(embedding, labels, seed=0) == knn_accuracy(embedding, labels, seed=0)
    flipped = labels.copy()
    flipped[:10] = 1  # 10 of class 0 mislabelled: on average 1 lands in the 10-point test set
    scores = [knn_accuracy(embedding, flipped, seed=s) for s in range(20)]
    assert min(scores) < 100.0


def test_tiny_datasets_still_score():
    embedding = np.arange(30, dtype=float).reshape(15, 2)
    labels = np.repeat(np.arange(15), 1)[:15]
    result = map_metrics(embedding, labels)
    assert set(result) == {"silhouette", "knn_acc"}
    assert np.isnan(result["silhouette"])  # one point per class: undefined
    assert 0.0 <= result["knn_acc"] <= 100.0


def test_linear_evaluation_trains_on_train_split_and_scores_the_test_split():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 100)
    centres = np.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 5.0, 0]])
    features = centres[labels] + rng.normal(size=(300, 4))
    splits = np.where(np.arange(300) % 5 == 0, "test", "train")
    assert linear_evaluation(features, labels, splits) == 100.0
    # A test split whose labels the features cannot predict scores at chance: the score
    # really comes from the test split, not the training points.
    shuffled = labels.copy()
    test = splits == "test"
    shuffled[test] = rng.permutation(labels[test])
    assert linear_evaluation(features, shuffled, splits) < 60.0
    # No test split (e.g. an image folder without splits): nothing to score.
    assert np.isnan(linear_evaluation(features, labels, np.full(300, "train")))


def test_records_are_strict_json_with_undefined_scores_as_null_and_titled_n_a():
    record = {"silhouette": float("nan"), "knn_acc": 71.25, "method": "tsimcne",
              "dataset": "bloodmnist", "aug": "rot90",
              "injected": {"duplicates": [float("inf")]}}  # fmt: skip
    text = strict_json(record)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {**record, "silhouette": None, "injected": {"duplicates": [None]}}
    title = run_title(json.loads(text))
    assert title == "tsimcne · bloodmnist · aug=rot90 · silhouette n/a · kNN 71.2%"
    baseline = {**record, "aug": None, "features": "pixels", "silhouette": 0.0712}
    assert "· features=pixels · silhouette 0.07 ·" in run_title(baseline)


def test_cluster_separation_is_high_for_separate_groups_and_low_for_noise():
    """Three tight groups: k-means at k = 3 finds them, silhouette near 1; uniform noise in a
    square: the best partition scores about 0.4. Scaling the map changes nothing."""
    rng = np.random.default_rng(0)
    groups = np.concatenate([rng.normal((c, 0), 0.1, (200, 2)) for c in (0, 5, 10)])
    assert cluster_separation(groups) > 0.9
    assert cluster_separation(groups * 100 + 7) == pytest.approx(cluster_separation(groups))
    noise = rng.uniform(size=(600, 2))
    assert 0.3 < cluster_separation(noise) < 0.5
    assert cluster_separation(groups, points=90) > 0.9  # a sample of the map tells as much


def test_cluster_separation_of_a_map_too_small_or_broken_is_nan_and_small_maps_get_few_groups():
    rng = np.random.default_rng(1)
    assert np.isnan(cluster_separation(rng.normal(size=(19, 2))))  # under 20 points
    broken = rng.normal(size=(100, 2))
    broken[5] = np.nan
    assert np.isnan(cluster_separation(broken))
    # 30 points (a tenth: k = 2 or 3): three groups of 10 are still found
    groups = np.concatenate([rng.normal((c, 0), 0.1, (10, 2)) for c in (0, 5, 10)])
    assert cluster_separation(groups) > 0.9
    # but 30 points of noise cannot score high by being cut into 12 groups of 2-3
    assert cluster_separation(rng.uniform(size=(30, 2))) < 0.6
