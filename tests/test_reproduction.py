"""make reproduce: the campaign's jobs, the run files it keeps, cells.csv, and a tiny campaign
through the real script that goes on where it stopped."""

import csv
import fcntl
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import CONF_DIR, REPO, data_dir, require_data
from medmap.reporting.reproduction import (
    campaign_jobs,
    cell_rows,
    draw_maps,
    first_kept_runs,
    keep_run,
    run_name,
)
from medmap.reporting.tables import TableSpec

SETTINGS = OmegaConf.load(CONF_DIR / "reproduce.yaml")
SPECS = [TableSpec.load(CONF_DIR / "tables" / f"{name}.yaml") for name in SETTINGS.tables]


def jobs(tmp_path, seeds=3):
    return campaign_jobs(SPECS, OmegaConf.to_container(SETTINGS.extra_sweeps), "bloodmnist",
                         seeds, "cpu", tmp_path, list(SETTINGS.skip))  # fmt: skip


def test_the_campaign_is_27_training_runs_plus_pixels_and_annealing_first_seeds_first(tmp_path):
    planned = jobs(tmp_path)
    assert len(planned) == 33  # 9 training cells x 3 + t-SNE of pixels x 3 + anneal x 3
    seeds = [int(job[-2].removeprefix("seed=")) for job in planned]
    assert seeds == sorted(seeds) and seeds.count(0) == 11  # every cell's seed 0 comes first
    assert not any("method.features=resnet18" in job for job in planned)
    assert sum("method=tsimcne_anneal" in job for job in planned) == 3
    assert all("dataset=bloodmnist" in job and "experiment=cpu" in job for job in planned)


def test_a_run_is_named_as_hydra_names_its_directory(tmp_path):
    job = jobs(tmp_path)[0]
    assert (
        run_name(job, CONF_DIR)
        == "aug=randrot,dataset=bloodmnist,experiment=cpu,method=tsimcne,seed=0"
    )


def test_only_small_files_are_kept_and_a_new_copy_replaces_the_old(tmp_path):
    run = tmp_path / "run"
    for name in ("metrics.json", "train.log", "embedding.npy", ".hydra/config.yaml",
                 "checkpoints/last.ckpt", "snapshots/map_epoch0003.png"):  # fmt: skip
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(name)
    kept = tmp_path / "kept" / "run"
    (kept / "stale.txt").parent.mkdir(parents=True)
    (kept / "stale.txt").write_text("from an older copy")
    keep_run(run, kept)
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()) == [
        ".hydra/config.yaml", "embedding.npy", "metrics.json", "train.log"]  # fmt: skip


def kept_run(root, method, aug, seed, silhouette, commit, option=None):
    run = root / f"{method}-{aug}-{seed}"
    (run / ".hydra").mkdir(parents=True)
    metrics = {"dataset": "bloodmnist", "method": method, "features": None, "aug": aug,
               "seed": seed, "budget": "cpu", "silhouette": silhouette, "knn_acc": 70.0 + seed,
               "linear_acc": None, "git_commit": commit}  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / ".hydra" / "config.yaml").write_text("{}")


def test_cells_average_the_kept_seeds_and_name_their_commits(tmp_path):
    kept = tmp_path / "kept"
    kept_run(kept, "tsimcne", "randrot", 0, 0.20, "a" * 40)
    kept_run(kept, "tsimcne", "randrot", 1, 0.30, "b" * 40)
    kept_run(kept, "tsimcne-anneal", "randrot", 0, 0.25, "a" * 40)
    kept_run(kept, "tsimcne", "rot90", 0, 0.5, "c" * 40)
    (kept / "tsimcne-rot90-0" / "metrics.json").write_text("{}")  # not finished: not counted
    rows = {(r["method"], r["aug"]): r for r in cell_rows(jobs(tmp_path), SPECS, kept, "cpu",
                                                          "bloodmnist", CONF_DIR)}  # fmt: skip
    assert len(rows) == 11
    randrot = rows["tsimcne", "randrot"]
    assert randrot["table"] == "table1 table2" and randrot["n_seeds"] == 2
    assert randrot["silhouette_mean"] == pytest.approx(0.25)
    assert randrot["silhouette_std"] == pytest.approx(0.05)
    assert randrot["knn_acc_mean"] == 70.5 and randrot["linear_acc_mean"] is None
    assert randrot["commits"] == "aaaaaaa bbbbbbb"
    assert rows["tsimcne-anneal", "randrot"]["table"] == "extra"
    assert rows["tsimcne-anneal", "randrot"]["n_seeds"] == 1
    assert rows["simclr", "default"]["table"] == "table1 table3"
    assert rows["tsimcne", "nocrop"]["n_seeds"] == 0


def test_a_score_some_of_a_cells_runs_lack_is_left_empty_not_averaged_over_fewer(tmp_path):
    kept = tmp_path / "kept"
    kept_run(kept, "tsimcne", "randrot", 0, 0.20, "a" * 40)
    kept_run(kept, "tsimcne", "randrot", 1, None, "b" * 40)  # its silhouette failed
    rows = {(r["method"], r["aug"]): r for r in cell_rows(jobs(tmp_path), SPECS, kept, "cpu",
                                                          "bloodmnist", CONF_DIR)}  # fmt: skip
    randrot = rows["tsimcne", "randrot"]
    assert randrot["n_seeds"] == 2 and randrot["knn_acc_mean"] == 70.5
    assert randrot["silhouette_mean"] is None and randrot["silhouette_std"] is None


def test_figures_show_each_cells_first_kept_seed_and_rebuild_to_the_same_bytes(tmp_path):
    """randrot has seeds 1 and 2 kept (seed 0 missing; seed 1's silhouette failed: null),
    default none, rot90 a run without its labels: the figure shows randrot's seed 1 and says
    the others have no run; the PDF carries no creation date, so drawn twice from the same
    runs the files are equal (and a rebuild commits nothing new)."""
    kept, planned = tmp_path / "kept", jobs(tmp_path)
    named = [(job, run_name(job, CONF_DIR)) for job in planned]
    tsimcne = [(job, name) for job, name in named if "method=tsimcne" in job]
    randrot = [name for job, name in tsimcne if "aug=randrot" in job]
    for seed, name in enumerate(randrot):
        if seed == 0:
            continue
        run = kept / name
        run.mkdir(parents=True)
        metrics = {"seed": seed, "silhouette": None if seed == 1 else 0.2, "knn_acc": 70.0,
                   "class_names": ["a", "b"]}  # fmt: skip
        (run / "metrics.json").write_text(json.dumps(metrics))
        np.save(run / "embedding.npy", np.random.default_rng(seed).normal(size=(50, 2)))
        np.save(run / "labels.npy", np.arange(50) % 2)
    rot90 = kept / next(name for job, name in tsimcne if "aug=rot90" in job)
    rot90.mkdir(parents=True)
    (rot90 / "metrics.json").write_text("{}")
    np.save(rot90 / "embedding.npy", np.zeros((5, 2)))
    first = first_kept_runs(named, kept, CONF_DIR)
    assert list(first) == ["tsimcne/randrot"] and first["tsimcne/randrot"] == kept / randrot[1]
    figures = [{"name": "maps", "cells": ["tsimcne/default", "tsimcne/randrot", "tsimcne/rot90"]}]
    written = draw_maps(figures, first, tmp_path / "one")
    assert [path.name for path in written] == ["maps.png", "maps.pdf"]
    assert b"/CreationDate" not in written[1].read_bytes()  # else each rebuild differs
    again = draw_maps(figures, first, tmp_path / "two")
    assert [p.read_bytes() for p in written] == [p.read_bytes() for p in again]


@pytest.mark.data
def test_a_tiny_campaign_keeps_its_run_builds_the_report_and_goes_on_where_it_stopped(tmp_path):
    require_data("medmnist", "bloodmnist.npz")
    settings = ["tables=[table3]", "extra_sweeps=[]", "seeds=1", "skip=[aug=rot90,aug=randrot]",
                f"kept={tmp_path / 'kept'}", f"report={tmp_path / 'report'}",
                f"sweeps={tmp_path / 'sweeps'}"]  # fmt: skip
    command = [sys.executable, "scripts/reproduce.py", "--budget", "smoke", "--no-commit",
               *settings]  # fmt: skip
    env = {**os.environ, "DATA_DIR": str(data_dir())}
    first = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    name = "aug=default,dataset=bloodmnist,experiment=smoke,method=simclr,seed=0"
    assert f"reproduce: {name} done in" in first.stdout and "runs 1/1" in first.stdout
    kept = tmp_path / "kept" / "smoke" / name
    assert (kept / "metrics.json").is_file() and not (kept / "checkpoints").exists()
    assert (tmp_path / "sweeps" / "smoke" / name / "checkpoints" / "last.ckpt").is_file()
    report = tmp_path / "report" / "smoke"  # not the campaign's budget (short): beside its report
    with (report / "cells.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["method"] == "simclr" and row["n_seeds"] == "1" and row["table"] == "table3"
    assert "| default |" in (report / "table3.md").read_text()
    claims = (report / "README.md").read_text()  # written beside the tables
    assert claims.startswith("# The poster's claims at the `smoke` budget")
    assert "| simclr/rot90 > simclr/default (linear_acc) | 96.5 vs 94.5 | — | " in claims
    assert "→ **pending**" in claims and "inconclusive at n=" not in claims
    assert np.load(kept / "embedding.npy").shape == (512, 2)
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert "1 kept, 0 to run" in again.stdout


def test_report_only_rebuilds_tables_cells_and_verdicts_from_kept_runs_without_training(tmp_path):
    """Three seeds of t-SimCNE randrot and default kept (silhouettes 0.20/0.25/0.30 vs
    0.05/0.06/0.07): cells.csv has their means, and the README's verdict on "randrot above
    default" is reproduced (sample stds 0.05 and 0.01: d = 0.19, 2 se =
    2 sqrt((0.05^2 + 0.01^2) / 3) = 0.059); the claim waits for its other comparison."""
    kept = tmp_path / "kept" / "short"
    for seed, (high, low) in enumerate([(0.20, 0.05), (0.25, 0.06), (0.30, 0.07)]):
        kept_run(kept, "tsimcne", "randrot", seed, high, "a" * 40)
        kept_run(kept, "tsimcne", "default", seed, low, "a" * 40)
    for metrics in kept.glob("*/metrics.json"):  # as the short budget's runs record it
        metrics.write_text(metrics.read_text().replace('"budget": "cpu"', '"budget": "short"'))
    command = [sys.executable, "scripts/reproduce.py", "--report-only",
               f"kept={tmp_path / 'kept'}", f"report={tmp_path / 'report'}",
               f"sweeps={tmp_path / 'sweeps'}"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (tmp_path / "sweeps").exists()  # nothing trained
    with (tmp_path / "report" / "cells.csv").open() as handle:
        cells = {(row["method"], row["aug"]): row for row in csv.DictReader(handle)}
    assert cells["tsimcne", "randrot"]["n_seeds"] == "3"
    assert float(cells["tsimcne", "randrot"]["silhouette_mean"]) == pytest.approx(0.25)
    readme = (tmp_path / "report" / "README.md").read_text()
    compared = "tsimcne/randrot > tsimcne/default (silhouette) | 0.50 vs 0.40"
    line = next(row for row in readme.splitlines() if compared in row)
    assert "rotations raise t-SimCNE's silhouette → **pending**" in line
    assert line.endswith("| +0.190 (0.059) | reproduced |")
    assert (tmp_path / "report" / "table1.md").is_file()


def test_a_second_campaign_on_the_same_budget_stops_with_a_message_and_trains_nothing(tmp_path):
    sweeps = tmp_path / "sweeps" / "short"
    sweeps.mkdir(parents=True)
    with (sweeps / ".reproduce.lock").open("a+") as held:  # the first campaign's lock
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        command = [sys.executable, "scripts/reproduce.py", "--no-commit",
                   f"kept={tmp_path / 'kept'}", f"report={tmp_path / 'report'}",
                   f"sweeps={tmp_path / 'sweeps'}"]  # fmt: skip
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "another campaign (pid 4242) is training into" in done.stderr
    assert [path.name for path in sweeps.iterdir()] == [".reproduce.lock"]  # nothing trained


def test_collect_keeps_runs_finished_elsewhere_in_the_sweeps_folder_and_trains_nothing(tmp_path):
    """A run trained outside the campaign (a GPU's side-by-side table jobs) lands in the sweeps
    folder under its run name: --collect keeps it, an unfinished one stays to run."""
    planned = jobs(tmp_path)
    sweeps = tmp_path / "sweeps" / "cpu"
    finished, unfinished = (sweeps / run_name(job, CONF_DIR) for job in planned[:2])
    kept_run(sweeps, "tsimcne", "randrot", 0, 0.24, "d" * 40)
    (sweeps / "tsimcne-randrot-0").rename(finished)
    (unfinished / "checkpoints").mkdir(parents=True)  # stopped: a checkpoint, no metrics.json
    command = [sys.executable, "scripts/reproduce.py", "--budget", "cpu", "--collect",
               "--no-commit", f"kept={tmp_path / 'kept'}", f"report={tmp_path / 'report'}",
               f"sweeps={tmp_path / 'sweeps'}"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "kept 1 finished runs from" in done.stdout and "32 still to run" in done.stdout
    assert (tmp_path / "kept" / "cpu" / finished.name / "metrics.json").is_file()
    assert not (tmp_path / "kept" / "cpu" / unfinished.name).exists()
    with (tmp_path / "report" / "cpu" / "cells.csv").open() as handle:
        cells = {(row["method"], row["aug"]): row for row in csv.DictReader(handle)}
    assert cells["tsimcne", "randrot"]["n_seeds"] == "1"
    assert float(cells["tsimcne", "randrot"]["silhouette_mean"]) == pytest.approx(0.24)
