"""logger=wandb offline: a complete run directory `wandb sync` could upload, no prompt."""

import json
import os
from pathlib import Path

import pytest

from conftest import require_data
from medmap.train import run_train
from wandb_records import finished_records, history_keys


@pytest.mark.data
def test_offline_wandb_run_has_curves_scores_images_tags_and_config(make_config, monkeypatch):
    require_data("medmnist", "bloodmnist.npz")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", os.fspath(Path(make_config().paths.output_dir).parent))
    cfg = make_config(
        "experiment=smoke",
        "logger=wandb",
        "dataset.subset=256",
        "evaluation.snapshot_every_n_epochs=1",
    )
    metrics = run_train(cfg)
    runs = list((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "expected one offline run directory"
    records = finished_records(next(runs[0].glob("run-*.wandb")))
    keys = history_keys(records)
    assert {"train/loss_step", "train/lr", "train/phase", "map/silhouette", "map/knn_acc"} <= keys
    assert "map/snapshot/filenames" in keys and "map/final/filenames" in keys
    images = list((runs[0] / "files" / "media" / "images").rglob("*.png"))
    # snapshots after epochs 3, 4, 5 (the 2-D phases) and the final map
    assert len(images) == 4
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert {"dataset=bloodmnist", "method=tsimcne", "aug=default", "seed=0"} <= set(run.tags)
    assert run.run_group == "tsimcne-bloodmnist"
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["dataset"]["subset"] == 256  # the resolved config is attached
    summary = {
        item.key: item.value_json
        for record in records
        if record.WhichOneof("record_type") == "summary"
        for item in record.summary.update
    }
    assert float(summary["silhouette"]) == pytest.approx(metrics["silhouette"])


@pytest.mark.data
def test_send_images_false_keeps_every_picture_local(make_config, monkeypatch):
    require_data("medmnist", "bloodmnist.npz")
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_config("experiment=smoke", "logger=wandb", "dataset.subset=256",
                      "logger.send_images=false")  # fmt: skip
    run_train(cfg)
    run = next((Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*"))
    assert not (run / "files" / "media").exists()
    assert "map/silhouette" in history_keys(finished_records(next(run.glob("run-*.wandb"))))
    assert list((Path(cfg.paths.output_dir) / "snapshots").glob("*.png"))  # kept locally
