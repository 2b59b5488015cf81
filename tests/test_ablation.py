"""make ablation: augmentations ranked by their scores, the report for labeled and unlabeled
collections, and the real script on the Leukemia sample (one Hydra multirun, then the report)."""

import json
import os
import subprocess
import sys

import numpy as np

from conftest import REPO, data_dir, require_data
from medmap.reporting.ablation import ablation_rows, write_report


def fake_run(folder, aug, seed, knn, silhouette, labeled=True, points=40, embedding=None):
    run = folder / f"{aug}-seed{seed}"
    run.mkdir(parents=True)
    metrics = {"knn_acc": knn if labeled else None, "silhouette": silhouette if labeled else None,
               "linear_acc": None, "class_names": ["a", "b"] if labeled else []}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(metrics))
    rng = np.random.default_rng(seed)
    if embedding is None:
        embedding = rng.normal(size=(points, 2))
    np.save(run / "embedding.npy", embedding.astype(np.float32))
    np.save(run / "labels.npy", (np.arange(points) % 2) if labeled else np.zeros(points, int))


def test_rows_are_ranked_by_knn_then_silhouette_with_means_over_seeds(tmp_path):
    fake_run(tmp_path, "default", 0, 70.0, 0.10)
    fake_run(tmp_path, "rot90", 0, 80.0, 0.20)
    fake_run(tmp_path, "rot90", 1, 84.0, 0.30)
    fake_run(tmp_path, "randrot", 0, 82.0, 0.05)
    fake_run(tmp_path, "nocrop", 0, 70.0, 0.15)  # ties default on kNN, better silhouette
    rows = ablation_rows(tmp_path, ["default", "nocrop", "nogray", "rot90", "randrot"], seeds=2)
    assert [row["aug"] for row in rows] == ["rot90", "randrot", "nocrop", "default"]  # no nogray
    rot90 = rows[0]
    assert rot90["seeds"] == 2 and rot90["knn_acc"] == 82.0 and rot90["knn_acc_std"] == 2.0
    assert abs(rot90["silhouette"] - 0.25) < 1e-12 and rot90["linear_acc"] is None
    assert -1 <= rot90["cluster_separation"] <= 1 and rot90["cluster_separation_std"] >= 0


def test_report_of_a_labeled_collection_has_the_ranked_table_and_the_maps(tmp_path):
    fake_run(tmp_path, "default", 0, 70.0, 0.10)
    fake_run(tmp_path, "rot90", 0, 80.0, 0.20)
    written = write_report(tmp_path, "my cells", ["default", "rot90", "randrot"], seeds=1)
    assert {path.name for path in written} == {"maps.png", "maps.pdf", "ranking.csv", "report.md"}
    report = (tmp_path / "report.md").read_text()
    assert "| 1 | rot90 | 1 | 80.0 | 0.200 | n/a | 0." in report
    assert "| 2 | default | 1 | 70.0 | 0.100 | n/a | 0." in report
    assert "Not finished: randrot" in report
    assert (tmp_path / "maps.png").read_bytes()[:4] == b"\x89PNG"


def test_an_unlabeled_collection_is_ranked_by_how_well_its_maps_fall_into_groups(tmp_path):
    """Without labels, the map of three tight groups ranks above the map of uniform noise: its
    best k-means silhouette (k = 3) is near 1, the noise's is near 0.4 (hand-checked)."""
    rng = np.random.default_rng(0)
    groups = np.concatenate([rng.normal(centre, 0.2, (100, 2)) for centre in (0, 6, 12)])
    fake_run(
        tmp_path, "default", 0, None, None, labeled=False, embedding=rng.uniform(size=(300, 2))
    )
    fake_run(tmp_path, "rot90", 0, None, None, labeled=False, embedding=groups)
    rows = ablation_rows(tmp_path, ["default", "rot90"], seeds=1)
    assert [row["aug"] for row in rows] == ["rot90", "default"]
    assert rows[0]["cluster_separation"] > 0.85 and 0.3 < rows[1]["cluster_separation"] < 0.5
    fake_run(tmp_path, "nogray", 0, None, None, labeled=False, points=5)  # too few: NaN, last
    rows = ablation_rows(tmp_path, ["nogray", "default", "rot90"], seeds=1)
    assert [row["aug"] for row in rows] == ["rot90", "default", "nogray"]
    write_report(tmp_path, "my folder", ["default", "rot90", "nogray"], seeds=1)
    report = (tmp_path / "report.md").read_text()
    assert "| 3 | nogray | 1 | n/a |" in report
    assert "no labels: ranked by cluster separation" in report
    assert "| 1 | rot90 | 1 | 0.9" in report and "| 2 | default | 1 | 0." in report
    assert (tmp_path / "maps.png").stat().st_size > 5_000


def test_make_ablation_on_the_leukemia_sample_writes_the_report(tmp_path):
    sample = require_data("leukemia-sample")
    env = {**os.environ, "DATA_DIR": str(data_dir())}
    command = [sys.executable, "scripts/ablation.py", "--budget", "smoke",
               "--augs", "default,rot90", "--output", str(tmp_path), "dataset=leukemia",
               f"dataset.root={sample}", "logger=none",
               "trainer.enable_progress_bar=false"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "leukemia-leukemia-sample"
    report = (folder / "report.md").read_text().splitlines()
    rows = [line for line in report if line.startswith("|")]
    assert len(rows) == 2 + 2  # header, rule, one row per augmentation
    for aug in ("default", "rot90"):
        metrics = json.loads((folder / f"{aug}-seed0" / "metrics.json").read_text())
        assert (
            metrics["aug"] == aug
            and metrics["n_images"] == 30
            and len(metrics["class_names"]) == 15
        )
    assert (folder / "maps.pdf").is_file()
    assert "Only 30 images for 15 classes" in (folder / "report.md").read_text()
    assert "UserWarning" not in done.stderr  # the console stays clean on 15 classes of 2 images


def test_make_ablation_without_a_dataset_says_what_to_pass():
    done = subprocess.run([sys.executable, "scripts/ablation.py"], cwd=REPO, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode != 0 and 'DATA="dataset=imagefolder' in done.stderr
    assert "Traceback" not in done.stderr
