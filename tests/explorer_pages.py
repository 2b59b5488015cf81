"""Explorer pages and run directories with known contents, for tests/test_explorer.py: pages
written straight with ``write_explorer``, and run directories written by train.py's own writers
for a small image folder (no training: a random map), so ``explore_run`` reads real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from medmap.data import load_dataset
from medmap.quality import find_problems
from medmap.reporting.explorer import Suspect, write_explorer
from medmap.reporting.run_files import save_run_outputs

XSS_NAMES = ["<img src=x onerror=alert(1)>", '<img src=x onerror="window.__pwned=1">']
CLASSES = ["ant", "bee", "cat"]


def grid_page(tmp_path: Path, **options) -> tuple[Path, np.ndarray, list[str], list[str]]:
    """36 solid-colour images on a 6x6 grid of map points, three classes (two hostile names),
    hostile ids, a metadata column (one hostile value), thumbnails spread over sheets of 4
    images. Returns the page, the image colours, the class names and the ids."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (36, 3), dtype=np.uint8)
    images = np.broadcast_to(colours[:, None, None, :], (36, 28, 28, 3)).copy()
    embedding = np.stack(np.meshgrid(np.arange(6.0), np.arange(6.0)), -1).reshape(-1, 2)
    labels = np.arange(36) % 3
    names = ["basophil", *XSS_NAMES]
    ids = [f"scan {i:02d}.png" for i in range(36)]
    ids[1], ids[2] = XSS_NAMES[1], "__ATLAS__"
    donors = [f"d{i % 4}" for i in range(36)]
    donors[1] = XSS_NAMES[1]
    page = write_page(tmp_path, embedding, images, ids, labels=labels, class_names=names,
                      metadata={"donor": donors},
                      title=f"test {XSS_NAMES[0]}", outliers=[0, 35], **options)  # fmt: skip
    return page, colours, names, ids


def scattered_page(tmp_path: Path, **options) -> tuple[Path, np.ndarray, list[str]]:
    """42 noise images on a jittered 7x6 grid (no two points close, no ties among neighbours),
    unlabeled; ``options`` go to write_explorer. Returns the page, the map and the ids."""
    rng = np.random.default_rng(1)
    grid = np.stack(np.meshgrid(np.arange(7.0), np.arange(6.0)), -1).reshape(-1, 2)
    embedding = grid + rng.uniform(-0.3, 0.3, grid.shape)
    images = rng.integers(0, 256, (42, 8, 8, 3), dtype=np.uint8)
    ids = [f"img-{i:02d}.png" for i in range(42)]
    page = write_page(tmp_path, embedding, images, ids, **options)
    return page, embedding, ids


def write_page(tmp_path: Path, embedding, images, ids, **options) -> Path:
    options.setdefault("max_sheet_side", 64)  # several sheets even for a few thumbnails
    return write_explorer(tmp_path / "explorer.html", embedding, images, ids, **options)


def folder_run(root: Path, labeled: bool) -> Path:
    """A run directory as train.py leaves it, for a folder of 36 noise images and a near copy
    of one (three classes in sub-folders, or unlabeled with a metadata csv of donor and age):
    map.csv, outliers.csv, suspects.csv (labeled), duplicates.csv,
    feature_neighbours.npy, metrics.json, .hydra/config.yaml. The map is random."""
    rng = np.random.default_rng(2)
    images = root / "images"
    for i in range(36):
        folder = images / CLASSES[i % 3] if labeled else images
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"cell_{i:02d}.png")
    original = images / ("cat" if labeled else "") / "cell_02.png"
    near_copy = np.asarray(Image.open(original)).astype(int) + rng.integers(-2, 3, (28, 28, 3))
    Image.fromarray(near_copy.clip(0, 255).astype(np.uint8)).save(original.with_stem("cell_99"))
    dataset = {"_target_": "medmap.data.sources.load_image_folder", "name": "cells",
               "root": str(images), "label_from": "folder" if labeled else "none"}  # fmt: skip
    if not labeled:
        rows = [f"cell_{i:02d}.png,donor{i % 3},{20 + i}" for i in range(36)]
        (root / "meta.csv").write_text("\n".join(["file,donor,age", *rows, "cell_99.png,x,"]))
        dataset["metadata"] = str(root / "meta.csv")
    collection = load_dataset(dataset, seed=0)
    run = root / "run"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"seed": 0, "dataset": dataset}), run / ".hydra/config.yaml")
    embedding = rng.normal(size=(len(collection), 2))
    features = collection.images.reshape(len(collection), -1).astype(float)
    findings = find_problems(collection, embedding, features, k=15, classifier_folds=2,
                             classifier_max_iter=100, duplicate_threshold=0.2)  # fmt: skip
    metrics = {"method": "tsimcne", "dataset": "cells", "aug": "default", "silhouette": None,
               "knn_acc": None, "labeled": labeled,
               "class_names": collection.class_names if labeled else []}  # fmt: skip
    save_run_outputs(run, collection, embedding, metrics, findings)
    return run


def pile_page(tmp_path: Path, suspect: int | None = None) -> tuple[Path, np.ndarray]:
    """150 points on one spot (classes a and b in turn) and two far apart (a, b): 152 points
    draw squares of 8 px (radius 4). With ``suspect``, that pile point is of class c alone and
    listed as a likely label error (drawn last). Returns the page and the labels."""
    embedding = np.concatenate([np.zeros((150, 2)), [[-10.0, -10.0], [10.0, 10.0]]])
    labels = np.r_[np.arange(150) % 2, 0, 1]
    names, suspects = ["a", "b"], []
    if suspect is not None:
        labels[suspect], names, suspects = 2, ["a", "b", "c"], [Suspect(suspect, "a", 0.9)]
    page = write_page(tmp_path, embedding, np.zeros((152, 8, 8, 3), np.uint8),
                      [f"p{i}" for i in range(152)], labels=labels, class_names=names,
                      suspects=suspects)  # fmt: skip
    return page, labels
