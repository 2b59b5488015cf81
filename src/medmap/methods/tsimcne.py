"""t-SimCNE (Böhm et al., ICLR 2023): contrastive learning straight into 2-D."""

from __future__ import annotations

import numpy as np
import torch

from medmap.methods.base import ContrastiveMapModule
from medmap.methods.schedule import annealed_dims


class TSimCNE(ContrastiveMapModule):
    """Three phases (docs/method.md §3): 128-D pretraining, a new 2-D output layer trained
    alone, then everything fine-tuned at a lower rate. The map is the network's own 2-D output."""

    def embed_map(self, images: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        if self.head.out_features != 2:
            raise ValueError(
                f"The network outputs {self.head.out_features}-D (phase {self.phase_index + 1}); "
                "the map needs the 2-D head of the last phase."
            )
        return self.project(images).astype(np.float32)


class AnnealedTSimCNE(TSimCNE):
    """t-SimCNE in one phase (the authors' newest schedule, tsimcne 0.4.24): the network keeps
    its 128-D output, and the loss sees only the first d of its dimensions, with d annealed
    from 128 to ``anneal["to_dim"]`` over the epochs (``anneal["shape"]``). One optimiser and
    one learning-rate schedule throughout; d depends on the epoch alone, so a resumed run
    continues the anneal exactly. The map is the first 2 output dimensions."""

    def __init__(self, *args, anneal: dict | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        anneal = {"shape": "cos", "to_dim": 2, **(anneal or {})}
        if len(self.phases) != 1:
            raise ValueError(
                f"the annealed schedule trains in one phase; method.epochs has {len(self.phases)}"
            )
        self.dims = annealed_dims(
            anneal["shape"], self.phases[0].epochs, self.phases[0].out_dim, anneal["to_dim"]
        )
        if self.dims[-1] != 2:
            raise ValueError(f"the map needs method.anneal.to_dim=2, got {anneal['to_dim']}")

    def loss_dims(self) -> int:
        return self.dims[min(self.current_epoch, len(self.dims) - 1)]

    def loss_inputs(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs[:, : self.loss_dims()]

    def snapshot_map(self, images: np.ndarray) -> np.ndarray | None:
        return self.project(images)[:, :2] if self.loss_dims() == 2 else None

    def embed_map(self, images: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        return self.project(images)[:, :2].astype(np.float32)
