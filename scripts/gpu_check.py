"""`make gpu-check`: the GPU measurements of one short call on a borrowed H100/H200.

    python scripts/gpu_check.py [key=value ...]     (settings: conf/gpu_check.yaml)

1. `make bench` at batch 1024: this project, the model alone and (when .venv-reference exists)
   tsimcne 0.3.12, images/s and peak GPU memory;
2. the peak GPU memory of training steps on PCam-size images (96 px) at the study's PCam batch;
3. a short randrot-vs-default pair on the BloodMNIST-like data with the paper schedule's shape.

Writes <output_dir>/gpu-check.json and gpu-check.md (and bench-gpu.*, pair-<aug>.json).
On a CPU it runs too (the test dry-runs it with tiny settings); the numbers then mean nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from medmap.api import compose_config
from medmap.benchmark import describe_device, time_model_only
from medmap.builders import build_module
from medmap.data import ImageCollection
from medmap.runtime.devices import training_device

REPO = Path(__file__).resolve().parents[1]


def run(command: list[str], timeout: float) -> tuple[int, str]:
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout:.0f} s"
    return done.returncode, (done.stdout + done.stderr)[-2000:]


def bench(settings, output_dir: Path) -> dict:
    code, tail = run([sys.executable, "scripts/bench.py", *settings.overrides], settings.timeout_s)
    if code != 0:
        return {"exit_code": code, "tail": tail}
    cfg = compose_config(["experiment=bench", *settings.overrides], REPO / "outputs" / "bench")
    produced = REPO / cfg.bench.output_dir
    for suffix in ("json", "md"):
        shutil.copy(produced / f"bench.{suffix}", output_dir / f"bench-gpu.{suffix}")
    result = json.loads((produced / "bench.json").read_text())
    keys = ("ours_img_s", "model_only_img_s", "reference_img_s", "batch_size", "device")
    return {"exit_code": 0, **{key: result.get(key) for key in keys}}


def pcam_step(settings) -> dict:
    """Steps of the PCam configuration's network on random 96 px images: peak memory."""
    cfg = compose_config(list(settings.overrides), REPO / "outputs" / "gpu-check")
    batch, size = cfg.method.batch_size, settings.image_size
    rng = np.random.default_rng(0)
    count = batch * settings.steps
    images = rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    collection = ImageCollection("pcam-size", images, np.zeros(count), ["any"])
    module = build_module(cfg, collection, batch)
    device = training_device(cfg.trainer)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timing = time_model_only(cfg, collection, module)
    return {"batch_size": batch, "image_size": size, "width": cfg.model.width, **timing}


def pair(settings, output_dir: Path, deadline: float) -> dict:
    results = {}
    for aug in settings.augs:
        left = deadline - time.monotonic()
        if left < 30:
            results[aug] = {"skipped": "out of time"}
            continue
        run_dir = REPO / "outputs" / "gpu-check" / aug
        shutil.rmtree(run_dir, ignore_errors=True)
        command = [sys.executable, "train.py", *settings.overrides, f"aug={aug}",
                   f"hydra.run.dir={run_dir}", "trainer.enable_progress_bar=false"]  # fmt: skip
        started = time.monotonic()
        code, tail = run(command, min(settings.timeout_s, left))
        if code != 0:
            results[aug] = {"exit_code": code, "tail": tail}
            continue
        metrics = json.loads((run_dir / "metrics.json").read_text())
        (output_dir / f"pair-{aug}.json").write_text(json.dumps(metrics, indent=2) + "\n")
        results[aug] = {
            key: metrics.get(key) for key in ("silhouette", "knn_acc", "linear_acc", "epochs")
        } | {"wall_s": round(time.monotonic() - started, 1)}
    return results


def main() -> None:
    defaults = OmegaConf.load(REPO / "conf" / "gpu_check.yaml")
    settings = OmegaConf.merge(defaults, OmegaConf.from_cli())
    output_dir = REPO / settings.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + settings.time_limit_s
    device = training_device(compose_config([], REPO / "outputs" / "gpu-check").trainer)
    record = {"device": describe_device(device), "torch": torch.__version__}
    print(f"gpu-check on {record['device']}", flush=True)
    record["bench"] = bench(settings.bench, output_dir)
    print("bench:", record["bench"], flush=True)
    record["pcam_step"] = pcam_step(settings.pcam_step)
    print("pcam step:", record["pcam_step"], flush=True)
    record["pair"] = pair(settings.pair, output_dir, deadline)
    print("pair:", record["pair"], flush=True)
    record["total_s"] = round(time.monotonic() - started, 1)
    (output_dir / "gpu-check.json").write_text(json.dumps(record, indent=2) + "\n")
    (output_dir / "gpu-check.md").write_text(render(record))
    print(render(record))


def render(record: dict) -> str:
    step, speed = record["pcam_step"], record["bench"]
    lines = [
        f"# gpu-check on {record['device']} (torch {record['torch']}, {record['total_s']} s)",
        "",
        f"- make bench, batch {speed.get('batch_size')}: ours {speed.get('ours_img_s')} img/s, "
        f"model alone {speed.get('model_only_img_s')}, tsimcne 0.3.12 "
        f"{speed.get('reference_img_s')} (exit {speed['exit_code']})",
        f"- PCam-size step: batch {step['batch_size']} at {step['image_size']} px, width "
        f"{step['width']}: peak memory {step['peak_memory_mib']} MiB, {step['img_s']} img/s",
        "",
        "| aug | silhouette | kNN acc. | wall s |",
        "|---|---|---|---|",
    ]
    for aug, result in record["pair"].items():
        lines.append(
            f"| {aug} | {result.get('silhouette')} | {result.get('knn_acc')} | "
            f"{result.get('wall_s', result.get('skipped') or result.get('exit_code'))} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
