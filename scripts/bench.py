"""`make bench`: time one t-SimCNE phase-1 epoch on the BloodMNIST-like data three ways.

    python scripts/bench.py [hydra overrides, e.g. method.batch_size=1024]

(a) this project's pipeline, (b) the same model on pre-made tensors (the upper bound) and
(c) the reference `tsimcne==0.3.12` in its own virtual environment (`make bench` creates
.venv-reference). Settings: conf/experiment/bench.yaml. Each part runs in its own process so
that peak memory is per part. Writes <bench.output_dir>/bench.json and bench.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from medmap.api import compose_config
from medmap.augment import AugmentationSpec
from medmap.benchmark import (
    render_markdown,
    summarise,
    time_augmentations,
    time_model_only,
    time_pipeline,
)
from medmap.builders import build_module
from medmap.data import load_dataset, mean_border_colour
from medmap.errors import UserFacingError
from medmap.identity import git_commit
from medmap.runtime.devices import training_device

REPO = Path(__file__).resolve().parents[1]
PARTS = ("ours", "model_only", "augment")


def run_part(name: str, overrides: list[str], output_dir: Path) -> dict:
    cfg = compose_config(["experiment=bench", *overrides], output_dir)
    pl.seed_everything(cfg.seed, verbose=False)
    collection = load_dataset(cfg.dataset, cfg.seed)
    if name == "augment":
        return time_augmentation_settings(cfg, collection.images, overrides)
    module = build_module(cfg, collection, cfg.method.batch_size)
    timing = time_pipeline if name == "ours" else time_model_only
    return {**timing(cfg, collection, module), "n_images": len(collection)}


def time_augmentation_settings(cfg, images, overrides: list[str]) -> dict:
    """Views/s of each augmentation implementation on one batch, per aug setting."""
    batch = images[: cfg.method.batch_size]
    fill = mean_border_colour(images).tolist()
    return {
        setting: time_augmentations(
            batch,
            AugmentationSpec.from_config(
                compose_config(["experiment=bench", *overrides, f"aug={setting}"], ".").aug
            ),
            fill,
            training_device(cfg.trainer),
            cfg.bench.augment_repeats,
        )
        for setting in cfg.bench.augment_settings
    }


def run_in_subprocess(command: list[str], what: str) -> dict | None:
    """Run one part and return the JSON it prints last; None (with its output) on failure."""
    print(f"bench: {what} ...", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        print(f"bench: {what} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml")
    args = parser.parse_args()
    cfg = compose_config(["experiment=bench", *args.overrides], REPO / "outputs" / "bench")
    output_dir = REPO / cfg.bench.output_dir
    if args.part:  # a child process: print this part's result as the last line
        print(json.dumps(run_part(args.part, args.overrides, output_dir)))
        return

    output_dir.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, str(Path(__file__).resolve())]
    parts = {}
    for name in PARTS:
        parts[name] = run_in_subprocess([*me, "--part", name, *args.overrides], f"part {name}")
        if parts[name] is None:
            sys.exit(f"bench: part {name} failed; see above.")
    n_images = parts["ours"].pop("n_images")
    parts["model_only"].pop("n_images")

    reference_python = REPO / cfg.bench.reference_python
    if reference_python.exists():
        images = output_dir / "images.npy"
        np.save(images, load_dataset(cfg.dataset, cfg.seed).images)
        parts["reference"] = run_in_subprocess(
            [
                str(reference_python),
                str(REPO / "scripts" / "bench_reference.py"),
                f"--images={images}",
                f"--batch-size={cfg.method.batch_size}",
                f"--num-workers={cfg.bench.reference_num_workers}",
            ],
            "reference tsimcne",
        )
        images.unlink()
    else:
        print(f"bench: no reference environment at {reference_python}; `make bench` makes it.")
        parts["reference"] = None

    versions = {
        "torch": torch.__version__,
        "pytorch_lightning": pl.__version__,
        "medmap_commit": git_commit(),
    }
    if parts["reference"]:
        versions["tsimcne"] = parts["reference"]["versions"]["tsimcne"]
    result = summarise(parts, cfg, versions, n_images)
    (output_dir / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (output_dir / "bench.md").write_text(render_markdown(result))
    print(render_markdown(result))
    print(f"bench: wrote {output_dir / 'bench.json'} and bench.md")


if __name__ == "__main__":
    try:
        main()
    except UserFacingError as error:
        sys.exit(f"bench: {error}")
