"""What a finished run leaves in its directory, each file naming its images by id:

- ``map.csv``: one row per image (id, x, y, label, class, split, isolation, ...metadata)
- ``outliers.csv``: all images, most isolated in the map first
- ``suspects.csv``: all images, most likely mislabelled first (labeled collections)
- ``duplicates.csv``: near-duplicate pairs, closest first (runs with backbone features)
- ``feature_neighbours.npy``: each image's nearest images in feature space (N, k) (the explorer)
- ``embedding.npy``, ``labels.npy``, ``injected.npy``, ``metrics.json``, ``embedding.png``
"""

from __future__ import annotations

import csv
import json
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from medmap.data.collection import ImageCollection
from medmap.data.inject import INJECTED_NAMES
from medmap.evaluation import strict_json
from medmap.identity import run_identity
from medmap.quality import Findings
from medmap.reporting.plotting import plot_map, run_title

MAP_COLUMNS = ["id", "x", "y", "label", "class", "split", "isolation"]


def write_csv(path: Path, header: list[str], rows: Iterable[list[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def label_columns(collection: ImageCollection) -> tuple[list[str], np.ndarray]:
    """Each image's label and class as text: both empty for an unlabeled collection."""
    if not collection.labeled:
        empty = [""] * len(collection)
        return empty, np.array(empty)
    return [str(label) for label in collection.labels], collection.class_of_each


def write_map_csv(
    path: Path, collection: ImageCollection, embedding: np.ndarray, findings: Findings
) -> None:
    """The map with every image's id: what a user filters, joins and plots in other tools."""
    labels, classes = label_columns(collection)
    extra = {}
    if collection.injected.any():  # by name: a column to colour the explorer by
        extra["injected"] = np.asarray(INJECTED_NAMES)[collection.injected]
    if findings.suspects is not None:
        extra["suspect_score"] = np.round(findings.suspects.score, 4)
    extra.update(collection.metadata)
    header = MAP_COLUMNS + [name for name in extra if name not in MAP_COLUMNS]
    rows = (
        [
            collection.ids[i],
            f"{embedding[i, 0]:.5f}",
            f"{embedding[i, 1]:.5f}",
            labels[i],
            classes[i],
            collection.splits[i],
            f"{findings.isolation[i]:.5f}",
            *(extra[name][i] for name in header[len(MAP_COLUMNS) :]),
        ]
        for i in range(len(collection))
    )
    write_csv(path, header, rows)


def write_outliers(path: Path, collection: ImageCollection, isolation: np.ndarray) -> None:
    """All images ranked by how isolated they are in the map (distance to the 15th
    neighbour), most isolated first: a list of suspicious images to look at."""
    labels, classes = label_columns(collection)
    order = np.argsort(-isolation, kind="stable")
    write_csv(
        path,
        ["rank", "id", "index", "label", "class", "distance_to_15th_neighbour"],
        (
            [rank, collection.ids[i], int(i), labels[i], classes[i], f"{isolation[i]:.4f}"]
            for rank, i in enumerate(order, start=1)
        ),
    )


def write_suspects(path: Path, collection: ImageCollection, findings: Findings) -> None:
    """All images, the likeliest label errors first: id, given label, the class its
    neighbours and the classifier favour, and the suspicion score."""
    suspects = findings.suspects
    order = np.argsort(-suspects.score, kind="stable")
    names = collection.class_names
    write_csv(
        path,
        ["rank", "id", "index", "label", "class", "neighbours_class", "score"],
        (
            [
                rank,
                collection.ids[i],
                int(i),
                int(collection.labels[i]),
                names[collection.labels[i]],
                names[suspects.expected[i]],
                f"{suspects.score[i]:.4f}",
            ]
            for rank, i in enumerate(order, start=1)
        ),
    )


def write_duplicates(path: Path, collection: ImageCollection, findings: Findings) -> None:
    """Near-duplicate pairs, closest first, by id (cosine distance of backbone features)."""
    write_csv(
        path,
        ["id_a", "id_b", "index_a", "index_b", "distance"],
        (
            [collection.ids[a], collection.ids[b], int(a), int(b), f"{d:.5f}"]
            for (a, b), d in zip(findings.pairs, findings.distances)
        ),
    )


def finished_run(cfg: DictConfig, output_dir: Path, digest: str) -> dict[str, Any] | None:
    """The metrics of a run this directory already finished with the same settings (its
    ``config_digest``), when ``auto_resume`` allows skipping it: a table sweep started again
    after a time limit goes on with the runs it had not finished."""
    path = output_dir / "metrics.json"
    if cfg.ckpt_path or not cfg.auto_resume or not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return metrics if metrics.get("config_digest") == digest else None


def run_metrics(
    cfg: DictConfig,
    collection: ImageCollection,
    scores: dict[str, Any],
    details: dict[str, Any],
    planted: dict[str, Any],
    commit: str | None,
) -> dict[str, Any]:
    """metrics.json: the scores, what the run was (identity, data, versions, the commit it
    started on) and how its finders did on planted problems."""
    return {
        **scores,
        **run_identity(cfg),
        **details,
        "n_images": len(collection),
        "labeled": collection.labeled,
        "class_names": collection.class_names if collection.labeled else [],
        "metadata_columns": list(collection.metadata),
        "skipped_files": collection.skipped_files,
        "versions": {"torch": torch.__version__, "pytorch_lightning": pl.__version__},
        "git_commit": commit,
        **planted,
    }


def save_run_outputs(
    output_dir: Path,
    collection: ImageCollection,
    embedding: np.ndarray,
    metrics: dict[str, Any],
    findings: Findings,
) -> None:
    for stale in ("failed.json", "error.log"):  # an earlier attempt's record (resumed since)
        (output_dir / stale).unlink(missing_ok=True)
    np.save(output_dir / "embedding.npy", embedding.astype(np.float32))
    np.save(output_dir / "labels.npy", collection.labels)
    (output_dir / "metrics.json").write_text(strict_json(metrics))
    write_map_csv(output_dir / "map.csv", collection, embedding, findings)
    write_outliers(output_dir / "outliers.csv", collection, findings.isolation)
    if findings.suspects is not None:
        write_suspects(output_dir / "suspects.csv", collection, findings)
    if findings.pairs is not None:
        write_duplicates(output_dir / "duplicates.csv", collection, findings)
        np.save(output_dir / "feature_neighbours.npy", findings.feature_neighbours.astype(np.int32))
    if collection.injected.any():
        np.save(output_dir / "injected.npy", collection.injected)
    plot_map(
        embedding,
        collection.labels,
        collection.class_names if collection.labeled else [],
        output_dir / "embedding.png",
        run_title(metrics),
        planted=collection.injected,
    )


def write_failure_record(output_dir: Path, error: BaseException, identity: dict[str, Any]) -> None:
    """``failed.json`` (the message and what the run was) and ``error.log`` (the trace) in
    place of ``metrics.json``, so tables and schedulers see why a run has no results."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "error.log").write_text(traceback.format_exc())
    record = {"error": str(error), **identity}
    (output_dir / "failed.json").write_text(json.dumps(record, indent=2) + "\n")
