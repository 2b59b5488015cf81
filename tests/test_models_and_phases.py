import math

import numpy as np
import pytest
import torch

from medmap.callbacks import PhaseSchedule
from medmap.methods import SimCLR, TSimCNE, base, build_phases
from medmap.methods.schedule import phase_at_epoch, warmup_cosine_factor
from medmap.models import ProjectionHead, SmallImageResNet18


@pytest.mark.parametrize("width", [4, 16, 64])
def test_backbone_width_scales_channels_not_shape(width):
    backbone = SmallImageResNet18(width)
    features = backbone(torch.rand(2, 3, 28, 28))
    assert features.shape == (2, 8 * width) and backbone.out_features == 8 * width
    convs = [m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 16 + 3  # stem, 8 blocks x 2, 3 downsampling shortcuts
    assert convs[0].kernel_size == (3, 3) and convs[0].stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in backbone.modules())


def test_full_width_backbone_has_512_features_like_resnet18():
    import torchvision

    ours = sum(p.numel() for p in SmallImageResNet18(64).parameters())
    reference = torchvision.models.resnet18()
    theirs = sum(p.numel() for n, p in reference.named_parameters() if not n.startswith("fc"))
    stem_difference = 64 * 3 * (7 * 7 - 3 * 3)  # the 7x7 stem conv is 3x3 here
    assert ours == theirs - stem_difference


def test_head_output_replacement_keeps_hidden_layer_and_draws_unit_normal_weights():
    torch.manual_seed(0)
    head = ProjectionHead(512, 1024, 128)
    hidden = head.hidden[0].weight.clone()
    head.replace_output(2, init_std=1.0)
    assert head.out_features == 2 and head.output.weight.shape == (2, 1024)
    assert torch.equal(head.hidden[0].weight, hidden)
    assert head.output.weight.std().item() == pytest.approx(1.0, abs=0.05)


def test_warmup_then_cosine_shape():
    factors = [warmup_cosine_factor(s, warmup_steps=10, total_steps=110) for s in range(110)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(factors[:9], factors[1:10]))  # rising
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))  # decaying
    assert factors[60] == pytest.approx(0.5, abs=1e-9)  # half-way through the cosine
    assert factors[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 99 / 100)))
    assert warmup_cosine_factor(0, 0, 5) == 1.0  # no warm-up: starts at the full rate


def test_phases_are_validated_and_located():
    phases = build_phases(
        [3, 2, 4], [128, 2, 2], ["all", "output", "all"], [1, 1, 0.001], [1, 0, 1]
    )
    assert [phase_at_epoch(phases, e) for e in range(9)] == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    with pytest.raises(ValueError, match="one entry per phase"):
        build_phases([3, 2], [128, 2, 2], ["all"] * 3, [1] * 3, [0] * 3)
    with pytest.raises(ValueError, match="at least 1 epoch"):
        build_phases([0], [128], ["all"], [1], [0])
    with pytest.raises(ValueError, match="warm-up"):
        build_phases([2], [128], ["all"], [1], [3])


def make_module(cls=TSimCNE, epochs=(2, 1, 2), **overrides):
    phases = build_phases(
        epochs,
        [128, 2, 2][: len(epochs)],
        ["all", "output", "all"][: len(epochs)],
        [1.0, 1.0, 0.001][: len(epochs)],
        [1, 0, 1][: len(epochs)],
    )
    arguments = dict(
        phases=[vars(p) for p in phases],
        backbone_width=4,
        head_hidden=32,
        loss_kernel="cauchy",
        temperature=1.0,
        base_lr=0.06,
        momentum=0.9,
        weight_decay=5e-4,
        augmentation={"name": "default"},
        fill_colour=[0.5, 0.5, 0.5],
        steps_per_epoch=5,
        seed=0,
    )
    return cls(**{**arguments, **overrides})


def trainable_names(module):
    return {name for name, p in module.named_parameters() if p.requires_grad}


def test_phase_surgery_freezes_and_swaps_the_output_layer():
    module = make_module()
    all_names = {name for name, _ in module.named_parameters()}
    assert trainable_names(module) == all_names and module.head.out_features == 128
    optimizer = module.configure_optimizers()["optimizer"]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.06 * warmup_cosine_factor(0, 5, 10))

    module.enter_phase(1)
    assert module.head.out_features == 2
    assert trainable_names(module) == {"head.output.weight", "head.output.bias"}
    optimizer = module.configure_optimizers()["optimizer"]
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == 2 * 32 + 2
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.06)  # no warm-up in phase 2

    output_layer = module.head.output
    module.enter_phase(2)
    assert module.head.output is output_layer  # same 2-D layer, now with everything training
    assert trainable_names(module) == all_names
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert scheduler.get_last_lr()[0] == pytest.approx(0.06 * 0.001 / 5)  # phase 3: η/1000, warm-up


def test_phase_callback_switches_at_the_epoch_boundary():
    module = make_module()

    class FakeTrainer:
        current_epoch = 0
        rebuilds = 0

        class strategy:  # noqa: N801 - mimics trainer.strategy
            @staticmethod
            def setup_optimizers(trainer):
                trainer.rebuilds += 1

    trainer, callback = FakeTrainer(), PhaseSchedule()
    seen = []
    for epoch in range(5):
        trainer.current_epoch = epoch
        callback.on_train_epoch_start(trainer, module)
        seen.append((module.phase_index, module.head.out_features))
    assert seen == [(0, 128), (0, 128), (1, 2), (2, 2), (2, 2)]
    assert trainer.rebuilds == 2


def test_checkpoint_hooks_restore_the_phase_and_head_before_weights_load():
    source = make_module()
    source.enter_phase(1)
    checkpoint = {"state_dict": source.state_dict()}
    source.on_save_checkpoint(checkpoint)
    fresh = make_module()
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    assert fresh.phase_index == 1 and fresh.head.out_features == 2
    assert trainable_names(fresh) == {"head.output.weight", "head.output.bias"}
    assert torch.equal(fresh.head.output.weight, source.head.output.weight)


def test_simclr_is_one_128d_phase_sharing_the_same_module():
    module = make_module(SimCLR, epochs=(3,), loss_kernel="cosine", temperature=0.5)
    assert len(module.phases) == 1 and module.head.out_features == 128
    images = torch.randint(0, 256, (6, 28, 28, 3), dtype=torch.uint8).numpy()
    assert module.backbone_features(images).shape == (6, 32)
    assert module.project(images).shape == (6, 128)


def test_head_stays_float32_under_bf16_autocast():
    module = make_module()
    module.enter_phase(1)
    images = torch.rand(4, 3, 28, 28)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = module(images)
        features = module.backbone(images)
    assert outputs.dtype == torch.float32
    expected = module.head(features.float())
    assert torch.equal(outputs, expected)


def test_a_head_phase_trains_the_projection_head_on_the_frozen_backbone():
    phases = build_phases([1, 2, 1], [128, 2, 2], ["all", "head", "all"], [1, 1, 1], [0, 0, 0])
    module = make_module(phases=[vars(p) for p in phases])
    module.enter_phase(1)
    head_names = {name for name, _ in module.named_parameters() if name.startswith("head.")}
    assert trainable_names(module) == head_names
    assert {"head.hidden.0.weight", "head.output.weight"} <= head_names
    images = torch.rand(6, 3, 28, 28)
    module(images).sum().backward()
    assert all(p.grad is None for p in module.backbone.parameters())  # no backward through it
    with pytest.raises(ValueError, match="trainable must be one of"):
        build_phases([1], [2], ["backbone"], [1], [0])


def test_mapping_many_images_logs_its_progress(monkeypatch, caplog):
    """A long mapping (embed.py on 327,680 images) says how far it got and how long is left;
    the features are the same as without the progress lines."""
    module = make_module()
    images = np.random.default_rng(0).integers(0, 256, (40, 28, 28, 3), dtype=np.uint8)
    quiet = module.backbone_features(images, batch_size=16)
    monkeypatch.setattr(base, "PROGRESS_EVERY_S", 0.0)
    with caplog.at_level("INFO", logger="medmap.methods.base"):
        features = module.backbone_features(images, batch_size=16)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("mapped")]
    assert [line.split(" images")[0] for line in lines] == [
        "mapped 16 of 40", "mapped 32 of 40", "mapped 40 of 40"]  # fmt: skip
    assert "about" in lines[0] and "min left" in lines[0]
    assert np.allclose(features, quiet, atol=1e-6)
