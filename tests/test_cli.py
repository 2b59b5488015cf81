"""Installed like a library: the console commands run outside the clone, and a wheel carries
the configs."""

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from medmap.cli import config_dir


def installed(command: str) -> Path:
    path = Path(sys.executable).parent / command
    if not path.is_file():
        pytest.skip(f"{command} is not installed beside {sys.executable} (pip install -e .)")
    return path


def test_the_clone_reads_its_own_conf_folder():
    assert config_dir() == REPO / "conf"


def test_medmap_train_and_explore_run_from_a_directory_outside_the_clone(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (48, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "mine.npz", train_images=images, train_labels=np.arange(48) % 2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    trained = subprocess.run(
        [installed("medmap-train"), "experiment=smoke", "dataset=npz",
         f"dataset.path={tmp_path / 'mine.npz'}", "method.epochs=[1,1,1]", "logger=none",
         "hydra.run.dir=run", "trainer.enable_progress_bar=false"],
        cwd=elsewhere, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    run = elsewhere / "run"
    assert (run / "metrics.json").is_file() and (run / "train.log").is_file()
    assert "npz: 48 images, 2 classes" in (run / "train.log").read_text()
    explored = subprocess.run([installed("medmap-explore"), "run=run"], cwd=elsewhere,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert explored.returncode == 0, explored.stderr[-2000:]
    assert (run / "explorer.html").is_file()


def test_a_wheel_ships_every_config(tmp_path):
    """``pip install .`` (no clone) must find conf/ inside the package as medmap/conf.
    Built offline with this environment's setuptools (no build isolation)."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("medmap-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in sorted((REPO / "conf").rglob("*.yaml")):
        assert f"medmap/conf/{config.relative_to(REPO / 'conf').as_posix()}" in names
    assert "medmap/reporting/explorer.html" in names and "medmap/cli.py" in names
