"""t-SimCNE's one-phase schedule with the loss's dimensions annealed from 128 to 2."""

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from conftest import compose_config
from medmap.builders import build_module
from medmap.data import ImageCollection
from medmap.data.loading import training_loader
from medmap.losses import make_loss
from medmap.methods.schedule import annealed_dims


def test_cosine_anneal_matches_the_upstream_formula_and_ends_at_two():
    dims = annealed_dims("cos", 10)
    # floor(2 + 63.5 * (1 + cos(pi * e / 10))) for e = 1..10, capped at 128
    assert dims[0] == math.floor(2 + 63.5 * (1 + math.cos(math.pi / 10))) == 125
    assert dims[4] == math.floor(2 + 63.5 * (1 + math.cos(math.pi / 2))) == 65
    assert dims[-1] == 2 and all(a >= b for a, b in zip(dims, dims[1:]))


def test_piecewise_shapes_hold_fall_and_hold():
    assert annealed_dims("piecewise-linear", 24) == [128] * 16 + [128, 86, 44] + [2] * 5
    # the cosine fall over 3 epochs: floor(2 + 63.5 * (1 + cos(pi * e / 3))), e = 1, 2, 3
    assert annealed_dims("piecewise-cos", 24) == [128] * 16 + [97, 33, 2] + [2] * 5
    linear = annealed_dims("linear", 5, start=10, end=2)
    assert linear == [10, 8, 6, 4, 2]
    with pytest.raises(ValueError, match="shape must be one of"):
        annealed_dims("step", 10)


def anneal_run(tmp_path, stop_after=5, ckpt_path=None):
    """A 5-epoch anneal on 64 tiny images (width 8), stopped after ``stop_after`` epochs
    (the schedule stays that of 5 epochs) or resumed from ``ckpt_path``."""
    cfg = compose_config(["method=tsimcne_anneal", "experiment=smoke", "method.epochs=[5]",
                          "method.warmup_epochs=[1]", "model.width=8"], tmp_path)  # fmt: skip
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    torch.manual_seed(0)  # the same initial weights in every run
    module = build_module(cfg, ImageCollection("x", images, np.arange(64) % 2, ["a", "b"]), 16)
    trainer = pl.Trainer(max_epochs=stop_after, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False,
                         default_root_dir=str(tmp_path), deterministic=True)  # fmt: skip
    trainer.fit(module, training_loader(torch.from_numpy(images), 16, seed=0),
                ckpt_path=ckpt_path, weights_only=False)  # fmt: skip
    return module, trainer, images


def test_the_loss_sees_the_annealed_dimensions_and_the_map_is_the_first_two(tmp_path):
    module, _, images = anneal_run(tmp_path)
    assert module.dims == annealed_dims("cos", 5) and module.head.out_features == 128
    assert module.loss_dims() == 2  # after the last epoch
    outputs = torch.randn(32, 128)
    torch.testing.assert_close(module.loss_inputs(outputs), outputs[:, :2])
    loss = make_loss("cauchy")
    torch.testing.assert_close(loss(*module.loss_inputs(outputs).chunk(2)),
                               loss(*outputs[:, :2].chunk(2)))  # fmt: skip
    np.testing.assert_allclose(module.embed_map(images), module.project(images)[:, :2])
    assert module.snapshot_map(images).shape == (64, 2)


def test_resuming_mid_anneal_ends_where_the_uninterrupted_run_ends(tmp_path):
    straight, _, images = anneal_run(tmp_path / "straight")
    _, cut, _ = anneal_run(tmp_path / "cut", stop_after=3)
    checkpoint = tmp_path / "cut" / "mid.ckpt"
    cut.save_checkpoint(checkpoint)
    resumed, _, _ = anneal_run(tmp_path / "resumed", ckpt_path=str(checkpoint))
    np.testing.assert_allclose(resumed.embed_map(images), straight.embed_map(images), atol=1e-4)
