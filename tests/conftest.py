"""Shared fixtures: the real data folder and configs composed from the real ``conf/``."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
# The decoded-image cache of the test runs (and of the runs they start) goes to a temporary
# folder, not beside the shared data.
# Made once, by the first process (pytest-xdist's workers inherit it), and removed by that one.
if "MEDMAP_CACHE_DIR" not in os.environ:
    os.environ["MEDMAP_CACHE_DIR"] = tempfile.mkdtemp(prefix="medmap-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MEDMAP_CACHE_DIR"], ignore_errors=True)


def data_dir() -> Path:
    """$DATA_DIR, else ../shared/data beside the repository."""
    return Path(os.environ.get("DATA_DIR", REPO.parent / "shared" / "data")).resolve()


def require_data(*relative: str) -> Path:
    """Skip (with the reason) unless the real file or folder exists under the data dir."""
    path = data_dir().joinpath(*relative)
    if not path.exists():
        pytest.skip(f"real data {path} is absent (set DATA_DIR or place ../shared/data)")
    return path


def compose_config(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """The config ``train.py`` would see for these overrides, with the run dir set."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.data_dir = str(data_dir())
        cfg.paths.output_dir = str(output_dir) if output_dir else None
        cfg.trainer.enable_progress_bar = False
    return cfg


@pytest.fixture
def make_config(tmp_path):
    def make(*overrides: str) -> DictConfig:
        return compose_config(list(overrides), tmp_path / "run")

    return make


def cli(*args: str, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    """`python train.py ARGS` in the repository, as a user runs it (real data dir)."""
    env = {**os.environ, "DATA_DIR": str(data_dir()), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "train.py", *args, "trainer.enable_progress_bar=false"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


# One smoke run through the real CLI, shared by the tests that only read a run's files (or add
# their own beside them: embed.py, explore.py): 400 BloodMNIST-like images of the train split.
SHARED_RUN = ["experiment=smoke", "logger=none", "dataset.splits=[train]", "dataset.subset=400"]


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory) -> Path:
    require_data("medmnist", "bloodmnist.npz")
    run = tmp_path_factory.mktemp("shared") / "run"
    result = cli(*SHARED_RUN, f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run
