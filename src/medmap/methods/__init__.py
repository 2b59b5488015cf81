"""LightningModules: one contrastive base, SimCLR and t-SimCNE as its phase settings."""

from medmap.methods.base import ContrastiveMapModule
from medmap.methods.schedule import Phase, build_phases
from medmap.methods.simclr import SimCLR, tsne_map
from medmap.methods.tsimcne import AnnealedTSimCNE, TSimCNE

__all__ = [
    "AnnealedTSimCNE",
    "ContrastiveMapModule",
    "Phase",
    "SimCLR",
    "TSimCNE",
    "build_phases",
    "tsne_map",
]
