"""Tables from run directories: means and stds over seeds, missing cells, failures, budgets."""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import CONF_DIR, REPO, data_dir, require_data
from medmap.reporting.tables import (
    TableSpec,
    build_table,
    collect_runs,
    render_markdown,
    single_jobs,
    sweep_commands,
    write_table,
)

TABLE1 = TableSpec.load(CONF_DIR / "tables" / "table1.yaml")
TABLE2 = TableSpec.load(CONF_DIR / "tables" / "table2.yaml")


def fake_run(root, name, status="ok", mtime=None, **values):
    """A run directory as train.py leaves it: .hydra/config.yaml plus its result file."""
    identity = {
        "dataset": "bloodmnist",
        "method": "tsimcne",
        "features": None,
        "aug": "default",
        "seed": 0,
        "budget": "cpu",
    }
    identity.update({k: v for k, v in values.items() if k in identity})
    directory = root / name
    (directory / ".hydra").mkdir(parents=True)
    trained = identity["method"] != "tsne"
    method = (
        {"name": identity["method"]}
        if trained
        else {"name": "tsne", "features": identity["features"]}
    )
    config = {
        "dataset": {"name": identity["dataset"]},
        "method": method,
        "aug": {"name": identity["aug"] or "default"},
        "loss": {"kernel": "cauchy"},
        "seed": identity["seed"],
        "budget": identity["budget"],
    }
    (directory / ".hydra" / "config.yaml").write_text(json.dumps(config))
    if status == "ok":
        result = directory / "metrics.json"
        result.write_text(json.dumps({**identity, **values}))
    elif status == "failed":
        result = directory / "failed.json"
        result.write_text(json.dumps({"error": values["error"], **identity}))
    else:
        result = directory / ".hydra" / "config.yaml"
    if mtime is not None:
        os.utime(result, (mtime, mtime))
    return directory


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_cells_average_seeds_and_show_missing_failed_and_unfinished(tmp_path):
    sweep = tmp_path / "multirun" / "2026-01-01"
    for seed, value in enumerate([0.30, 0.40, 0.50]):
        fake_run(sweep, f"{seed}_default", seed=seed, silhouette=value, knn_acc=80.0)
    fake_run(sweep, "3_rot90", aug="rot90", seed=0, silhouette=0.25, knn_acc=70.0)
    fake_run(sweep, "4_rot90", aug="rot90", seed=1, silhouette=float("nan"), knn_acc=70.0)
    fake_run(sweep, "5_pixels", method="tsne", features="pixels", aug=None, silhouette=0.07)
    reason = "ImageNet weights for resnet18 are not available: they are not in the cache"
    for seed in (0, 1):
        fake_run(sweep, f"6_r18_{seed}", "failed", method="tsne", features="resnet18",
                 aug=None, seed=seed, error=reason)  # fmt: skip
    fake_run(sweep, "7_randrot", "unfinished", aug="randrot")
    fake_run(sweep, "8_other_budget", budget="smoke", silhouette=-0.5)

    table = build_table(TABLE1, collect_runs(tmp_path), budget="cpu")
    markdown = render_markdown(table)
    rows = {(r["method"], r["augm."]): r for r in read_csv(write_table(table, tmp_path / "t")[1])}

    default = rows["t-SimCNE", "default"]
    assert math.isclose(float(default["bloodmnist_silhouette_mean"]), 0.40)
    assert math.isclose(float(default["bloodmnist_silhouette_std"]), np.std([0.3, 0.4, 0.5]))
    assert default["bloodmnist_silhouette_n"] == "3" and default["bloodmnist_poster"] == "0.40±0.00"
    assert "0.40 ± 0.08 (0.40±0.00)" in markdown  # ours beside the poster's
    assert rows["t-SimCNE", "rot90"]["bloodmnist_silhouette_n"] == "1"  # NaN is not averaged
    assert "0.25 ± 0.00, n=1" in markdown
    assert rows["t-SNE", "pixel space"]["bloodmnist_silhouette_mean"] == "0.07"
    assert rows["t-SNE of SimCLR", "default"]["bloodmnist_silhouette_n"] == "0"
    assert rows["t-SNE", "ResNet18"]["bloodmnist_failed"] == "2"
    resnet_line = next(line for line in markdown.splitlines() if "| ResNet18 |" in line)
    assert "— [" in resnet_line.split("|")[4]  # empty cell that points to its reason
    assert f"seed 0, 1: failed: {reason}" in markdown
    assert "7_randrot" in markdown and "no result yet" in markdown
    assert "-0.50" not in markdown and "other budgets exist (smoke)" in markdown
    tex = (tmp_path / "t" / "table1.tex").read_text()
    assert r"0.40 $\pm$ 0.08 {\scriptsize(0.40$\pm$0.00)}" in tex


def test_a_campaigns_partial_cells_say_n_of_its_seeds_in_markdown_and_latex(tmp_path):
    for seed in (0, 1):
        fake_run(tmp_path, f"d{seed}", seed=seed, silhouette=0.3 + seed / 10, knn_acc=80.0)
    fake_run(tmp_path, "r0", aug="rot90", silhouette=0.25, knn_acc=70.0)
    table = build_table(TABLE1, collect_runs(tmp_path), budget="cpu", expected_seeds=3)
    markdown, _, tex = (path.read_text() for path in write_table(table, tmp_path / "t"))
    assert "0.35 ± 0.05, n=2/3 (0.40±0.00)" in markdown and "0.25 ± 0.00, n=1/3" in markdown
    assert "n=k/3 marks cells with fewer than 3 seeds" in markdown
    assert "0.35 $\\pm$ 0.05, n=2/3 {" in tex and "0.25 $\\pm$ 0.00, n=1/3 {" in tex
    assert "Built by" in markdown and ":" not in markdown.splitlines()[-1]  # no time of day


def test_rerun_replaces_a_cell_instead_of_adding_to_it(tmp_path):
    fake_run(tmp_path, "old", silhouette=0.1, mtime=1_000)
    fake_run(tmp_path, "new", silhouette=0.3, mtime=2_000)
    fake_run(tmp_path, "failed_later", "failed", error="disk full", mtime=3_000)
    table = build_table(TABLE1, collect_runs(tmp_path))
    assert table.budget == "cpu"  # the newest run's budget when none is asked for
    assert table.cells[0, "bloodmnist"].values["silhouette"] == [0.3]
    assert not table.cells[0, "bloodmnist"].failures  # a finished run wins over a failure


def test_two_metric_cells_and_no_runs_at_all(tmp_path):
    for seed in (0, 1):
        fake_run(tmp_path, f"r{seed}", aug="nocrop", seed=seed, silhouette=0.2, knn_acc=76.0 + seed)
    markdown = render_markdown(build_table(TABLE2, collect_runs(tmp_path)))
    assert "| no crops | — (79.7±0.6 / 0.14±0.00) | 76.5 ± 0.5 / 0.20 ± 0.00 (76.0±1.1" in markdown
    empty = render_markdown(build_table(TABLE2, collect_runs(tmp_path / "nothing")))
    assert empty.count("| — (") == 12  # 4 rows x 3 datasets, every cell empty


def test_sweep_commands_cover_the_table_and_reject_unknown_datasets(tmp_path):
    commands = sweep_commands(TABLE1, "smoke", ["bloodmnist"], 2, tmp_path)
    assert len(commands) == 3
    assert commands[0][:5] == [
        "experiment=smoke", "dataset=bloodmnist", "seed=0,1", "method=tsimcne",
        "aug=default,rot90,randrot"]  # fmt: skip
    assert "method.features=pixels,resnet18,resnet152" in commands[2]
    with pytest.raises(ValueError, match="no column for breastmnist"):
        sweep_commands(TABLE1, "smoke", ["breastmnist"], 2, tmp_path)


def test_single_jobs_share_runs_between_tables_and_give_every_cell_its_first_seed_first(tmp_path):
    commands = sweep_commands(TABLE2, "cpu", ["bloodmnist"], 2, tmp_path)
    commands += sweep_commands(TABLE1, "cpu", ["bloodmnist"], 2, tmp_path)
    jobs = single_jobs(commands)
    # Table 2: 4 augs; Table 1: 3 t-SimCNE augs (randrot shared), 3 SimCLR, 3 t-SNE features
    assert len(jobs) == 2 * (4 + 2 + 3 + 3)
    assert all(job[-1] == f"hydra.run.dir={tmp_path / 'cpu'}/${{hydra.job.override_dirname}}"
               for job in jobs)  # fmt: skip
    assert [job[-2] for job in jobs] == ["seed=0"] * 12 + ["seed=1"] * 12
    randrot = [job for job in jobs if "aug=randrot" in job and "method=tsimcne" in job]
    assert len(randrot) == 2
    assert jobs[0] == ["experiment=cpu", "dataset=bloodmnist", "method=tsimcne", "aug=randrot",
                       "seed=0", jobs[0][-1]]  # fmt: skip


def test_a_single_job_lands_where_its_multirun_would_put_it(tmp_path):
    """Hydra names the directory by the job's overrides, without display settings, exactly
    as the multirun's subdir (hydra.sweep.subdir=${hydra.job.override_dirname})."""
    job = single_jobs(sweep_commands(TABLE2, "cpu", ["bloodmnist"], 1, tmp_path))[1]
    result = subprocess.run(
        [sys.executable, "train.py", *job, "trainer.enable_progress_bar=false", "--cfg", "hydra",
         "--resolve"], cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    expected = (
        tmp_path / "cpu" / "aug=nocrop,dataset=bloodmnist,experiment=cpu,method=tsimcne,seed=0"
    )
    assert f"dir: {expected}\n" in result.stdout


@pytest.mark.data
def test_baseline_sweep_through_the_cli_fills_the_pixel_row_and_explains_resnet(tmp_path):
    """The real chain: table1's t-SNE sweep via train.py -m (no ImageNet weights offline
    unless cached), then the table built from those run directories."""
    require_data("medmnist", "bloodmnist.npz")
    overrides = sweep_commands(TABLE1, "smoke", ["bloodmnist"], 1, tmp_path / "sweeps")[2]
    env = {**os.environ, "DATA_DIR": str(data_dir()), "TORCH_HOME": str(tmp_path / "torch")}
    result = subprocess.run(
        [sys.executable, "train.py", "-m", *overrides, "dataset.subset=300"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = build_table(TABLE1, collect_runs(tmp_path), budget="smoke")
    pixels = table.cells[6, "bloodmnist"]
    assert len(pixels.values["silhouette"]) == 1 and np.isfinite(pixels.values["silhouette"][0])
    for row in (7, 8):  # ResNet18, ResNet152: either weights were downloadable, or a reason
        cell = table.cells[row, "bloodmnist"]
        assert len(cell.values["silhouette"]) + len(cell.failures) == 1
        assert all("method.weights=" in run.error for run in cell.failures)


@pytest.mark.slow
@pytest.mark.data
def test_make_table1_smoke_fills_all_nine_rows(tmp_path):
    """What the issue checks: `make table1 BUDGET=smoke DATASETS=bloodmnist SEEDS=2` (18 jobs,
    about 15 minutes on 2 cores)."""
    require_data("medmnist", "bloodmnist.npz")
    env = {**os.environ, "DATA_DIR": str(data_dir()), "TORCH_HOME": str(tmp_path / "torch")}
    result = subprocess.run(
        [sys.executable, "scripts/tables.py", "--outputs", str(tmp_path), "run", "table1",
         "--budget", "smoke", "--datasets", "bloodmnist", "--seeds", "2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_csv(tmp_path / "tables" / "table1.csv")
    assert len(rows) == 9
    for row in rows[:7]:  # t-SimCNE x3, t-SNE of SimCLR x3, pixels: finite, over 2 seeds
        assert row["bloodmnist_silhouette_n"] == "2"
        assert np.isfinite(float(row["bloodmnist_silhouette_mean"]))
    markdown = (tmp_path / "tables" / "table1.md").read_text()
    for row in rows[7:]:  # ResNets: numbers if weights were available, else the reason
        if row["bloodmnist_failed"] == "2":
            assert f"t-SNE · {row['augm.']} · BloodMNIST · seed 0, 1: failed" in markdown
            assert "method.weights=" in markdown
        else:
            assert row["bloodmnist_silhouette_n"] == "2"


def test_unlabeled_runs_are_left_out_of_tables(tmp_path):
    fake_run(tmp_path, "labeled", silhouette=0.3, knn_acc=80.0)
    fake_run(tmp_path, "unlabeled", seed=1, silhouette=None, knn_acc=None, labeled=False)
    runs = collect_runs(tmp_path)
    assert [run.directory.name for run in runs] == ["labeled"]
