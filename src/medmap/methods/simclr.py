"""SimCLR (Chen et al., 2020), visualised as a t-SNE of its backbone features."""

from __future__ import annotations

import numpy as np
import torch
from openTSNE import TSNE

from medmap.methods.base import ContrastiveMapModule


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


class SimCLR(ContrastiveMapModule):
    """One phase with the cosine (temperature) kernel in 128-D. Its map is the t-SNE of the
    512-D backbone features ("t-SNE of SimCLR" in Table 1)."""

    def embed_map(self, images: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        if features is None:
            features = self.backbone_features(images)
        options = dict(self.hparams.map_options or {})
        return tsne_map(features, self.hparams.seed, **options)
