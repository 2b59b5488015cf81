"""The study's tables from run directories: collect runs, average over seeds, render.

A table's layout (rows, columns, metrics, the poster's numbers and the sweeps behind it) is
data in ``conf/tables/<name>.yaml``. Runs are found by their ``metrics.json`` (finished),
``failed.json`` (a recorded failure) or only ``.hydra/config.yaml`` (unfinished: still
running, or killed). Nothing here trains; building every table takes seconds.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from medmap.identity import run_identity

IDENTITY_KEYS = ("dataset", "method", "features", "aug", "seed", "budget")
# The budgets whose experiment preset (conf/experiment/<budget>.yaml) composes with any dataset
# and aug: the ones a table can be run at.
TABLE_BUDGETS = ("paper", "cpu", "short", "smoke")
MISSING = "—"


@dataclass
class Run:
    directory: Path
    identity: dict[str, Any]
    status: str  # "ok" | "failed" | "unfinished"
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    modified: float = 0.0

    def matches(self, criteria: dict[str, Any]) -> bool:
        return all(self.identity.get(key) == value for key, value in criteria.items())


@dataclass
class TableSpec:
    name: str
    title: str
    metrics: list[dict[str, Any]]  # [{key, decimals}]
    row_headers: list[str]
    columns: list[str]
    column_labels: dict[str, str]
    rows: list[dict[str, Any]]  # [{labels, match, poster}]
    sweeps: list[dict[str, str]]

    @classmethod
    def load(cls, path: str | Path) -> TableSpec:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        return cls(**data)


@dataclass
class Cell:
    values: dict[str, list[float]]  # metric -> one value per seed
    failures: list[Run]
    unfinished: list[Run]

    @property
    def count(self) -> int:
        return max((len(v) for v in self.values.values()), default=0)


# ---------------------------------------------------------------------------------------
# Collecting runs


def _identity_from_hydra_config(directory: Path) -> dict[str, Any] | None:
    """Identity of a run that wrote nothing yet, read from its saved config."""
    try:
        return run_identity(OmegaConf.load(directory / ".hydra" / "config.yaml"))
    except Exception:  # not a medmap run directory
        return None


def collect_runs(root: str | Path) -> list[Run]:
    """Every run directory under ``root``, newest state of each."""
    runs = []
    for config in Path(root).rglob(".hydra/config.yaml"):
        directory = config.parent.parent
        finished, failed = directory / "metrics.json", directory / "failed.json"
        if finished.is_file():
            metrics = json.loads(finished.read_text())
            if metrics.get("labeled") is False:  # an unlabeled collection has no table scores
                continue
            identity = {key: metrics.get(key) for key in IDENTITY_KEYS}
            runs.append(Run(directory, identity, "ok", metrics, modified=_mtime(finished)))
        elif failed.is_file():
            record = json.loads(failed.read_text())
            identity = {key: record.get(key) for key in IDENTITY_KEYS}
            if record.get("dataset") is None:  # failures recorded before identities were
                identity = _identity_from_hydra_config(directory) or identity
            runs.append(
                Run(directory, identity, "failed", error=record["error"], modified=_mtime(failed))
            )
        else:
            identity = _identity_from_hydra_config(directory)
            if identity is not None:
                runs.append(Run(directory, identity, "unfinished", modified=_mtime(config)))
    return runs


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def latest_per_identity(runs: list[Run]) -> list[Run]:
    """One run per (dataset, method, features, aug, seed, budget): the newest finished one;
    failing that the newest failure or unfinished run. Re-running a cell replaces it rather
    than being averaged with it."""
    rank = {"ok": 2, "failed": 1, "unfinished": 0}
    best: dict[tuple, Run] = {}
    for run in runs:
        key = tuple(run.identity.get(k) for k in IDENTITY_KEYS)
        current = best.get(key)
        if current is None or (rank[run.status], run.modified) > (
            rank[current.status],
            current.modified,
        ):
            best[key] = run
    return list(best.values())


# ---------------------------------------------------------------------------------------
# Building


@dataclass
class Table:
    spec: TableSpec
    budget: str | None
    other_budgets: list[str]
    cells: dict[tuple[int, str], Cell]
    expected_seeds: int | None = None  # a campaign's seeds per cell: partial cells say n=k/N

    @cached_property
    def full_seeds(self) -> int:
        """The seeds of a complete cell: the campaign's, else the fullest cell's."""
        return self.expected_seeds or max((c.count for c in self.cells.values()), default=0)


def choose_budget(spec: TableSpec, runs: list[Run], budget: str | None) -> tuple[str | None, list]:
    """The requested budget, else the one of the newest run that belongs to the table."""
    relevant = [
        run
        for run in runs
        if run.identity.get("dataset") in spec.columns
        and any(run.matches(row["match"]) for row in spec.rows)
    ]
    present = sorted({str(run.identity.get("budget")) for run in relevant})
    if budget is None and relevant:
        budget = str(max(relevant, key=lambda run: run.modified).identity.get("budget"))
    return budget, [b for b in present if b != budget]


def build_table(
    spec: TableSpec, runs: list[Run], budget: str | None = None, expected_seeds: int | None = None
) -> Table:
    runs = latest_per_identity(runs)
    budget, others = choose_budget(spec, runs, budget)
    cells = {}
    for index, row in enumerate(spec.rows):
        for column in spec.columns:
            criteria = {**row["match"], "dataset": column, "budget": budget}
            selected = sorted(
                (run for run in runs if run.matches(criteria)),
                key=lambda run: run.identity.get("seed") or 0,
            )
            finished = [run for run in selected if run.status == "ok"]
            values = {
                metric["key"]: [
                    float(run.metrics[metric["key"]])
                    for run in finished
                    if is_finite(run.metrics.get(metric["key"]))
                ]
                for metric in spec.metrics
            }
            cells[index, column] = Cell(
                values,
                failures=[run for run in selected if run.status == "failed"],
                unfinished=[run for run in selected if run.status == "unfinished"],
            )
    return Table(spec, budget, others, cells, expected_seeds)


def is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation over seeds."""
    return float(np.mean(values)), float(np.std(values))


# ---------------------------------------------------------------------------------------
# Rendering


def format_ours(cell: Cell, spec: TableSpec) -> str:
    if cell.count == 0:
        return MISSING
    parts = []
    for metric in spec.metrics:
        values = cell.values[metric["key"]]
        if not values:
            parts.append(MISSING)
            continue
        mean, std = mean_std(values)
        parts.append(f"{mean:.{metric['decimals']}f} ± {std:.{metric['decimals']}f}")
    return " / ".join(parts)


def _markers(table: Table) -> dict[tuple[int, str], str]:
    """A footnote number for each cell with failed or unfinished runs."""
    marks, number = {}, 0
    for key, cell in table.cells.items():
        if cell.failures or cell.unfinished:
            number += 1
            marks[key] = str(number)
    return marks


def render_markdown(table: Table) -> str:
    spec = table.spec
    marks = _markers(table)
    header = [*spec.row_headers, *(spec.column_labels.get(c, c) for c in spec.columns)]
    lines = [
        f"# {spec.title}",
        "",
        f"Budget: **{table.budget or MISSING}**. Each cell: ours, mean ± std over seeds "
        f"(population std), then the poster's number in parentheses. {MISSING} = no finished "
        f"run; {_partial_note(table)}; a number in brackets points to a note below.",
    ]
    if table.other_budgets:
        lines.append(
            f"Runs at other budgets exist ({', '.join(table.other_budgets)}); "
            "build them with `make tables BUDGET=<budget>`."
        )
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in enumerate(spec.rows):
        texts = []
        for column in spec.columns:
            cell = table.cells[index, column]
            text = format_ours(cell, spec) + _seeds_mark(table, cell)
            if (index, column) in marks:
                text += f" [{marks[index, column]}]"
            text += f" ({row['poster'].get(column, MISSING)})"
            texts.append(text)
        lines.append("| " + " | ".join([*row["labels"], *texts]) + " |")
    notes = _notes(table, marks)
    if notes:
        lines += ["", "Failed and unfinished runs (never averaged):", "", *notes]
    lines += ["", "Built by medmap.reporting.tables from the runs' metrics.json files."]
    return "\n".join(lines) + "\n"


def _partial_note(table: Table) -> str:
    if seeds := table.expected_seeds:
        return f"n=k/{seeds} marks cells with fewer than {seeds} seeds"
    return f"n=k marks cells with fewer seeds than the fullest cell ({table.full_seeds})"


def _seeds_mark(table: Table, cell: Cell) -> str:
    """``, n=k/N`` on a cell short of the campaign's N seeds (without N: ``, n=k`` on one short
    of the fullest cell's)."""
    if not 0 < cell.count < table.full_seeds:
        return ""
    of = f"/{table.expected_seeds}" if table.expected_seeds else ""
    return f", n={cell.count}{of}"


def _notes(table: Table, marks: dict[tuple[int, str], str]) -> list[str]:
    notes = []
    for (index, column), mark in marks.items():
        cell = table.cells[index, column]
        label = " · ".join(table.spec.rows[index]["labels"])
        where = table.spec.column_labels.get(column, column)
        by_error = defaultdict(list)
        for run in cell.failures:
            by_error[run.error].append(run)
        for error, runs in by_error.items():
            seeds = ", ".join(str(run.identity.get("seed")) for run in runs)
            notes.append(
                f"- [{mark}] {label} · {where} · seed {seeds}: failed: {error} "
                f"({runs[0].directory})"
            )
        for run in cell.unfinished:
            notes.append(
                f"- [{mark}] {label} · {where} · seed {run.identity.get('seed')}: no result yet "
                f"(still running, or killed: resume with "
                f"ckpt_path={run.directory}/checkpoints/last.ckpt)"
            )
    return notes


def csv_rows(table: Table) -> list[dict[str, Any]]:
    spec = table.spec
    rows = []
    for index, row in enumerate(spec.rows):
        record: dict[str, Any] = dict(zip(spec.row_headers, row["labels"]))
        for column in spec.columns:
            cell = table.cells[index, column]
            for metric in spec.metrics:
                values = cell.values[metric["key"]]
                mean, std = mean_std(values) if values else (math.nan, math.nan)
                prefix = f"{column}_{metric['key']}"
                record[f"{prefix}_mean"] = mean
                record[f"{prefix}_std"] = std
                record[f"{prefix}_n"] = len(values)
            record[f"{column}_failed"] = len(cell.failures)
            record[f"{column}_poster"] = row["poster"].get(column, "")
        record["budget"] = table.budget
        rows.append(record)
    return rows


def _tex(text: str) -> str:
    return (
        text.replace("\\", r"\textbackslash{}")
        .replace("&", r"\&")
        .replace("%", r"\%")
        .replace("_", r"\_")
        .replace("#", r"\#")
        .replace("±", r"$\pm$")
        .replace("−", r"$-$")
        .replace("—", "---")
    )


def render_latex(table: Table) -> str:
    spec = table.spec
    marks = _markers(table)
    header = [*spec.row_headers, *(spec.column_labels.get(c, c) for c in spec.columns)]
    lines = [
        f"% {spec.title} (budget: {table.budget}); ours: mean ± std over seeds, poster in"
        " parentheses. Needs \\usepackage{booktabs}.",
        r"\begin{tabular}{" + "l" * len(spec.row_headers) + "c" * len(spec.columns) + "}",
        r"\toprule",
        " & ".join(_tex(h) for h in header) + r" \\",
        r"\midrule",
    ]
    for index, row in enumerate(spec.rows):
        texts = []
        for column in spec.columns:
            cell = table.cells[index, column]
            text = format_ours(cell, spec) + _seeds_mark(table, cell)
            if (index, column) in marks:
                text += f"$^{{{marks[index, column]}}}$"
            poster = row["poster"].get(column, MISSING)
            texts.append(_tex(text) + r" {\scriptsize(" + _tex(poster) + ")}")
        lines.append(" & ".join([*(_tex(label) for label in row["labels"]), *texts]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_table(table: Table, directory: str | Path) -> list[Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = table.spec.name
    markdown, latex, sheet = (directory / f"{name}.{ext}" for ext in ("md", "tex", "csv"))
    markdown.write_text(render_markdown(table))
    latex.write_text(render_latex(table))
    write_csv(csv_rows(table), sheet)
    return [markdown, sheet, latex]


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    """Rows with the same keys as a csv file, a header from the first row's keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------------------------------
# Sweeps behind a table


# Every run of a budget lives in <sweep root>/<budget>/<its overrides>, whichever table asked for
# it: a run two tables share (t-SimCNE randrot: Tables 1 and 2) trains once.
RUN_DIR_NAME = "${hydra.job.override_dirname}"


def sweep_dir(sweep_root: str | Path, budget: str) -> Path:
    """Where a budget's runs train: each in ``<sweep_dir>/<its overrides>`` (RUN_DIR_NAME)."""
    return Path(sweep_root) / budget


def sweep_commands(
    spec: TableSpec,
    budget: str,
    datasets: list[str],
    seeds: int,
    sweep_root: str | Path,
) -> list[list[str]]:
    """The ``train.py -m`` override lists that produce the table's runs: every sweep of the
    spec over the datasets and seeds 0..seeds-1, at the budget's experiment preset. Each run's
    directory is named by its overrides (``RUN_DIR_NAME``) under ``<sweep_root>/<budget>``,
    so the same command started again finds its runs: finished ones are skipped and stopped
    ones resume (train.py's ``auto_resume``)."""
    unknown = sorted(set(datasets) - set(spec.columns))
    if unknown:
        raise ValueError(
            f"{spec.name} has no column for {', '.join(unknown)}; its datasets are "
            f"{', '.join(spec.columns)}."
        )
    if seeds < 1:
        raise ValueError(f"SEEDS must be at least 1, got {seeds}.")
    return [
        [
            f"experiment={budget}",
            f"dataset={','.join(datasets)}",
            f"seed={','.join(str(seed) for seed in range(seeds))}",
            *(f"{key}={value}" for key, value in sweep.items()),
            f"hydra.sweep.dir={sweep_dir(sweep_root, budget)}",
            f"hydra.sweep.subdir={RUN_DIR_NAME}",
        ]
        for sweep in spec.sweeps
    ]


def single_jobs(commands: list[list[str]]) -> list[list[str]]:
    """The jobs of ``train.py -m`` override lists one by one, each a single run writing into
    the directory its multirun would use, without repeats (runs that several tables share):
    for running them side by side (``scripts/tables.py run --jobs N``). Swept values are
    plain comma lists, as in conf/tables. Seeds vary slowest, so every cell gets its first
    seed before any gets its second."""
    jobs: list[list[str]] = []
    for command in commands:
        settings = dict(override.split("=", 1) for override in command)
        run_dir = f"{settings.pop('hydra.sweep.dir')}/{settings.pop('hydra.sweep.subdir')}"
        seeds = settings.pop("seed").split(",")
        choices = [
            [f"{key}={value}" for value in values.split(",")] for key, values in settings.items()
        ]
        for seed in seeds:
            for combination in itertools.product(*choices):
                job = [*combination, f"seed={seed}", f"hydra.run.dir={run_dir}"]
                if job not in jobs:
                    jobs.append(job)
    return sorted(jobs, key=lambda job: int(job[-2].removeprefix("seed=")))
