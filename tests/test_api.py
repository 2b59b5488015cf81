"""The estimator API (fit/transform/save/load) and out-of-sample embedding (embed.py)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, data_dir, require_data
from medmap import TSimCNE
from medmap.data import load_dataset
from medmap.errors import UserFacingError


def blood_subset(count, splits=None):
    """The stratified subset a smoke run with dataset.subset=count trains on."""
    require_data("medmnist", "bloodmnist.npz")
    spec = {
        "_target_": "medmap.data.sources.load_medmnist",
        "name": "bloodmnist",
        "flag": "bloodmnist",
        "root": str(data_dir() / "medmnist"),
        "subset": count,
        **({"splits": splits} if splits else {}),
    }
    return load_dataset(spec, seed=0)


@pytest.mark.data
def test_fit_transform_save_load_round_trip(tmp_path):
    collection = blood_subset(400)
    model = TSimCNE(experiment="smoke", work_dir=tmp_path / "fit")
    embedding = model.fit_transform(collection.images)  # a plain uint8 array
    assert embedding.shape == (400, 2) and np.isfinite(embedding).all()
    np.testing.assert_allclose(model.transform(collection.images), embedding, atol=1e-5)
    saved = model.save(tmp_path / "blood.medmap")
    loaded = TSimCNE.load(saved)
    np.testing.assert_allclose(loaded.transform(collection.images[:50]), embedding[:50], atol=1e-5)
    # images of another size are resized to the training size first
    bigger = np.stack(
        [np.asarray(Image.fromarray(i).resize((56, 56))) for i in collection.images[:5]]
    )
    assert loaded.transform(bigger).shape == (5, 2)
    with pytest.raises(UserFacingError, match="uint8"):
        loaded.transform(collection.images.astype(np.float32))
    with pytest.raises(UserFacingError, match="fit"):
        TSimCNE().transform(collection.images)


@pytest.mark.data
def test_fit_on_image_files_and_load_a_run_directory(tmp_path, shared_run):
    collection = blood_subset(80)
    files = []
    for index, pixels in enumerate(collection.images):
        files.append(tmp_path / f"{index}.png")
        Image.fromarray(pixels).save(files[-1])
    model = TSimCNE(experiment="smoke", overrides=["method.batch_size=32"]).fit(files)
    assert model.embedding_.shape == (80, 2) and model.image_size == 28

    from_run = TSimCNE.load(shared_run)
    same = blood_subset(400, splits=["train"])
    np.testing.assert_allclose(from_run.transform(same.images),
                               np.load(shared_run / "embedding.npy"), atol=1e-4)  # fmt: skip


@pytest.mark.data
def test_embed_py_maps_a_held_out_test_split_into_a_train_only_map(shared_run):
    run = shared_run
    # strict JSON: the linear probe has no test split here, and its undefined score is null
    metrics = json.loads((run / "metrics.json").read_text(), parse_constant=pytest.fail)
    assert metrics["n_images"] == 400 and metrics["linear_acc"] is None
    env = {**os.environ, "DATA_DIR": str(data_dir())}
    embedded = subprocess.run(
        [sys.executable, "embed.py", f"run={run}", "dataset=bloodmnist", "dataset.splits=[test]"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert embedded.returncode == 0, embedded.stderr[-2000:]
    new = np.load(run / "embedding_new.npy")
    assert new.shape == (3421, 2) and new.dtype == np.float32  # BloodMNIST's test split
    report = json.loads((run / "embedding_new.json").read_text())
    assert report["splits"] == ["test"] and 0 <= report["knn_acc_against_map"] <= 100
    assert (run / "embedding_new.png").stat().st_size > 10_000
    with (run / "embedding_new.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    with (run / "map.csv").open() as handle:
        map_ids = {row["id"] for row in csv.DictReader(handle)}
    assert [row["id"] for row in rows[:2]] == ["test/0", "test/1"] and len(rows) == 3421
    assert {row["nearest_map_id"] for row in rows} <= map_ids  # named by the map's own ids
    assert all(i.startswith("train/") for i in map_ids)
    assert "kNN acc. against the map" in embedded.stdout
    wrong = subprocess.run(
        [sys.executable, "embed.py", f"run={run}", "dataset.splits=[holdout]"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert wrong.returncode == 1 and "has the splits" in wrong.stderr
    assert "Traceback" not in wrong.stderr
