"""Datasets: loaders for each source, the in-memory uint8 collection, subsets, border colour."""

from __future__ import annotations

from typing import Any

from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from medmap.data.collection import (
    ImageCollection,
    mean_border_colour,
    select_splits,
    stratified_subset,
)
from medmap.data.inject import inject
from medmap.errors import UserFacingError

# Keys of a dataset config that describe the experiment rather than the loader's arguments.
EXPERIMENT_KEYS = ("name", "subset", "splits", "inject", "_target_")


def load_dataset(dataset_cfg: DictConfig | dict[str, Any], seed: int) -> ImageCollection:
    """Build the collection a ``conf/dataset/*.yaml`` describes: call its loader (``_target_``)
    with the remaining keys, keep only the ``splits`` asked for (e.g. ``[train]``, to hold the
    test split out), take the seeded stratified ``subset`` if one is set, then plant the
    data-quality problems of ``inject`` (duplicates, artefacts; data/inject.py)."""
    params = (
        OmegaConf.to_container(dataset_cfg, resolve=True)
        if isinstance(dataset_cfg, DictConfig)
        else dict(dataset_cfg)
    )
    loader = get_method(params["_target_"])
    arguments = {k: v for k, v in params.items() if k not in EXPERIMENT_KEYS}
    try:  # malformed files and out-of-range options: one message, not a trace
        collection = loader(**arguments)
        collection.name = params.get("name", collection.name)
        collection = select_splits(collection, params.get("splits"))
        collection = stratified_subset(collection, params.get("subset"), seed)
        planted = params.get("inject") or {}
        if planted.get("duplicates") or planted.get("artefacts"):
            collection = inject(collection, **planted)
        return collection
    except ValueError as error:
        raise UserFacingError(str(error)) from error


__all__ = ["ImageCollection", "load_dataset", "mean_border_colour", "stratified_subset"]
