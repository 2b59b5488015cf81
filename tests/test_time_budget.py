"""A wall-time budget scales the schedule before training; the seed then fixes the run."""

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import open_dict

from conftest import require_data
from medmap.errors import UserFacingError
from medmap.runtime.time_budget import RECORD, fit_to_time_budget, scaled_schedule
from medmap.train import run_train


def test_scaled_schedule_keeps_proportions_one_epoch_each_and_warmup_before_the_end():
    assert scaled_schedule([6, 3, 36], [1, 0, 2], 22.5) == ([3, 1, 18], [1, 0, 2])
    # 5.4 epochs: 1, 1, 4 would overshoot, so the longest phase gives one up
    assert scaled_schedule([6, 3, 36], [1, 0, 2], 5.4) == ([1, 1, 3], [0, 0, 2])
    assert scaled_schedule([1000, 50, 450], [10, 0, 10], 15) == ([10, 1, 4], [9, 0, 3])
    assert scaled_schedule([6, 3, 36], [1, 0, 2], 45) == ([6, 3, 36], [1, 0, 2])
    assert scaled_schedule([6, 3, 36], [1, 0, 2], 1e6) == ([6, 3, 36], [1, 0, 2])
    assert scaled_schedule([6, 3, 36], [1, 0, 2], 0.01) == ([1, 1, 1], [0, 0, 0])


def test_a_tiny_budget_shrinks_the_schedule_and_the_same_explicit_schedule_repeats_it(
    make_config, tmp_path
):
    require_data("medmnist", "bloodmnist.npz")
    boxed = make_config("experiment=smoke", "dataset=bloodmnist", "time_budget_minutes=0.001")
    metrics = run_train(boxed)
    run = Path(boxed.paths.output_dir)
    record = json.loads((run / RECORD).read_text())
    assert record["configured_epochs"] == [2, 1, 2] and record["epochs"] == [1, 1, 1]
    assert record["warmup_epochs"] == [0, 0, 0] and record["step_seconds"] > 0
    assert record["steps_per_epoch"] == 8  # 512 images at batch 64
    assert metrics["epochs"] == [1, 1, 1] and metrics["time_budget"] == record
    # The seed fixes the run given the schedule: the logged epochs, set explicitly, repeat it.
    explicit = make_config("experiment=smoke", "dataset=bloodmnist", "method.epochs=[1,1,1]",
                           "method.warmup_epochs=[0,0,0]")  # fmt: skip
    with open_dict(explicit):
        explicit.paths.output_dir = str(tmp_path / "explicit")
    again = run_train(explicit)
    assert again["time_budget"] is None and again["epochs"] == [1, 1, 1]
    np.testing.assert_array_equal(
        np.load(run / "embedding.npy"), np.load(tmp_path / "explicit" / "embedding.npy")
    )


def test_a_resumed_run_keeps_its_schedule_without_measuring_again(make_config, tmp_path):
    cfg = make_config("experiment=smoke", "time_budget_minutes=5")
    (tmp_path / RECORD).write_text(json.dumps({"epochs": [1, 1, 3], "warmup_epochs": [1, 0, 1]}))

    def no_probe():
        raise AssertionError("a resumed run must not time steps again")

    record = fit_to_time_budget(cfg, no_probe, np.zeros((4, 8, 8, 3), np.uint8), 2, 2, tmp_path)
    assert record["epochs"] == [1, 1, 3] and record["warmup_epochs"] == [1, 0, 1]
    assert list(cfg.method.epochs) == [2, 1, 2]  # the config is left as it was composed


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["time_budget_minutes=0"], "time_budget_minutes must be > 0"),
        (["time_budget_minutes=5", "trainer=ddp"], "single-process run"),
    ],
)
def test_budgets_it_cannot_honour_are_refused(make_config, tmp_path, overrides, message):
    cfg = make_config("experiment=smoke", *overrides)
    with pytest.raises(UserFacingError, match=message):
        fit_to_time_budget(cfg, None, np.zeros((4, 8, 8, 3), np.uint8), 2, 2, tmp_path)


def test_without_a_budget_nothing_changes(make_config, tmp_path):
    cfg = make_config("experiment=smoke")
    assert fit_to_time_budget(cfg, None, None, 2, 2, tmp_path) is None
    assert list(cfg.method.epochs) == [2, 1, 2] and not (tmp_path / RECORD).exists()
