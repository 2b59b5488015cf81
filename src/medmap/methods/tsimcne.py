"""t-SimCNE (Böhm et al., ICLR 2023): contrastive learning straight into 2-D."""

from __future__ import annotations

import numpy as np

from medmap.methods.base import ContrastiveMapModule


class TSimCNE(ContrastiveMapModule):
    """Three phases (SPEC §3): 128-D pretraining, a new 2-D output layer trained alone, then
    everything fine-tuned at a lower rate. The map is the network's own 2-D output."""

    def embed_map(self, images: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        if self.head.out_features != 2:
            raise ValueError(
                f"The network outputs {self.head.out_features}-D (phase {self.phase_index + 1}); "
                "the map needs the 2-D head of the last phase."
            )
        return self.project(images).astype(np.float32)
