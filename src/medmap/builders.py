"""Builders: the network module, the t-SNE baseline, the logger and the Trainer of a run, each
from the composed config (and the schedule a time budget chose)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from medmap.baselines import TSNEBaseline
from medmap.callbacks import MapSnapshots, PhaseSchedule, RunRecord, SaveOnStop
from medmap.data import ImageCollection, mean_border_colour, stratified_subset
from medmap.data.loading import batches_per_epoch
from medmap.errors import UserFacingError
from medmap.identity import run_identity
from medmap.methods import build_phases
from medmap.runtime.checkpoints import AtomicCheckpointIO
from medmap.runtime.devices import trainer_arguments

log = logging.getLogger(__name__)


def effective_batch_size(requested: int, dataset_size: int) -> int:
    """The batch size actually used: the requested one, or the whole dataset when it is
    smaller (a contrastive batch needs at least 2 images)."""
    if requested < 2:
        raise UserFacingError(f"method.batch_size must be at least 2, got {requested}.")
    if dataset_size < 2:
        raise UserFacingError(f"The dataset has {dataset_size} image(s); training needs 2 or more.")
    if requested > dataset_size:
        log.warning(
            "method.batch_size=%d is larger than the dataset (%d images): using %d",
            requested,
            dataset_size,
            dataset_size,
        )
        return dataset_size
    return requested


def check_optimiser_settings(method: DictConfig, loss: DictConfig) -> None:
    for name, value, valid, rule in (
        ("method.lr_per_256", method.lr_per_256, method.lr_per_256 > 0, "> 0"),
        ("method.momentum", method.momentum, 0 <= method.momentum < 1, "in [0, 1)"),
        ("method.weight_decay", method.weight_decay, method.weight_decay >= 0, ">= 0"),
        ("loss.temperature", loss.temperature, loss.temperature > 0, "> 0"),
        ("loss.exaggeration", loss.exaggeration, loss.exaggeration > 0, "> 0"),
    ):
        if not valid:
            raise ValueError(f"{name} must be {rule}, got {value}")


def build_module(
    cfg: DictConfig,
    collection: ImageCollection,
    batch_size: int,
    schedule: dict[str, list[int]] | None = None,
):
    """The LightningModule of ``cfg.method``; ``schedule`` (``epochs`` and ``warmup_epochs``,
    e.g. a time budget's choice) replaces the configured ones."""
    method = cfg.method
    schedule = schedule or {}
    try:
        check_optimiser_settings(method, cfg.loss)
        phases = build_phases(
            schedule.get("epochs", method.epochs),
            method.out_dims,
            method.trainable,
            method.lr_factors,
            schedule.get("warmup_epochs", method.warmup_epochs),
        )
        return get_class(method._target_)(
            phases=[asdict(phase) for phase in phases],
            backbone_width=cfg.model.width,
            stem_stride=cfg.model.stem_stride,
            head_hidden=cfg.model.head_hidden,
            loss_kernel=cfg.loss.kernel,
            temperature=cfg.loss.temperature,
            exaggeration=cfg.loss.exaggeration,
            base_lr=method.lr_per_256 * batch_size / 256,
            momentum=method.momentum,
            weight_decay=method.weight_decay,
            augmentation=OmegaConf.to_container(cfg.aug, resolve=True),
            fill_colour=mean_border_colour(collection.images).tolist(),
            steps_per_epoch=batches_per_epoch(len(collection), batch_size, cfg.drop_last),
            seed=cfg.seed,
            channels_last=cfg.model.channels_last,
            compile_backbone=cfg.model.compile,
            new_output_init_std=method.new_output_init_std,
            map_options=OmegaConf.to_container(method.map, resolve=True)
            if "map" in method
            else None,
            **({"anneal": OmegaConf.to_container(method.anneal)} if "anneal" in method else {}),
        )
    except ValueError as error:  # out-of-range settings in method, model, loss or aug
        raise UserFacingError(f"Invalid configuration: {error}") from error


def build_baseline(cfg: DictConfig) -> TSNEBaseline:
    method = cfg.method
    return get_class(method._target_)(
        features=method.features,
        seed=cfg.seed,
        weights=method.weights,
        image_size=method.image_size,
        feature_batch_size=method.feature_batch_size,
        map_options=OmegaConf.to_container(method.map, resolve=True),
        pixel_reduction=method.pixel_reduction,
        pca_components=method.pca_components,
        max_pixel_gib=method.max_pixel_gib,
    )


def build_logger(cfg: DictConfig, output_dir: Path):
    kind = cfg.logger.kind
    if kind == "none":
        return False
    if kind == "csv":
        return pl.loggers.CSVLogger(save_dir=str(output_dir), name="csv", version="")
    if kind == "wandb":
        identity = run_identity(cfg)
        return pl.loggers.WandbLogger(
            project=cfg.logger.project,
            save_dir=str(output_dir),
            mode=cfg.logger.mode,
            group=cfg.logger.group
            or _sweep_name()
            or f"{identity['method']}-{identity['dataset']}",
            name=output_dir.name,
            tags=[f"{key}={value}" for key, value in identity.items() if value is not None],
            config=OmegaConf.to_container(cfg, resolve=True),
        )
    raise UserFacingError(f"Unknown logger.kind {kind!r}: use none, csv or wandb.")


def _sweep_name() -> str | None:
    """The multirun's sweep directory name (groups a sweep's runs on the dashboard)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir).name
    return None


def build_trainer(
    cfg: DictConfig,
    module,
    collection: ImageCollection,
    output_dir: Path,
    logger,
    identity: dict[str, Any],
    steps_per_epoch: int,
) -> pl.Trainer:
    """One Trainer for all phases: the phase callback, checkpoints every epoch and on a stop,
    map snapshots during training."""
    snapshot_sample = stratified_subset(collection, cfg.evaluation.snapshot_points, cfg.seed)
    checkpoint_dir = output_dir / "checkpoints"
    arguments = trainer_arguments(cfg.trainer)
    # Log at least once per epoch on small collections (and without Lightning's warning).
    arguments["log_every_n_steps"] = max(1, min(arguments["log_every_n_steps"], steps_per_epoch))
    return pl.Trainer(
        **arguments,
        max_epochs=module.total_epochs,
        default_root_dir=str(output_dir),
        logger=logger,
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,  # SeededBatchSampler splits each global batch itself
        callbacks=[
            RunRecord(identity),
            SaveOnStop(checkpoint_dir),
            PhaseSchedule(checkpoint_dir),
            # No monitor + top-1: every epoch overwrites checkpoints/last.ckpt.
            pl.callbacks.ModelCheckpoint(
                dirpath=str(checkpoint_dir),
                filename="last",
                save_top_k=1,
                enable_version_counter=False,
            ),
            MapSnapshots(
                snapshot_sample.images,
                snapshot_sample.labels,
                collection.class_names,
                output_dir / "snapshots",
                cfg.evaluation.snapshot_every_n_epochs,
                send_to_logger=cfg.logger.get("send_images", False),
            ),
        ],
    )
