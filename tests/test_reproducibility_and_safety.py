"""Same seed, same map; checkpoints never run code; nothing leaves the machine by default."""

import json
import pickle

import numpy as np
import pytest

from conftest import SHARED_RUN, cli, compose_config, require_data
from medmap.errors import UserFacingError
from medmap.runtime.checkpoints import load_checkpoint
from medmap.train import run_train


@pytest.mark.data
def test_same_seed_on_cpu_gives_the_identical_map_and_records_provenance(tmp_path):
    require_data("medmnist", "bloodmnist.npz")
    maps = []
    for name in ("a", "b"):
        settings = ["experiment=smoke", "logger=none", "trainer=cpu", "seed=7",
                    "dataset.subset=256"]  # fmt: skip
        run_train(compose_config(settings, tmp_path / name))
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


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # the crafted file's
def test_a_crafted_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "crafted.ckpt"
    crafted.write_bytes(pickle.dumps({"state_dict": RunsCode(marker)}))
    with pytest.raises(UserFacingError, match="weights_only=True"):
        load_checkpoint(crafted)
    assert not marker.exists()


@pytest.mark.data
def test_resuming_refuses_a_crafted_file_or_another_runs_checkpoint(tmp_path, shared_run):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "crafted.ckpt"
    crafted.write_bytes(pickle.dumps({"state_dict": RunsCode(marker)}))
    result = cli("experiment=smoke", "logger=none", f"ckpt_path={crafted}",
                 f"hydra.run.dir={tmp_path / 'x'}")  # fmt: skip
    assert result.returncode == 1 and "cannot be loaded safely" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert not marker.exists()

    checkpoint = shared_run / "checkpoints" / "last.ckpt"  # 400 images of the train split
    for overrides, difference in (
        (["method=simclr"], "method: checkpoint"),
        (["dataset.subset=200"], "n_images: checkpoint 400"),
        (["model.width=16"], "width"),
        (["model.stem_stride=2"], "stem_stride: checkpoint 1"),
    ):
        settings = [*SHARED_RUN, *overrides, f"ckpt_path={checkpoint}"]
        with pytest.raises(UserFacingError, match="belongs to a different run") as refused:
            run_train(compose_config(settings, tmp_path / "y"))
        assert difference in str(refused.value)


def test_nothing_leaves_the_machine_by_default(monkeypatch):
    assert compose_config([]).logger.kind == "csv"  # local files; wandb only with logger=wandb
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert compose_config(["logger=wandb"]).logger.mode == "offline"  # online is opt-in too
