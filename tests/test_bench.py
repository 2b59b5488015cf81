"""`make bench` (scripts/bench.py, medmap.benchmark) and the cluster launcher config.

Timings are never asserted (they belong in results/bench-*); these tests check that the
benchmark measures what it says and writes what the issue asks for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO, cli, compose_config, data_dir, require_data
from medmap.augment import AugmentationSpec
from medmap.benchmark import (
    augmentation_pipelines,
    matmul_ceiling_gflop_s,
    render_markdown,
    step_flops,
    summarise,
)

REFERENCE_PYTHON = REPO / ".venv-reference" / "bin" / "python"


def fake_part(img_s: float, **extra) -> dict:
    return {"images": 1000, "seconds": 1000 / img_s, "img_s": img_s, "peak_memory_mib": 10.0,
            "device": "CPU (2 threads)", **extra}  # fmt: skip


def test_summary_ratios_and_markdown_name_the_three_parts():
    cfg = compose_config(["experiment=bench"])
    parts = {"ours": fake_part(300.0), "model_only": fake_part(320.0),
             "reference": fake_part(100.0, precision="32-true", notes="num_workers=2")}  # fmt: skip
    result = summarise(parts, cfg, {"torch": torch.__version__}, n_images=17092)
    assert result["ours_vs_reference"] == 3.0
    assert result["ours_vs_model_only"] == pytest.approx(300 / 320, abs=1e-3)
    assert result["batch_size"] == 512 and result["width"] == 64
    markdown = render_markdown(result)
    assert "**3.00x**" in markdown and "**0.938**" in markdown
    assert "tsimcne==0.3.12" in markdown and "num_workers=2" in markdown

    parts["reference"] = None  # reference environment missing
    result = summarise(parts, cfg, {}, n_images=17092)
    assert result["reference_img_s"] is None and result["ours_vs_reference"] is None
    assert "reference was not run" in render_markdown(result)


def test_step_flops_count_forward_and_backward_products_by_hand():
    """Linear(10 -> 20) on 4 rows: forward 2*4*10*20 = 1,600 FLOPs; backward, the weight's
    gradient (1,600) and, when the input needs one, the input's (1,600)."""
    layer = torch.nn.Linear(10, 20)
    frozen_input = torch.randn(4, 10)
    assert step_flops(lambda: layer(frozen_input).sum().backward()) == 3200
    free_input = torch.randn(4, 10, requires_grad=True)
    assert step_flops(lambda: layer(free_input).sum().backward()) == 4800


def test_the_share_of_the_matmul_ceiling_is_reported_for_both_parts():
    cfg = compose_config(["experiment=bench"])
    bound = fake_part(320.0, step_gflop=50.0, achieved_gflop_s=100.0,
                      matmul_ceiling_gflop_s=400.0, share_of_ceiling=0.25)  # fmt: skip
    result = summarise({"ours": fake_part(160.0), "model_only": bound}, cfg, {}, n_images=17092)
    assert result["model_only_share_of_ceiling"] == 0.25
    assert result["ours_share_of_ceiling"] == 0.125  # half the images/s of the bound
    markdown = render_markdown(result)
    assert "**50.0 GFLOP**" in markdown and "400 GFLOP/s" in markdown
    assert "alone reaches **25%**" in markdown and "pipeline **12%**" in markdown  # 12.5 -> 12
    assert 0 < matmul_ceiling_gflop_s(torch.device("cpu"), bf16=False, size=256) < 1e5


@pytest.mark.parametrize("setting", ["default", "randrot"])
def test_every_benchmarked_augmentation_makes_views_of_the_right_shape_and_range(setting):
    spec = AugmentationSpec.from_config(compose_config([f"aug={setting}"]).aug)
    images = np.random.default_rng(0).integers(0, 256, (16, 28, 28, 3), dtype=np.uint8)
    batch = torch.from_numpy(images)
    pipelines = augmentation_pipelines(spec, [0.5, 0.5, 0.5], 28)
    assert len(pipelines) == 4
    for name, pipeline in pipelines.items():
        views = pipeline(batch)
        assert views.shape == (16, 3, 28, 28), name
        assert views.dtype == torch.float32, name
        assert float(views.min()) >= 0.0 and float(views.max()) <= 1.0 + 1e-6, name
        # augmentation changes the images (a crop of scale < 1 alone does)
        assert not torch.allclose(views, batch.permute(0, 3, 1, 2).float() / 255), name


def run_bench(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATA_DIR": str(data_dir())}
    return subprocess.run(
        [sys.executable, "scripts/bench.py", f"bench.output_dir={tmp_path}", "dataset.subset=256",
         "model.width=8", "model.head_hidden=32", "method.batch_size=64",
         "bench.augment_repeats=1", "trainer.enable_progress_bar=false", *overrides],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


# slow (about 42 s: three timed processes): make test-all runs it
@pytest.mark.slow
def test_bench_writes_json_and_table_for_ours_and_the_bound(tmp_path):
    require_data("medmnist", "bloodmnist.npz")
    result = run_bench(tmp_path, "bench.reference_python=/nonexistent/python")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no reference environment" in result.stdout
    record = json.loads((tmp_path / "bench.json").read_text())
    for key in ("ours_img_s", "model_only_img_s", "reference_img_s", "device", "batch_size"):
        assert key in record
    assert record["batch_size"] == 64 and record["n_images"] == 256
    # 256 // 64 = 4 full batches of 64 images each, for both parts
    assert record["parts"]["ours"]["images"] == 256
    assert record["parts"]["model_only"]["images"] == 256
    assert record["ours_img_s"] > 0 and record["model_only_img_s"] > 0
    assert record["reference_img_s"] is None
    augment = record["parts"]["augment"]
    assert set(augment) == {"default", "randrot"} and len(augment["default"]) == 4
    assert "(b) model alone" in (tmp_path / "bench.md").read_text()


@pytest.mark.slow
def test_bench_runs_the_reference_package_in_its_own_environment(tmp_path):
    require_data("medmnist", "bloodmnist.npz")
    if not REFERENCE_PYTHON.exists():
        pytest.skip("no .venv-reference: `make bench` creates it")
    result = run_bench(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((tmp_path / "bench.json").read_text())
    assert record["reference_img_s"] > 0
    assert record["parts"]["reference"]["images"] == 256  # the reference keeps the last batch
    assert record["versions"]["tsimcne"] == "0.3.12"


def test_slurm_launcher_config_composes_to_submitit(tmp_path):
    """The cluster launcher resolves to hydra-submitit-launcher's SLURM launcher with one GPU
    per job (SLURM itself is not here; the local submitit launcher below runs the code path)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["gpus_per_node"] == 1 and launcher["timeout_min"] >= 24 * 60


# slow (about 55 s: the SLURM launcher's local mode, two jobs): make test-all runs it
@pytest.mark.slow
def test_a_sweep_runs_through_the_submitit_launcher(tmp_path):
    require_data("medmnist", "breastmnist.npz")
    result = cli("-m", "hydra/launcher=submitit_local", "experiment=smoke", "dataset=breastmnist",
                 "seed=0,1", f"hydra.sweep.dir={tmp_path}", timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(tmp_path.glob("*/metrics.json"))
    assert len(runs) == 2
    assert sorted(json.loads(p.read_text())["seed"] for p in runs) == [0, 1]
    assert (tmp_path / ".submitit").is_dir()
