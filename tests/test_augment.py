import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torchvision.transforms import RandomResizedCrop

from conftest import CONF_DIR
from medmap.augment import AugmentationSpec, BatchAugmenter
from medmap.augment.batched import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    apply_to_selected,
)
from medmap.data import mean_border_colour

ONLY_GEOMETRY = {"jitter_p": 0.0, "grayscale_p": 0.0}


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def load_aug(name: str) -> AugmentationSpec:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"aug={name}"])
    return AugmentationSpec.from_config(OmegaConf.to_container(cfg.aug))


@pytest.mark.parametrize(
    "op, reference, factor",
    [
        (adjust_brightness, TF.adjust_brightness, 1.3),
        (adjust_contrast, TF.adjust_contrast, 0.7),
        (adjust_saturation, TF.adjust_saturation, 1.4),
        (adjust_hue, TF.adjust_hue, 0.08),
        (adjust_hue, TF.adjust_hue, -0.1),
    ],
)
def test_colour_ops_match_torchvision(op, reference, factor):
    images = torch.rand(4, 3, 8, 8, generator=generator())
    ours = op(images.clone(), torch.full((4, 1, 1, 1), factor))
    theirs = torch.stack([reference(image, factor) for image in images])
    assert torch.allclose(ours, theirs, atol=2e-5)


def test_aug_configs_match_spec_section_2():
    default, rot90, randrot = load_aug("default"), load_aug("rot90"), load_aug("randrot")
    assert (default.crop_scale, default.hflip_p, default.jitter_p, default.grayscale_p) == (
        (0.2, 1.0),
        0.5,
        0.8,
        0.2,
    )
    assert (default.brightness, default.contrast, default.saturation, default.hue) == (
        0.4,
        0.4,
        0.4,
        0.1,
    )
    assert (default.rot90_p, default.vflip_p, default.rotation_degrees) == (0.0, 0.0, 0.0)
    assert (rot90.rot90_p, rot90.vflip_p, rot90.rotation_degrees) == (0.5, 0.5, 0.0)
    assert (randrot.rot90_p, randrot.vflip_p, randrot.rotation_degrees) == (0.5, 0.5, 45.0)
    for name, changed in [
        ("nocrop", {"crop": False}),
        ("nojitter", {"jitter_p": 0.0}),
        ("nogray", {"grayscale_p": 0.0}),
    ]:
        ablation = load_aug(name)
        assert ablation.name == name
        for key, value in vars(randrot).items():
            if key != "name":
                assert getattr(ablation, key) == changed.get(key, value), (name, key)


def test_unknown_or_invalid_options_are_refused():
    with pytest.raises(ValueError, match="Unknown augmentation options"):
        AugmentationSpec.from_config({"name": "x", "rotate": 10})
    with pytest.raises(ValueError, match="probability"):
        AugmentationSpec(hflip_p=1.5)


def dihedral_images(image: torch.Tensor) -> list[torch.Tensor]:
    """The 8 symmetries of a square (C, H, W) image."""
    out = []
    for flipped in (image, image.flip(-1)):
        out += [torch.rot90(flipped, k, dims=(-2, -1)) for k in range(4)]
    return out


def test_rot90_setting_covers_exactly_the_eight_symmetries():
    spec = AugmentationSpec(**{**vars(load_aug("rot90")), "crop": False, **ONLY_GEOMETRY})
    image = torch.arange(28 * 28 * 3, dtype=torch.float32).reshape(28, 28, 3) % 251
    batch = image.to(torch.uint8).expand(256, 28, 28, 3).contiguous()
    views = BatchAugmenter(spec, [0, 0, 0])(batch, generator()) * 255
    targets = dihedral_images(batch[0].permute(2, 0, 1).float())
    seen = set()
    for view in views:
        matches = [i for i, t in enumerate(targets) if torch.allclose(view, t, atol=1e-3)]
        assert len(matches) == 1, "every view must be exactly one symmetry of the square"
        seen.add(matches[0])
    assert seen == set(range(8))


def test_default_setting_never_rotates_or_flips_vertically():
    spec = AugmentationSpec(**{**vars(load_aug("default")), "crop": False, **ONLY_GEOMETRY})
    theta = BatchAugmenter(spec, [0, 0, 0]).affine_matrices(2000, generator(), "cpu")
    assert torch.allclose(theta[:, 0, 1], torch.zeros(2000))  # no rotation
    assert torch.all(theta[:, 1, 1] == 1)  # no vertical flip
    flipped = (theta[:, 0, 0] < 0).float().mean().item()
    assert flipped == pytest.approx(0.5, abs=0.04)


def test_randrot_rotates_uniformly_within_45_degrees_and_fills_corners():
    spec = AugmentationSpec(
        **{
            **vars(load_aug("randrot")),
            "crop": False,
            "rot90_p": 0.0,
            "vflip_p": 0.0,
            "hflip_p": 0.0,
            **ONLY_GEOMETRY,
        }
    )
    augmenter = BatchAugmenter(spec, [0.9, 0.5, 0.1])
    theta = augmenter.affine_matrices(4000, generator(), "cpu")
    angles = torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 0, 0]))
    assert angles.abs().max() <= 45.0 + 1e-4
    assert angles.std().item() == pytest.approx(90 / math.sqrt(12), rel=0.05)  # U(-45, 45)
    assert abs(angles.mean().item()) < 1.5

    colour = torch.tensor([40, 80, 160], dtype=torch.uint8)
    batch = colour.expand(64, 28, 28, 3).contiguous()
    views = augmenter(batch, generator(1))
    assert torch.allclose(views[:, :, 14, 14], colour.float().expand(64, 3) / 255, atol=1e-5)
    corners = views[:, :, 0, 0]
    is_fill = torch.isclose(corners, torch.tensor([0.9, 0.5, 0.1]), atol=1e-4).all(dim=1)
    assert is_fill.float().mean() > 0.8  # all but the smallest angles expose the corner


def test_crop_boxes_follow_random_resized_crop():
    spec = AugmentationSpec(**{**vars(load_aug("default")), "hflip_p": 0.0, **ONLY_GEOMETRY})
    theta = BatchAugmenter(spec, [0, 0, 0]).affine_matrices(5000, generator(), "cpu")
    half_w, half_h = theta[:, 0, 0], theta[:, 1, 1]
    area, ratio = half_w * half_h, half_w / half_h
    assert area.min() >= 0.2 - 1e-6 and area.max() <= 1.0 + 1e-6
    assert ratio.min() >= 0.75 - 1e-5 and ratio.max() <= 4 / 3 + 1e-5
    assert torch.all(theta[:, 0, 2].abs() + half_w <= 1 + 1e-6)  # box inside the image
    assert torch.all(theta[:, 1, 2].abs() + half_h <= 1 + 1e-6)
    # The same area distribution as torchvision's RandomResizedCrop (rejection included).
    reference = RandomResizedCrop(size=224, scale=(0.2, 1.0))
    torch.manual_seed(0)
    image = torch.zeros(3, 224, 224)
    boxes = [reference.get_params(image, reference.scale, reference.ratio) for _ in range(5000)]
    reference_area = torch.tensor([h * w / 224**2 for _, _, h, w in boxes])
    assert area.mean().item() == pytest.approx(reference_area.mean().item(), abs=0.01)
    assert area.std().item() == pytest.approx(reference_area.std().item(), abs=0.01)


def test_grayscale_and_jitter_rates():
    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.integers(0, 256, (4000, 8, 8, 3), dtype=np.uint8))
    spec = AugmentationSpec(crop=False, hflip_p=0.0, jitter_p=0.0, grayscale_p=0.2)
    views = BatchAugmenter(spec, [0, 0, 0])(batch, generator())
    gray = (views[:, 0] == views[:, 1]).all(dim=(1, 2)) & (views[:, 1] == views[:, 2]).all(
        dim=(1, 2)
    )
    assert gray.float().mean().item() == pytest.approx(0.2, abs=0.025)
    jitter_only = AugmentationSpec(crop=False, hflip_p=0.0, jitter_p=0.8, grayscale_p=0.0)
    views = BatchAugmenter(jitter_only, [0, 0, 0])(batch, generator())
    unchanged = torch.isclose(views, batch.permute(0, 3, 1, 2).float() / 255, atol=1e-6)
    assert (~unchanged.all(dim=(1, 2, 3))).float().mean().item() == pytest.approx(0.8, abs=0.03)


@pytest.mark.parametrize("op", [adjust_contrast, adjust_hue])
def test_masks_and_index_lists_jitter_the_same_images_the_same_way(op):
    """The GPU's sync-free path (masks) and the CPU's (index lists) agree; unselected images
    stay bit-for-bit unchanged."""
    images = torch.rand(16, 3, 8, 8, generator=generator())
    selected = torch.rand(16, generator=generator(1)) < 0.5
    factor = torch.rand(16, generator=generator(2)) * 0.2 + 0.9
    with_masks = apply_to_selected(images.clone(), selected, op, factor, use_masks=True)
    with_indices = apply_to_selected(images.clone(), selected, op, factor, use_masks=False)
    assert torch.allclose(with_masks, with_indices, atol=1e-6)
    assert torch.equal(with_masks[~selected], images[~selected])
    assert not torch.allclose(with_masks[selected], images[selected])


def test_views_are_reproducible_from_the_seed():
    batch = torch.from_numpy(
        np.random.default_rng(0).integers(0, 256, (32, 28, 28, 3), dtype=np.uint8)
    )
    augmenter = BatchAugmenter(load_aug("randrot"), [0.5, 0.5, 0.5])
    first, again = augmenter(batch, generator(7)), augmenter(batch, generator(7))
    assert torch.equal(first, again)
    assert not torch.allclose(first, augmenter(batch, generator(8)))
    assert first.shape == (32, 3, 28, 28) and first.min() >= 0 and first.max() <= 1


def test_mean_border_colour_uses_only_the_outer_ring():
    images = np.zeros((2, 6, 6, 3), dtype=np.uint8)
    images[:, :, :] = [255, 0, 0]
    images[:, 1:-1, 1:-1] = [0, 255, 0]  # the inside must not count
    images[1, :, :, 2] = 51
    colour = mean_border_colour(images)
    assert np.allclose(colour, [1.0, 0.0, 0.1], atol=1e-6)


def test_aug_yaml_files_map_one_to_one_to_the_spec():
    for path in sorted(CONF_DIR.joinpath("aug").glob("*.yaml")):
        keys = set(yaml.safe_load(path.read_text())) - {"defaults"}
        assert keys <= set(vars(AugmentationSpec())), path.name


def test_views_are_float32_and_unchanged_inside_bf16_autocast():
    """The Trainer runs the augmenter inside bf16 autocast: the geometry must not round."""
    augmenter = BatchAugmenter(load_aug("randrot"), [0.5, 0.5, 0.5])
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (8, 28, 28, 3), np.uint8))
    plain = augmenter(images, generator(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = augmenter(images, generator(1))
    assert inside.dtype == torch.float32 and torch.equal(inside, plain)
