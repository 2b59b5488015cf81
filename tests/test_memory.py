"""The memory guard: measured step memory, the batch that fits, and the stop before step one."""

import json

import numpy as np
import pytest
import torch

from conftest import cli, compose_config, require_data
from medmap.builders import build_module
from medmap.data import ImageCollection
from medmap.errors import UserFacingError
from medmap.runtime.memory import HEADROOM, StepMemory, check_step_fits, measure_step_memory


def module_for(width: int, size: int):
    cfg = compose_config(["experiment=smoke", f"model.width={width}"])
    images = np.zeros((64, size, size, 3), dtype=np.uint8)
    return build_module(cfg, ImageCollection("x", images, np.zeros(64), ["a"]), 64)


def test_largest_batch_is_the_biggest_power_of_two_that_fits():
    memory = StepMemory(fixed_bytes=100, bytes_per_image=10)
    assert memory.step_bytes(8) == 100 + int(HEADROOM * 80)
    assert memory.largest_batch(memory.step_bytes(16)) == 16
    assert memory.largest_batch(memory.step_bytes(16) - 1) == 8
    assert memory.largest_batch(50) == 0


def test_step_memory_grows_with_pixels_and_width_and_leaves_the_module_alone():
    module = module_for(8, 28)
    before = {key: value.clone() for key, value in module.state_dict().items()}
    random_state = torch.get_rng_state()
    small = measure_step_memory(module, 28)
    after = module.state_dict()
    assert any("running_mean" in key for key in after)
    assert all(torch.equal(after[key], value) for key, value in before.items())
    assert torch.equal(torch.get_rng_state(), random_state)
    assert 3.5 < measure_step_memory(module, 56).bytes_per_image / small.bytes_per_image < 4.5
    wider = measure_step_memory(module_for(16, 28), 28)
    assert 1.7 < wider.bytes_per_image / small.bytes_per_image < 2.3
    parameters = sum(p.numel() * 4 for p in module.parameters())
    assert small.fixed_bytes >= 3 * parameters


def test_a_step_that_does_not_fit_names_the_batch_that_does():
    memory = StepMemory(fixed_bytes=2**20, bytes_per_image=2**20)
    free = memory.step_bytes(100)
    check_step_fits(memory, 64, 28, torch.device("cpu"), free)  # fits: no error
    with pytest.raises(UserFacingError, match=r"method.batch_size=64 fits") as error:
        check_step_fits(memory, 512, 28, torch.device("cpu"), free)
    assert "batch_size=512 on 28 px images" in str(error.value)
    with pytest.raises(UserFacingError, match="even batch 2 does not fit"):
        check_step_fits(memory, 512, 28, torch.device("cpu"), 2**20)


@pytest.mark.data
def test_a_run_whose_step_cannot_fit_stops_before_training(tmp_path):
    require_data("medmnist", "bloodmnist.npz")
    run = tmp_path / "run"
    done = cli("experiment=smoke", "logger=none", "memory_limit_gib=0.02", f"hydra.run.dir={run}")
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    message = json.loads((run / "failed.json").read_text())["error"]
    assert "needs about" in message and "method.batch_size=" in message and " fits" in message
    assert not (run / "checkpoints" / "last.ckpt").exists()  # no step was taken
