"""``run_train(cfg)``: one experiment from a composed config to the files of its run directory.

The stages, in order: load the data; train the network (or, for a t-SNE baseline, map fixed
features); look for problems in the data; score the map; write the run's files. Builders live in
``builders``, resuming in ``resume``, what a run writes in ``run_files``. The root ``train.py``
and ``medmap-train`` are thin ``@hydra.main`` wrappers around ``main``; tests call ``run_train``
with configs composed from the same ``conf/``.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException

from medmap.builders import (
    build_baseline,
    build_logger,
    build_module,
    build_trainer,
    effective_batch_size,
)
from medmap.data import ImageCollection, load_dataset
from medmap.data.loading import batches_per_epoch, resident_images, training_loader
from medmap.errors import TrainingStopped, UserFacingError
from medmap.evaluation import class_scores
from medmap.identity import config_digest, git_commit, run_identity, trains_a_network
from medmap.methods import ContrastiveMapModule
from medmap.quality import find_problems, planted_scores
from medmap.reporting.plotting import run_title
from medmap.reporting.run_files import (
    finished_run,
    run_metrics,
    save_run_outputs,
    write_failure_record,
)
from medmap.runtime.console import quiet_library_noise
from medmap.runtime.crash_trace import trace_native_crashes
from medmap.runtime.memory import available_bytes, check_step_fits, measure_step_memory
from medmap.runtime.resume import check_resume_checkpoint, checkpoint_identity, resume_from
from medmap.runtime.time_budget import fit_to_time_budget

log = logging.getLogger(__name__)


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
    module = build_module(cfg, collection, batch_size, time_budget)
    identity = checkpoint_identity(cfg, collection)
    ckpt_path = resume_from(cfg, output_dir)
    if ckpt_path:
        check_resume_checkpoint(ckpt_path, identity)
    quiet_library_noise()
    trainer = build_trainer(cfg, module, collection, output_dir, logger, identity, steps_per_epoch)
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
            "epochs": [phase.epochs for phase in module.phases],
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
    digest = config_digest(cfg)
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
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            return None
        sys.exit(1)
