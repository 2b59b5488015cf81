"""``run_train(cfg)``: one experiment from a composed config to the files of its run directory.

The root ``train.py`` is a thin ``@hydra.main`` around ``main``; tests call ``run_train`` with
configs composed from the same ``conf/``.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from medmap.baselines import TSNEBaseline
from medmap.callbacks import MapSnapshots, PhaseSchedule, RunRecord, SaveOnStop
from medmap.checkpoints import AtomicCheckpointIO, load_checkpoint, newest_checkpoint
from medmap.console import quiet_library_noise
from medmap.crash_trace import trace_native_crashes
from medmap.data import ImageCollection, load_dataset, mean_border_colour, stratified_subset
from medmap.data.loading import batches_per_epoch, resident_images, training_loader
from medmap.devices import trainer_arguments
from medmap.errors import TrainingStopped, UserFacingError
from medmap.evaluation import class_scores
from medmap.identity import config_digest, git_commit, run_identity, trains_a_network
from medmap.memory import available_bytes, check_step_fits, measure_step_memory
from medmap.methods import ContrastiveMapModule, build_phases
from medmap.plotting import run_title
from medmap.quality import find_problems, planted_scores
from medmap.run_files import finished_run, run_metrics, save_run_outputs, write_failure_record
from medmap.time_budget import fit_to_time_budget

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


def build_module(cfg: DictConfig, collection: ImageCollection, batch_size: int):
    method = cfg.method
    try:
        check_optimiser_settings(method, cfg.loss)
        phases = build_phases(
            method.epochs,
            method.out_dims,
            method.trainable,
            method.lr_factors,
            method.warmup_epochs,
        )
        return get_class(method._target_)(
            phases=[asdict(phase) for phase in phases],
            backbone_width=cfg.model.width,
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


def checkpoint_identity(cfg: DictConfig, collection: ImageCollection) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed (epochs and rates may change)."""
    return {
        "method": cfg.method.name,
        "dataset": collection.name,
        "n_images": len(collection),
        "width": cfg.model.width,
        "head_hidden": cfg.model.head_hidden,
        "image_size": collection.image_size,
    }


def check_resume_checkpoint(path: str, expected: dict[str, Any]) -> None:
    """Refuse, with the differences named, a checkpoint that another run wrote."""
    saved = load_checkpoint(path).get(RunRecord.KEY)
    if saved is None:
        raise UserFacingError(
            f"ckpt_path={path} was not written by this project's train.py (it records no run). "
            "Resume from <run dir>/checkpoints/last.ckpt of a medmap run."
        )
    differences = [
        f"{key}: checkpoint {saved.get(key)!r}, this run {value!r}"
        for key, value in expected.items()
        if saved.get(key) != value
    ]
    if differences:
        raise UserFacingError(
            f"ckpt_path={path} belongs to a different run ({'; '.join(differences)}). Resume "
            "with the overrides of the run that wrote it (its .hydra/overrides.yaml), or drop "
            "ckpt_path to start afresh."
        )


def resume_from(cfg: DictConfig, output_dir: Path) -> str | None:
    """``ckpt_path`` when given; else, with ``auto_resume``, the newest checkpoint already in
    the run directory, so a stopped or requeued job run again with the same directory goes
    on where it stopped."""
    if cfg.ckpt_path or not cfg.auto_resume:
        return cfg.ckpt_path
    found = newest_checkpoint(output_dir)
    if found is not None:
        log.info(
            "Resuming from %s, the newest checkpoint in this run directory (ckpt_path= picks "
            "another; auto_resume=false starts afresh)",
            found,
        )
    return str(found) if found else None


def train_network(
    cfg: DictConfig, collection: ImageCollection, output_dir: Path, logger
) -> tuple[ContrastiveMapModule, np.ndarray | None, np.ndarray | None, dict[str, Any]]:
    """Train the contrastive method in one Trainer; return the trained module, its map, the
    backbone features of the images and what the run used (map and features are None on DDP
    ranks other than 0)."""
    batch_size = effective_batch_size(cfg.method.batch_size, len(collection))
    steps_per_epoch = batches_per_epoch(len(collection), batch_size, cfg.drop_last)
    time_budget = fit_to_time_budget(
        cfg,
        lambda: build_module(cfg, collection, batch_size),
        collection.images,
        batch_size,
        steps_per_epoch,
        output_dir,
    )
    module = build_module(cfg, collection, batch_size)
    identity = checkpoint_identity(cfg, collection)
    ckpt_path = resume_from(cfg, output_dir)
    if ckpt_path:
        check_resume_checkpoint(ckpt_path, identity)
    snapshot_sample = stratified_subset(collection, cfg.evaluation.snapshot_points, cfg.seed)
    checkpoint_dir = output_dir / "checkpoints"
    quiet_library_noise()
    arguments = trainer_arguments(cfg.trainer)
    # Log at least once per epoch on small collections (and without Lightning's warning).
    arguments["log_every_n_steps"] = max(1, min(arguments["log_every_n_steps"], steps_per_epoch))
    trainer = pl.Trainer(
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
    device = trainer.strategy.root_device
    step = measure_step_memory(module, collection.image_size)
    free = available_bytes(device, cfg.memory_limit_gib)
    share = batch_size // trainer.world_size  # images per process and step
    check_step_fits(step, share, collection.image_size, device, free)
    spare = free - step.step_bytes(share)
    images = resident_images(collection.images, device, cfg.data_on_device, spare)
    try:
        loader = training_loader(
            images, batch_size, cfg.seed, trainer.world_size, trainer.global_rank, cfg.drop_last
        )
    except ValueError as error:
        raise UserFacingError(str(error)) from error
    started = time.perf_counter()
    try:
        # weights_only: a checkpoint is read as tensors and containers, never as code
        trainer.fit(module, loader, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException as stop:  # SaveOnStop has saved the partial epoch
        raise TrainingStopped(
            f"Training was stopped by a signal at epoch {trainer.current_epoch + 1}, step "
            f"{trainer.global_step}; the run can be resumed (see the line above)."
        ) from stop
    # (Ctrl-C never returns here: Lightning exits after SaveOnStop has saved.)
    train_seconds = time.perf_counter() - started
    if not trainer.is_global_zero:  # DDP: the other processes helped train; rank 0 reports
        return module, None, None, {}
    device = trainer.strategy.root_device
    module.to(device)  # Lightning's teardown leaves the module on the CPU; embed on the accelerator
    # Backbone features once: SimCLR's map, the linear evaluation and the data-quality finders.
    features = module.backbone_features(collection.images)
    return (
        module,
        module.embed_map(collection.images, features),
        features,
        {
            "epochs": list(cfg.method.epochs),
            "batch_size": batch_size,
            "steps_per_epoch": steps_per_epoch,  # with the last partial batch unless drop_last
            "time_budget": time_budget,
            "width": cfg.model.width,
            "train_seconds": round(train_seconds, 2),
            "resumed_from": str(ckpt_path) if ckpt_path else None,
            "device": str(device),
            "step": trainer.global_step,
        },
    )


def embed_fixed_features(
    cfg: DictConfig, collection: ImageCollection
) -> tuple[np.ndarray, np.ndarray, dict]:
    """The t-SNE baselines: no training, the map of fixed features (returned too)."""
    started = time.perf_counter()
    baseline = build_baseline(cfg)
    features = baseline.extract(collection.images)
    embedding = baseline.map(features)
    return (
        embedding,
        features,
        {"train_seconds": round(time.perf_counter() - started, 2), "step": 0},
    )


def run_train(cfg: DictConfig) -> dict[str, Any]:
    """Train the configured method (or embed the baseline's features), score the map, look
    for problems in the data and save it all."""
    quiet_library_noise()
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    digest = config_digest(cfg)  # before a time budget rewrites the epochs
    finished = finished_run(cfg, output_dir, digest)
    if finished is not None:
        log.info(
            "%s already holds this run, finished (metrics.json, same settings): not training "
            "it again (auto_resume=false trains afresh). %s",
            output_dir,
            run_title(finished),
        )
        return finished
    commit = git_commit()  # now: the checkout may move on during a long run
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    collection = load_dataset(cfg.dataset, cfg.seed)
    log.info("%s", collection.describe())
    logger = build_logger(cfg, output_dir)
    trained = trains_a_network(cfg)
    if trained:
        _, embedding, features, details = train_network(cfg, collection, output_dir, logger)
        if embedding is None:  # not DDP's rank 0: it writes the run's files alone
            return {}
    else:
        embedding, features, details = embed_fixed_features(cfg, collection)
    step = details.pop("step")
    details["config_digest"] = digest
    findings = find_problems(collection, embedding, features, **cfg.quality, seed=cfg.seed)
    scores = class_scores(
        collection,
        embedding,
        features if trained and cfg.evaluation.linear_eval else None,
        k=cfg.evaluation.knn_k,
        split_seed=cfg.evaluation.split_seed,
        linear_max_iter=cfg.evaluation.linear_max_iter,
        device=details.get("device", "cpu"),
    )
    planted = planted_scores(collection, embedding, findings)
    metrics = run_metrics(cfg, collection, scores, details, planted, commit)
    save_run_outputs(output_dir, collection, embedding, metrics, findings)
    if logger:
        figure = output_dir / "embedding.png" if cfg.logger.get("send_images") else None
        publish_final_metrics(logger, metrics, figure, step)
    log.info("%s", run_title(metrics))
    return metrics


def publish_final_metrics(logger, metrics: dict[str, Any], figure: Path | None, step: int) -> None:
    """The map's scores beside the training curves; on wandb also as the run summary, with
    the final map as an image when ``figure`` is given."""
    scores = {f"map/{key}": metrics.get(key) for key in ("silhouette", "knn_acc", "linear_acc")}
    logger.log_metrics(
        {key: value for key, value in scores.items() if value is not None}, step=step
    )
    if isinstance(logger, pl.loggers.WandbLogger):
        if figure is not None:
            logger.log_image("map/final", [str(figure)], step=step)
        summary = {k: v for k, v in metrics.items() if isinstance(v, int | float | str)}
        logger.experiment.summary.update(summary)
        logger.experiment.finish()
    else:
        logger.save()


def main(cfg: DictConfig) -> float | None:
    """Entry point behind ``@hydra.main``: user errors become one clear message (the trace goes
    to ``error.log`` in the run directory); in a multirun the other jobs go on."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    trace_native_crashes(Path(cfg.paths.output_dir))
    try:
        return run_train(cfg).get("silhouette")
    except (UserFacingError, FloatingPointError, TrainingStopped) as error:
        write_failure_record(Path(cfg.paths.output_dir), error, run_identity(cfg))
        log.error("%s", error)
        if isinstance(error, TrainingStopped):
            sys.exit(error.exit_code)  # a stop from outside ends a multirun too
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return None
        sys.exit(1)
