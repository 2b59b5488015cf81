"""What a run is: the keys that tables group runs by and that wandb tags carry, read from the
run's config alone. Light on purpose (no training stack), so tables rebuild in a blink."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from medmap.errors import UserFacingError

# The settings that decide a run's results; where its files and data live does not.
RESULT_SETTINGS = ("dataset", "aug", "loss", "method", "model", "seed", "budget", "drop_last",
                   "time_budget_minutes", "evaluation", "quality")  # fmt: skip
WHERE_DATA_LIVES = ("root", "cache_dir")


METHOD_KINDS = ("contrastive", "tsne")


def trains_a_network(cfg: DictConfig) -> bool:
    """``method.kind``: contrastive methods train a network; the t-SNE baselines (``tsne``)
    map fixed features. A test checks it against the method classes. Run configs saved before
    the key existed name a baseline by its ``features`` key."""
    kind = cfg.method.get("kind") or ("tsne" if "features" in cfg.method else "contrastive")
    if kind not in METHOD_KINDS:
        raise UserFacingError(f"method.kind must be one of {METHOD_KINDS}, got {kind!r}.")
    return kind == "contrastive"


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """What a run is (the keys tables group by); written even when the run fails."""
    trained = trains_a_network(cfg)
    return {
        "dataset": cfg.dataset.name,
        "method": cfg.method.name,
        "features": None if trained else cfg.method.features,
        "aug": cfg.aug.name if trained else None,
        "loss": cfg.loss.kernel if trained else None,
        "seed": cfg.seed,
        "budget": cfg.budget,  # for baselines too: the budget's experiment also sets the subset
    }


def config_digest(cfg: DictConfig) -> str:
    """A short hash of the resolved settings that decide a run's results, so that a run
    started again in the same directory can tell whether it would only repeat a finished one."""
    settings = {
        key: OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
        for key, value in ((key, cfg.get(key)) for key in RESULT_SETTINGS)
    }
    if isinstance(settings["dataset"], dict):
        for key in WHERE_DATA_LIVES:
            settings["dataset"].pop(key, None)
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_commit() -> str | None:
    """The commit of the code that ran: git's HEAD, or where the code is a copy without git
    (a tree shipped to a cluster node or a borrowed GPU) the MEDMAP_GIT_COMMIT variable."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("MEDMAP_GIT_COMMIT")
