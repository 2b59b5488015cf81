"""Mapping new images into a trained run's map, without retraining (``embed.py``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from medmap.api import TSimCNE, compose_config
from medmap.data import load_dataset
from medmap.errors import UserFacingError
from medmap.reporting.plotting import plot_new_over_map
from medmap.reporting.run_files import label_columns, write_csv


def knn_accuracy_against_map(
    old: np.ndarray, old_labels: np.ndarray, new: np.ndarray, new_labels: np.ndarray, k: int = 15
) -> float:
    """Accuracy (%) of classifying each new point by the k nearest points of the existing map:
    do new images land in the clusters of their classes?"""
    classifier = KNeighborsClassifier(n_neighbors=min(k, len(old))).fit(old, old_labels)
    return float(100.0 * np.mean(classifier.predict(new) == new_labels))


def map_ids(map_csv: Path, count: int) -> list[str]:
    """The ids of a run's map points (row numbers for runs made before map.csv existed)."""
    if not map_csv.is_file():
        return [str(i) for i in range(count)]
    with map_csv.open(newline="", encoding="utf-8") as handle:
        return [row["id"] for row in csv.DictReader(handle)]


def write_new_points(
    path: Path, collection, new: np.ndarray, old: np.ndarray, map_csv: Path
) -> None:
    """The new images by id, where they land, and the map image nearest to each (by id when
    the run wrote map.csv, else by index)."""
    old_ids = map_ids(map_csv, len(old))
    _, nearest = NearestNeighbors(n_neighbors=1).fit(old).kneighbors(new)
    labels, classes = label_columns(collection)
    write_csv(
        path,
        ["id", "x", "y", "label", "class", "split", "nearest_map_id"],
        (
            [
                collection.ids[i],
                f"{new[i, 0]:.5f}",
                f"{new[i, 1]:.5f}",
                labels[i],
                classes[i],
                collection.splits[i],
                old_ids[nearest[i, 0]],
            ]  # fmt: skip
            for i in range(len(new))
        ),
    )


def embed_into_run(run_dir: str | Path, dataset_overrides: Sequence[str]) -> dict[str, Any]:
    """Embed the dataset the overrides describe (e.g. ``dataset=bloodmnist
    dataset.splits=[test]``) into the run's map; write ``embedding_new.npy``,
    ``labels_new.npy``, ``embedding_new.csv`` (each new image's id, position and the id of the
    nearest image of the map), ``embedding_new.png`` and ``embedding_new.json`` into the run
    dir."""
    run_dir = Path(run_dir)
    if not (run_dir / "embedding.npy").is_file():
        raise UserFacingError(f"{run_dir} holds no embedding.npy: pass a finished run as run=.")
    model = TSimCNE.load(run_dir)
    saved_seed = json.loads((run_dir / "metrics.json").read_text())["seed"]
    cfg = compose_config([*dataset_overrides, f"seed={saved_seed}"], run_dir)
    collection = load_dataset(cfg.dataset, cfg.seed)
    new = model.transform(collection)
    old, old_labels = np.load(run_dir / "embedding.npy"), np.load(run_dir / "labels.npy")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    result: dict[str, Any] = {
        "run": str(run_dir),
        "dataset": collection.name,
        "splits": sorted(set(collection.splits)),
        "n_new": len(new),
        "knn_acc_against_map": None,
    }
    same_classes = collection.class_names == metrics["class_names"]
    if same_classes:
        result["knn_acc_against_map"] = knn_accuracy_against_map(
            old, old_labels, new, collection.labels
        )
    np.save(run_dir / "embedding_new.npy", new.astype(np.float32))
    np.save(run_dir / "labels_new.npy", collection.labels)
    write_new_points(run_dir / "embedding_new.csv", collection, new, old, run_dir / "map.csv")
    (run_dir / "embedding_new.json").write_text(json.dumps(result, indent=2) + "\n")
    score = result["knn_acc_against_map"]
    title = f"{len(new)} new images ({collection.name}, {'+'.join(result['splits'])})" + (
        f" · kNN acc. against the map {score:.1f}%" if score is not None else ""
    )
    plot_new_over_map(
        old,
        old_labels,
        new,
        collection.labels if same_classes else np.zeros(len(new), int),
        metrics["class_names"],
        run_dir / "embedding_new.png",
        title,
    )
    return result
