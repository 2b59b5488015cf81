"""Same seed, same map; checkpoints never run code; nothing leaves the machine by default."""

import json
import pickle

import numpy as np
import pytest

from conftest import cli, compose_config, require_data
from medmap.checkpoints import load_checkpoint
from medmap.errors import UserFacingError


@pytest.mark.data
def test_same_seed_on_cpu_gives_the_identical_map_and_records_provenance(tmp_path):
    require_data("medmnist", "bloodmnist.npz")
    maps = []
    for name in ("a", "b"):
        result = cli("experiment=smoke", "logger=none", "trainer=cpu", "seed=7",
                     f"hydra.run.dir={tmp_path / name}")  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        maps.append(np.load(tmp_path / name / "embedding.npy"))
    np.testing.assert_array_equal(maps[0], maps[1])
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["seed"] == 7 and len(metrics["git_commit"]) == 40
    assert set(metrics["versions"]) >= {"torch", "pytorch_lightning"}


class RunsCode:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_crafted_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "crafted.ckpt"
    crafted.write_bytes(pickle.dumps({"state_dict": RunsCode(marker)}))
    with pytest.raises(UserFacingError, match="weights_only=True"):
        load_checkpoint(crafted)
    assert not marker.exists()


@pytest.mark.data
def test_resuming_refuses_a_crafted_file_or_another_runs_checkpoint(tmp_path):
    require_data("medmnist", "breastmnist.npz")
    marker = tmp_path / "pwned"
    crafted = tmp_path / "crafted.ckpt"
    crafted.write_bytes(pickle.dumps({"state_dict": RunsCode(marker)}))
    result = cli("experiment=smoke", "logger=none", f"ckpt_path={crafted}",
                 f"hydra.run.dir={tmp_path / 'x'}")  # fmt: skip
    assert result.returncode == 1 and "cannot be loaded safely" in result.stderr + result.stdout
    assert not marker.exists()

    first = cli("experiment=smoke", "logger=none", "dataset=breastmnist", "dataset.subset=100",
                f"hydra.run.dir={tmp_path / 'breast'}")  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    checkpoint = tmp_path / "breast" / "checkpoints" / "last.ckpt"
    for overrides, difference in (
        (["method=simclr", "dataset=breastmnist", "dataset.subset=100"], "method: checkpoint"),
        (["dataset=breastmnist", "dataset.subset=200"], "n_images: checkpoint 100"),
        (["dataset=breastmnist", "dataset.subset=100", "model.width=16"], "width"),
    ):
        result = cli("experiment=smoke", "logger=none", *overrides, f"ckpt_path={checkpoint}",
                     f"hydra.run.dir={tmp_path / 'y'}")  # fmt: skip
        console = result.stdout + result.stderr
        assert result.returncode == 1 and "Traceback" not in console
        assert "belongs to a different run" in console and difference in console


def test_nothing_leaves_the_machine_by_default(monkeypatch):
    assert compose_config([]).logger.kind == "csv"  # local files; wandb only with logger=wandb
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert compose_config(["logger=wandb"]).logger.mode == "offline"  # online is opt-in too
