"""The console commands ``medmap-train``, ``medmap-explore`` and ``medmap-embed`` (installed by
``pip install``), which the clone's ``train.py``, ``explore.py`` and ``embed.py`` also call.

The configs travel with the package: in a wheel they are ``medmap/conf``; in a clone (an
editable install) they are the repository's ``conf/``, so an edit there takes effect at once.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from medmap.errors import UserFacingError
from medmap.runtime.console import unquoted_override_problem

PACKAGE = Path(__file__).resolve().parent


def config_dir() -> Path:
    """``medmap/conf`` when installed from a wheel, else the clone's ``conf/``."""
    shipped = PACKAGE / "conf"
    return shipped if (shipped / "train.yaml").is_file() else PACKAGE.parents[1] / "conf"


def _exit_on_unquoted_overrides(arguments: list[str]) -> None:
    if problem := unquoted_override_problem(arguments):
        sys.exit(f"ERROR: {problem}")


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _train(cfg) -> float | None:
    from medmap.train import main

    return main(cfg)


def train() -> None:
    """``medmap-train [-m] key=value ...``: one run (or a sweep), as ``python train.py``."""
    _exit_on_unquoted_overrides(sys.argv[1:])
    _train()


def explore() -> None:
    """``medmap-explore run=<run dir> [output=<file.html>] [colour_by=<column>]``."""
    from medmap.reporting.explorer import explore_run

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    defaults = OmegaConf.load(config_dir() / "explore.yaml")
    try:
        cfg = OmegaConf.merge(defaults, OmegaConf.from_cli())
        page = explore_run(
            cfg.run,
            cfg.output,
            colour_by=cfg.colour_by,
            thumbnail_size=cfg.thumbnail_size,
            jpeg_quality=cfg.jpeg_quality,
            listed=cfg.listed,
        )
    except MissingMandatoryValue:
        sys.exit("Usage: medmap-explore run=<run dir> [output=<file.html>] [colour_by=<column>]")
    except (UserFacingError, FileNotFoundError) as error:
        sys.exit(f"ERROR: {error}")
    print(f"Wrote {page} ({page.stat().st_size / 1e6:.1f} MB): open it in a browser.")


def embed() -> None:
    """``medmap-embed run=<run dir> dataset=<name> [dataset overrides]``: new images into a
    trained run's map, no retraining."""
    from hydra.errors import HydraException

    from medmap.out_of_sample import embed_into_run

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("run=")]
    if len(runs) != 1:
        sys.exit("Usage: medmap-embed run=<run dir> dataset=<name> [dataset overrides]")
    overrides = [a for a in sys.argv[1:] if not a.startswith("run=")]
    _exit_on_unquoted_overrides(overrides)
    try:
        result = embed_into_run(runs[0], overrides)
    except (UserFacingError, HydraException) as error:
        sys.exit(f"ERROR: {error}")
    score = result["knn_acc_against_map"]
    print(
        f"Embedded {result['n_new']} images into {result['run']}"
        + (f"; kNN acc. against the map: {score:.1f}%" if score is not None else "")
    )
