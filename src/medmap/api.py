"""The Python API, in the shape of openTSNE and umap::

    from medmap import TSimCNE
    model = TSimCNE(experiment="cpu").fit(images)     # uint8 (N, H, W, 3), files or a dataset
    new_points = model.transform(more_images)         # into the same map, no retraining
    model.save("blood.medmap"); model = TSimCNE.load("blood.medmap")   # or a train.py run dir

It composes the same ``conf/`` as ``train.py`` and trains through the same ``train_network``
(one Lightning Trainer, the phase callback), so there is no second implementation.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict
from PIL import Image

from medmap.callbacks import RunRecord
from medmap.cli import config_dir
from medmap.data import ImageCollection
from medmap.data.decoding import read_image, square_images
from medmap.data.sources import UNLABELED
from medmap.errors import UserFacingError
from medmap.methods import TSimCNE as TSimCNEModule
from medmap.runtime.checkpoints import load_checkpoint

FORMAT = "medmap-tsimcne/1"


def compose_config(overrides: Sequence[str], output_dir: str | Path) -> DictConfig:
    """The config ``train.py`` would compose for these overrides (Hydra's compose API)."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def as_collection(data: Any, image_size: int | None = None) -> ImageCollection:
    """An ImageCollection from a collection, a uint8 array (N, H, W[, 3]) or image files."""
    if isinstance(data, ImageCollection):
        collection = data
    elif isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim not in (3, 4):
            raise UserFacingError(
                f"Images must be a uint8 array (N, H, W) or (N, H, W, 3); got {data.dtype} "
                f"{data.shape}."
            )
        images = square_images(np.repeat(data[..., None], 3, -1) if data.ndim == 3 else data,
                               "crop", None)  # fmt: skip
        collection = ImageCollection(
            "array", images, np.zeros(len(images), int), [UNLABELED], labeled=False
        )
    elif isinstance(data, list | tuple) and all(isinstance(p, str | Path) for p in data):
        size = image_size or 28
        images = np.stack([read_image(Path(p), size) for p in data])
        collection = ImageCollection("files", images, np.zeros(len(images), int), [UNLABELED],
                                     ids=[str(p) for p in data], labeled=False)  # fmt: skip
    else:
        raise UserFacingError(
            "fit/transform take an ImageCollection, a uint8 array (N, H, W[, 3]) or a list of "
            f"image files; got {type(data).__name__}."
        )
    if image_size and collection.image_size != image_size:
        resized = [
            np.asarray(
                Image.fromarray(i).resize((image_size, image_size), Image.Resampling.BICUBIC)
            )
            for i in collection.images
        ]
        collection = collection.replace(images=np.stack(resized))
    return collection


class TSimCNE:
    """t-SimCNE as an estimator. ``experiment`` picks a budget preset (``smoke``, ``cpu``,
    ``paper``); ``overrides`` are any train.py overrides (``"aug=randrot"``,
    ``"method.epochs=[100,10,50]"``)."""

    def __init__(
        self,
        experiment: str = "cpu",
        overrides: Sequence[str] = (),
        seed: int = 0,
        work_dir: str | Path | None = None,
    ) -> None:
        self.overrides = [
            "method=tsimcne",
            f"experiment={experiment}",
            f"seed={seed}",
            "logger=none",
            *overrides,
        ]
        self.work_dir = work_dir
        self.module: TSimCNEModule | None = None
        self.image_size: int | None = None
        self.embedding_: np.ndarray | None = None

    def fit(self, data: Any) -> TSimCNE:
        from medmap.train import train_network

        collection = as_collection(data)
        work_dir = Path(self.work_dir or tempfile.mkdtemp(prefix="medmap-fit-"))
        cfg = compose_config(self.overrides, work_dir)
        with open_dict(cfg):
            cfg.trainer.enable_progress_bar = False
        self.module, self.embedding_, _, _ = train_network(cfg, collection, work_dir, logger=False)
        self.image_size = collection.image_size
        return self

    def fit_transform(self, data: Any) -> np.ndarray:
        return self.fit(data).embedding_

    def transform(self, data: Any) -> np.ndarray:
        """Map new images into the fitted map (N, 2), without training."""
        if self.module is None:
            raise UserFacingError("Call fit() or TSimCNE.load() before transform().")
        collection = as_collection(data, self.image_size)
        return self.module.embed_map(collection.images)

    def save(self, path: str | Path) -> Path:
        """Weights and settings in one file that loads without running code (tensors and
        plain containers only, read with ``weights_only=True``)."""
        if self.module is None:
            raise UserFacingError("Nothing to save: call fit() first.")
        path = Path(path)
        torch.save(
            {
                "format": FORMAT,
                "hyper_parameters": dict(self.module.hparams),
                "state_dict": self.module.state_dict(),
                "phase_index": self.module.phase_index,
                RunRecord.KEY: {"method": "tsimcne", "image_size": self.image_size},
            },
            path,
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> TSimCNE:
        """A model saved with ``save``, a checkpoint, or a train.py run directory (its
        ``checkpoints/last.ckpt``)."""
        path = Path(path)
        if path.is_dir():
            path = path / "checkpoints" / "last.ckpt"
        checkpoint = load_checkpoint(path)
        record = checkpoint.get(RunRecord.KEY, {})
        if record.get("method", "tsimcne") != "tsimcne" or "hyper_parameters" not in checkpoint:
            raise UserFacingError(f"{path} does not hold a t-SimCNE model.")
        module = TSimCNEModule(**checkpoint["hyper_parameters"])
        module.on_load_checkpoint(checkpoint)  # the head of the saved phase
        module.load_state_dict(checkpoint["state_dict"])
        model = cls()
        model.module = module.eval()
        model.image_size = record.get("image_size")
        return model
