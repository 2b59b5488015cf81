"""Table 1's reference maps (docs/method.md §5): openTSNE of fixed features, no training
(``method.kind: tsne``). ``tsne_map`` is also SimCLR's map of its backbone features.

``features`` picks what t-SNE sees: the raw pixels, or the average-pooled output of an
ImageNet-pretrained torchvision ResNet (images resized to 224, ImageNet normalisation).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from openTSNE import TSNE

from medmap.errors import UserFacingError

log = logging.getLogger(__name__)

FEATURES = ("pixels", "resnet18", "resnet152")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def tsne_map(features: np.ndarray, seed: int, **tsne_options) -> np.ndarray:
    """openTSNE with its defaults (perplexity 30, PCA init) unless options say otherwise."""
    count = len(features)
    perplexity = min(float(tsne_options.pop("perplexity", 30.0)), max(1.0, (count - 1) / 3))
    tsne = TSNE(
        perplexity=perplexity,
        random_state=seed,
        n_jobs=torch.get_num_threads(),  # OMP_NUM_THREADS: parallel jobs share the cores
        verbose=False,
        **tsne_options,
    )
    return np.asarray(tsne.fit(np.asarray(features, dtype=np.float32)), dtype=np.float32)


class WeightsUnavailableError(UserFacingError):
    """ImageNet weights are neither given, cached nor downloadable."""


PIXEL_REDUCTIONS = ("auto", "none", "pca")


def pixel_features(
    images: np.ndarray,
    reduction: str = "none",
    components: int = 50,
    max_gib: float = 2.0,
    seed: int = 0,
) -> np.ndarray:
    """What the pixel t-SNE sees: each uint8 image flattened to a float vector in [0, 1]
    (``reduction="none"``), or its first ``components`` principal components computed in
    chunks straight from the uint8 images (``"pca"``). ``"auto"`` takes the pixels when their
    float32 matrix fits in ``max_gib`` and PCA otherwise (PCam's pixels would take 36 GB)."""
    if reduction not in PIXEL_REDUCTIONS:
        raise UserFacingError(
            f"method.pixel_reduction={reduction!r} is not one of {', '.join(PIXEL_REDUCTIONS)}."
        )
    gib = images[:1].size * len(images) * 4 / 2**30
    if reduction == "auto":
        reduction = "none" if gib <= max_gib else "pca"
        if reduction == "pca":
            log.info(
                "The pixels of %d images would take %.1f GiB as float32 (method.max_pixel_gib="
                "%.1f): t-SNE sees their first %d principal components instead "
                "(method.pixel_reduction=none forces the raw pixels)",
                len(images),
                gib,
                max_gib,
                components,
            )
    if reduction == "none":
        return images.reshape(len(images), -1).astype(np.float32) / 255.0
    return streamed_pca(images, components, seed=seed)


@torch.no_grad()
def streamed_pca(
    images: np.ndarray,
    components: int = 50,
    oversampling: int = 10,
    power_iterations: int = 2,
    chunk: int = 2048,
    seed: int = 0,
) -> np.ndarray:
    """The first ``components`` principal components of the flattened images (pixels in
    [0, 1], centred), by randomised SVD (Halko, Martinsson & Tropp 2011, algorithms 4.4 and
    5.1) with every product taken over ``chunk`` images at a time. Memory stays at a few
    (pixels x (components + oversampling)) matrices, never (images x pixels); the images are
    read ``5 + 2 * power_iterations`` times, which memory-mapped data allows."""
    count, width = len(images), images[:1].size
    rank = min(components + oversampling, count, width)
    generator = torch.Generator().manual_seed(seed)

    def rows(start: int) -> torch.Tensor:
        block = torch.from_numpy(np.ascontiguousarray(images[start : start + chunk]))
        return block.reshape(len(block), -1).float() / 255.0

    starts = range(0, count, chunk)
    mean = sum(rows(start).double().sum(dim=0) for start in starts) / count
    mean = mean.float()

    def times(matrix: torch.Tensor) -> torch.Tensor:  # (centred pixels) @ matrix, (N, r)
        return torch.cat([(rows(start) - mean) @ matrix for start in starts])

    def transposed_times(matrix: torch.Tensor) -> torch.Tensor:  # (centred pixels)^T @ matrix
        total = torch.zeros(width, matrix.shape[1])
        for start in starts:
            total += (rows(start) - mean).T @ matrix[start : start + chunk]
        return total

    basis = torch.linalg.qr(times(torch.randn(width, rank, generator=generator))).Q
    for _ in range(power_iterations):
        basis = torch.linalg.qr(times(torch.linalg.qr(transposed_times(basis)).Q)).Q
    small = transposed_times(basis).T  # (r, pixels): the data seen through the basis
    _, _, directions = torch.linalg.svd(small, full_matrices=False)
    return times(directions[:components].T).numpy()


def imagenet_weights_file(architecture: str) -> tuple[str, Path]:
    """The URL torchvision downloads ImageNet weights from, and where its cache keeps them."""
    weights = torchvision.models.get_model_weights(architecture).IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    return weights.url, cached


def load_imagenet_resnet(architecture: str, weights_file: str | None) -> torch.nn.Module:
    """A torchvision ResNet with ImageNet weights and no classifier (outputs avg-pool features).

    Weights come from ``weights_file`` when given, else torchvision's cache, else a download;
    when none works the error says which file to fetch and where to put it.
    """
    url, cached = imagenet_weights_file(architecture)
    if weights_file is not None:
        source = Path(weights_file).expanduser()
        if not source.is_file():
            raise WeightsUnavailableError(
                f"method.weights={weights_file} does not exist. Download {url} and pass its path."
            )
    elif cached.is_file():
        source = cached
    else:
        try:
            torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True)
        except Exception as error:  # offline, proxy, HTTP or hash errors: all the same fix
            raise WeightsUnavailableError(
                f"ImageNet weights for {architecture} are not available: they are not in "
                f"torchvision's cache ({cached}) and downloading {url} failed ({error}). On a "
                f"machine with internet, download that file and either copy it to {cached} or "
                f"pass method.weights=<path to it>."
            ) from error
        source = cached
    model = torchvision.models.get_model(architecture, weights=None)
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, ValueError, OSError) as error:
        raise WeightsUnavailableError(
            f"{source} is not a {architecture} ImageNet state dict ({error}). "
            f"Use the file torchvision publishes: {url}"
        ) from error
    model.fc = torch.nn.Identity()
    log.info("Loaded %s ImageNet weights from %s", architecture, source)
    return model.eval()


@torch.no_grad()
def resnet_features(
    model: torch.nn.Module,
    images: np.ndarray,
    image_size: int = 224,
    batch_size: int = 128,
) -> np.ndarray:
    """Average-pooled features of uint8 images, resized and normalised as for ImageNet."""
    device = next(model.parameters()).device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = torch.from_numpy(images[start : start + batch_size]).to(device)
        chunk = chunk.permute(0, 3, 1, 2).float() / 255.0
        chunk = F.interpolate(chunk, size=(image_size, image_size), mode="bilinear", antialias=True)
        outputs.append(model((chunk - mean) / std).float().cpu())
    return torch.cat(outputs).numpy()


class TSNEBaseline:
    """t-SNE of pixels or of pretrained features, as a method of the config system
    (``method=tsne method.features=...``) so it sweeps and tabulates like the trained ones."""

    def __init__(
        self,
        features: str,
        seed: int,
        weights: str | None = None,
        image_size: int = 224,
        feature_batch_size: int = 128,
        map_options: dict | None = None,
        pixel_reduction: str = "auto",
        pca_components: int = 50,
        max_pixel_gib: float = 2.0,
    ) -> None:
        if features not in FEATURES:
            raise UserFacingError(
                f"method.features={features!r} is not one of {', '.join(FEATURES)}."
            )
        self.features = features
        self.seed = seed
        self.weights = weights
        self.image_size = image_size
        self.feature_batch_size = feature_batch_size
        self.map_options = dict(map_options or {})
        self.pixel_reduction = pixel_reduction
        self.pca_components = pca_components
        self.max_pixel_gib = max_pixel_gib

    def extract(self, images: np.ndarray) -> np.ndarray:
        if self.features == "pixels":
            return pixel_features(
                images, self.pixel_reduction, self.pca_components, self.max_pixel_gib, self.seed
            )
        model = load_imagenet_resnet(self.features, self.weights)
        if torch.cuda.is_available():
            model = model.cuda()
        return resnet_features(model, images, self.image_size, self.feature_batch_size)

    def map(self, features: np.ndarray) -> np.ndarray:
        """The 2-D map (N, 2) float32 of ``extract``'s features."""
        return tsne_map(features, self.seed, **self.map_options)

    def fit_transform(self, images: np.ndarray) -> np.ndarray:
        """The 2-D map (N, 2) float32 of uint8 images (N, H, W, 3)."""
        return self.map(self.extract(images))
