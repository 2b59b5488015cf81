"""Resuming a run: what a checkpoint must agree on, and which checkpoint a run resumes from."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from medmap.callbacks import RunRecord
from medmap.data import ImageCollection
from medmap.errors import UserFacingError
from medmap.runtime.checkpoints import load_checkpoint, newest_checkpoint

log = logging.getLogger(__name__)

# Identity keys added later, with the value that checkpoints written before them had.
RECORDED_SINCE = {"stem_stride": 1}


def checkpoint_identity(cfg: DictConfig, collection: ImageCollection) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed (epochs and rates may change)."""
    return {
        "method": cfg.method.name,
        "dataset": collection.name,
        "n_images": len(collection),
        "width": cfg.model.width,
        "stem_stride": cfg.model.stem_stride,
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
        f"{key}: checkpoint {saved.get(key, RECORDED_SINCE.get(key))!r}, this run {value!r}"
        for key, value in expected.items()
        if saved.get(key, RECORDED_SINCE.get(key)) != value
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
