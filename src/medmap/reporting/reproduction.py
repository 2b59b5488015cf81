"""The reproduction campaign (``make reproduce``): every run behind one dataset's cells of
Tables 1-3, kept small and durable.

A finished run's small files (metrics, config, log, map, labels; never checkpoints) are copied
to ``<kept>/<budget>/<run name>/``, a folder that is committed as runs finish, so the campaign
survives a new machine and the tables are built from those runs alone: an ad-hoc run elsewhere
under ``outputs/`` cannot replace a cell. The settings are ``conf/reproduce.yaml``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from medmap.reporting.figures import comparison_panel
from medmap.reporting.plotting import score_text
from medmap.reporting.tables import (
    TableSpec,
    collect_runs,
    is_finite,
    mean_std,
    single_jobs,
    sweep_commands,
    write_csv,
)

KEPT_FILES = ("metrics.json", "train.log", "embedding.npy", "labels.npy", "time_budget.json",
              ".hydra/config.yaml", ".hydra/overrides.yaml")  # fmt: skip
MAP_FILES = ("metrics.json", "embedding.npy", "labels.npy")  # what a figure's panel reads
CELL_METRICS = ("silhouette", "knn_acc", "linear_acc")


def campaign_jobs(
    specs: list[TableSpec],
    extra_sweeps: list[dict[str, str]],
    dataset: str,
    seeds: int,
    budget: str,
    sweep_root: Path,
    skip: list[str],
) -> list[list[str]]:
    """The single train.py jobs of every sweep behind the tables' ``dataset`` column (and the
    extra sweeps), each once, the first seed of every cell before any second one; jobs with an
    override listed in ``skip`` are left out."""
    commands = []
    for spec in specs:
        commands += sweep_commands(spec, budget, [dataset], seeds, sweep_root)
    if extra_sweeps:
        extra = TableSpec("extra", "", [], [], [dataset], {}, [], extra_sweeps)
        commands += sweep_commands(extra, budget, [dataset], seeds, sweep_root)
    return [job for job in single_jobs(commands) if not set(job) & set(skip)]


def run_name(job: list[str], config_dir: Path) -> str:
    """The directory name Hydra gives the job (its overrides, ``hydra.job.override_dirname``)."""
    overrides = [o for o in job if not o.startswith("hydra.")]
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    return str(cfg.hydra.job.override_dirname)


def keep_run(run_dir: Path, kept_dir: Path) -> Path:
    """Copy a finished run's small files into ``kept_dir`` (replacing an older copy)."""
    if kept_dir.exists():
        shutil.rmtree(kept_dir)
    for name in KEPT_FILES:
        if (run_dir / name).is_file():
            (kept_dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run_dir / name, kept_dir / name)
    return kept_dir


def cell_of(job: list[str], config_dir: Path) -> dict[str, str]:
    """The identity keys a job's runs share, whatever their seed: the method's name (as runs
    record it: ``method=tsimcne_anneal`` runs are ``tsimcne-anneal``), aug or features."""
    settings = dict(override.split("=", 1) for override in job)
    method = OmegaConf.load(config_dir / "method" / f"{settings['method']}.yaml")
    cell = {"method": str(method.name)}
    if "method.features" in settings:
        cell["features"] = settings["method.features"]
    else:
        cell["aug"] = settings.get("aug", "default")
    return cell


def cell_key(job: list[str], config_dir: Path) -> str:
    """``method/aug`` (or ``method/features``): how claims and figures name a cell."""
    cell = cell_of(job, config_dir)
    return f"{cell['method']}/{cell.get('aug') or cell.get('features')}"


def first_kept_runs(named: list[tuple[list[str], str]], kept_root: Path,
                    config_dir: Path) -> dict[str, Path]:  # fmt: skip
    """Each cell's first kept run with a map (``cell_key`` -> its folder), from the jobs and
    their run names in campaign order (seeds ascending): the run a figure shows, so a figure
    changes only when a cell's first run arrives."""
    first: dict[str, Path] = {}
    for job, name in named:
        key, folder = cell_key(job, config_dir), kept_root / name
        if key not in first and all((folder / f).is_file() for f in MAP_FILES):
            first[key] = folder
    return first


def draw_maps(figures: list[dict], first_runs: dict[str, Path], report: Path) -> list[Path]:
    """``report/<name>.png``/``.pdf`` for each of conf/reproduce.yaml's ``figures``: its cells'
    first runs side by side in the same class colours, each captioned with that run's seed
    and scores (a cell without a kept run says so in its panel)."""
    written = []
    for figure in figures:
        panels, class_names = [], []
        for key in figure["cells"]:
            if key not in first_runs:
                panels.append((key, None, None, "", "no kept run yet"))
                continue
            folder = first_runs[key]
            metrics = json.loads((folder / "metrics.json").read_text())
            class_names = class_names or metrics.get("class_names") or []
            caption = (f"seed {metrics.get('seed')} · "
                       f"silhouette {score_text(metrics.get('silhouette'), '.3f')} · "
                       f"kNN {score_text(metrics.get('knn_acc'), '.1f')}%")  # fmt: skip
            embedding, labels = (np.load(folder / name) for name in MAP_FILES[1:])
            panels.append((key, embedding, labels, caption, ""))
        written += comparison_panel(panels, class_names, report / figure["name"])
    return written


def cell_rows(
    jobs: list[list[str]],
    specs: list[TableSpec],
    kept_root: Path,
    budget: str,
    dataset: str,
    config_dir: Path,
) -> list[dict]:
    """One row per cell the jobs fill (in their order), from the kept runs of ``budget``: the
    tables that show it, seeds, mean and std of each score (empty unless every run has it),
    and the commits the runs came from (the code each trained with: the repository's HEAD
    when it started, which for a campaign is usually the previous run's results commit)."""
    runs = [run for run in collect_runs(kept_root) if run.status == "ok"]
    cells: list[dict[str, str]] = []
    for job in jobs:
        if (cell := cell_of(job, config_dir)) not in cells:
            cells.append(cell)
    rows = []
    for cell in cells:
        criteria = {**cell, "dataset": dataset, "budget": budget}
        finished = [run for run in runs if run.matches(criteria)]
        tables = [spec.name for spec in specs
                  if any(row["match"] == cell for row in spec.rows)]  # fmt: skip
        record: dict[str, Any] = {
            "table": " ".join(sorted(tables)) or "extra",
            "method": cell["method"],
            "aug": cell.get("aug") or cell.get("features"),
            "dataset": dataset,
            "budget": budget,
            "n_seeds": len(finished),
        }
        for metric in CELL_METRICS:
            values = [run.metrics[metric] for run in finished
                      if is_finite(run.metrics.get(metric))]  # fmt: skip
            # only over all n_seeds runs: a mean of fewer would pass for one of n_seeds
            complete = values and len(values) == len(finished)
            record[f"{metric}_mean"], record[f"{metric}_std"] = (
                mean_std(values) if complete else (None, None)
            )
        commits = sorted({str(run.metrics.get("git_commit") or "")[:7] for run in finished})
        record["commits"] = " ".join(c for c in commits if c)
        rows.append(record)
    return rows


def write_cells(rows: list[dict], path: Path) -> Path:
    """cells.csv, scores rounded to 4 decimals (the rows keep them whole for the verdicts)."""
    rounded = [{key: round(value, 4) if isinstance(value, float) else value
                for key, value in row.items()} for row in rows]  # fmt: skip
    return write_csv(rounded, path)
