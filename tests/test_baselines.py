"""Table 1's t-SNE baselines: pixels and ImageNet ResNet features, weights from a local file."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from conftest import require_data
from medmap.baselines import (
    TSNEBaseline,
    WeightsUnavailableError,
    imagenet_weights_file,
    load_imagenet_resnet,
    pixel_features,
    resnet_features,
    streamed_pca,
)
from medmap.data.sources import load_medmnist
from medmap.errors import UserFacingError
from medmap.evaluation import map_metrics


def test_pixel_features_flatten_to_unit_range():
    images = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    images[1] = 255
    features = pixel_features(images)
    assert features.shape == (2, 48) and features.dtype == np.float32
    assert features[0].max() == 0.0 and features[1].min() == 1.0


def low_rank_images(count=3000, side=12, rank=8, seed=0):
    """uint8 images that are mostly a mix of ``rank`` patterns (a decaying spectrum)."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(rank, side * side * 3))
    weights = rng.normal(size=(count, rank)) * np.geomspace(40, 5, rank)
    pixels = 128 + weights @ patterns + rng.normal(scale=2, size=(count, side * side * 3))
    return np.clip(pixels, 0, 255).astype(np.uint8).reshape(count, side, side, 3)


def test_streamed_pca_matches_scikit_learns_components():
    from sklearn.decomposition import PCA

    images = low_rank_images()
    ours = streamed_pca(images, components=10, chunk=256)
    exact = PCA(n_components=10, svd_solver="full").fit_transform(pixel_features(images))
    assert ours.shape == (3000, 10) and ours.dtype == np.float32
    for component in range(8):  # the structured directions, each up to its sign
        correlation = np.corrcoef(ours[:, component], exact[:, component])[0, 1]
        assert abs(correlation) > 0.999, (component, correlation)
    np.testing.assert_allclose(ours.var(axis=0)[:8], exact.var(axis=0)[:8], rtol=1e-3)


def test_pixel_features_switch_to_pca_only_beyond_the_memory_limit(caplog):
    images = low_rank_images(count=500)
    small = pixel_features(images, "auto", components=20, max_gib=1.0)
    assert small.shape == (500, 12 * 12 * 3)
    with caplog.at_level("INFO"):
        reduced = pixel_features(images, "auto", components=20, max_gib=1e-4)
    assert reduced.shape == (500, 20) and "principal components instead" in caplog.text
    with pytest.raises(UserFacingError, match="pixel_reduction"):
        pixel_features(images, "umap")


def test_resnet_from_a_local_weights_file_gives_avgpool_features(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None).eval()
    weights = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), weights)
    model = load_imagenet_resnet("resnet18", str(weights))
    assert torch.equal(model.conv1.weight, reference.conv1.weight)  # really loaded the file
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
    features = resnet_features(model, images, image_size=64, batch_size=2)
    assert features.shape == (3, 512)  # avg-pool output, classifier removed
    # same as the torchvision model's avgpool on resized, ImageNet-normalised input
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    batch = torch.nn.functional.interpolate(batch, size=(64, 64), mode="bilinear", antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    reference.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = reference((batch - mean) / std).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)


def test_missing_or_wrong_weights_say_what_to_fetch(tmp_path, monkeypatch):
    url, _ = imagenet_weights_file("resnet152")
    with pytest.raises(WeightsUnavailableError, match="does not exist") as missing:
        load_imagenet_resnet("resnet152", str(tmp_path / "nope.pth"))
    assert url in str(missing.value)
    wrong = tmp_path / "wrong.pth"
    torch.save({"weight": torch.zeros(3)}, wrong)
    with pytest.raises(WeightsUnavailableError, match="not a resnet152"):
        load_imagenet_resnet("resnet152", str(wrong))
    # An empty torchvision cache: either the download works (a machine with internet) or the
    # error names the cache file and how to provide it.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _, cached = imagenet_weights_file("resnet18")
    assert Path(cached).is_relative_to(tmp_path)
    try:
        model = load_imagenet_resnet("resnet18", None)
    except WeightsUnavailableError as error:
        assert str(cached) in str(error) and "method.weights=" in str(error)
    else:
        assert isinstance(model.fc, torch.nn.Identity)
    with pytest.raises(UserFacingError, match="not one of"):
        TSNEBaseline("resnet50", seed=0)


@pytest.mark.data
def test_tsne_of_pixels_on_a_real_subset_separates_blood_cells_above_chance():
    require_data("medmnist", "bloodmnist.npz")
    from conftest import data_dir
    from medmap.data import stratified_subset

    collection = stratified_subset(
        load_medmnist("bloodmnist", root=str(data_dir() / "medmnist")), 800, seed=0
    )
    embedding = TSNEBaseline("pixels", seed=0).fit_transform(collection.images)
    assert embedding.shape == (800, 2) and embedding.dtype == np.float32
    scores = map_metrics(embedding, collection.labels)
    assert np.isfinite(scores["silhouette"])
    assert scores["knn_acc"] > 100 / 8 * 2  # well above chance (8 classes)
    again = TSNEBaseline("pixels", seed=0).fit_transform(collection.images)
    np.testing.assert_allclose(embedding, again, atol=1e-4)  # seeded
