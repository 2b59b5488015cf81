"""SimCLR (Chen et al., 2020), visualised as a t-SNE of its backbone features."""

from __future__ import annotations

import numpy as np

from medmap.baselines import tsne_map
from medmap.methods.base import ContrastiveMapModule


class SimCLR(ContrastiveMapModule):
    """One phase with the cosine (temperature) kernel in 128-D. Its map is the t-SNE of the
    512-D backbone features ("t-SNE of SimCLR" in Table 1)."""

    def embed_map(self, images: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        if features is None:
            features = self.backbone_features(images)
        options = dict(self.hparams.map_options or {})
        return tsne_map(features, self.hparams.seed, **options)
