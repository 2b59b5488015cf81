"""Datasets: loaders for each source, the in-memory uint8 collection, subsets, border colour."""

from __future__ import annotations

import logging
from typing import Any

from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from medmap.data.cache import load_cached
from medmap.data.collection import (
    ImageCollection,
    mean_border_colour,
    select_splits,
    stratified_subset,
)
from medmap.data.inject import inject
from medmap.data.metadata import join_metadata
from medmap.data.sources import source_files
from medmap.errors import UserFacingError

log = logging.getLogger(__name__)

# Keys of a dataset config that describe the experiment rather than the loader's arguments.
EXPERIMENT_KEYS = (
    "name",
    "subset",
    "splits",
    "inject",
    "metadata",
    "metadata_key",
    "label_column",
    "paper_batch_size",
    "cache_dir",
    "_target_",
)


def load_dataset(dataset_cfg: DictConfig | dict[str, Any], seed: int) -> ImageCollection:
    """Build the collection a ``conf/dataset/*.yaml`` describes: call its loader (``_target_``)
    with the remaining keys (through the decoded-image cache in ``cache_dir``), keep only the
    ``splits`` asked for (e.g. ``[train]``, to hold the test split out), join the ``metadata``
    csv (and take the classes from its ``label_column``), take the seeded stratified ``subset``
    if one is set, then plant the data-quality problems of ``inject`` (duplicates, artefacts,
    label noise; data/inject.py)."""
    params = (
        OmegaConf.to_container(dataset_cfg, resolve=True)
        if isinstance(dataset_cfg, DictConfig)
        else dict(dataset_cfg)
    )
    loader = get_method(params["_target_"])
    arguments = {k: v for k, v in params.items() if k not in EXPERIMENT_KEYS}
    try:  # malformed files and out-of-range options: one message, not a trace
        sources = source_files(loader, arguments)
        collection = load_cached(
            loader, arguments, sources, params.get("cache_dir"), params.get("name")
        )
        collection.name = params.get("name", collection.name)
        collection = select_splits(collection, params.get("splits"))
        if params.get("metadata"):
            collection = join_metadata(
                collection,
                params["metadata"],
                params.get("metadata_key"),
                params.get("label_column"),
            )
        elif params.get("label_column"):
            raise UserFacingError(
                "dataset.label_column needs dataset.metadata=<csv> that holds that column."
            )
        subset = params.get("subset")
        if subset is not None and subset >= len(collection):
            log.info(
                "dataset.subset=%d is not smaller than %s (%d images): using all of them",
                subset,
                collection.name,
                len(collection),
            )
        collection = stratified_subset(collection, subset, seed)
        planted = params.get("inject") or {}
        if any(planted.get(kind) for kind in ("duplicates", "artefacts", "label_noise")):
            collection = inject(collection, **planted)
        return collection
    except ValueError as error:
        raise UserFacingError(str(error)) from error


__all__ = ["ImageCollection", "load_dataset", "mean_border_colour", "stratified_subset"]
