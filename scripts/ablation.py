"""``make ablation DATA="dataset=..."``: t-SimCNE with each of the study's augmentations on one
collection (one Hydra multirun), then one report: the maps side by side in the same class
colours and, where the collection has labels, a table ranked by kNN accuracy.

    python scripts/ablation.py [--seeds 1] [--budget short] [--name NAME] dataset=... [overrides]

Settings: conf/ablation.yaml. Runs go to ``<output>/<name>/<aug>-seed<k>/`` and the report
(``maps.png``/``.pdf``, ``ranking.csv``, ``report.md``) beside them. Started again, the same
command skips finished runs and resumes stopped ones (train.py's auto_resume).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from medmap.api import compose_config
from medmap.cli import config_dir
from medmap.reporting.ablation import SUBDIR, write_report
from medmap.reporting.tables import TABLE_BUDGETS

REPO = Path(__file__).resolve().parents[1]


def collection_name(data: list[str], budget: str) -> str:
    """The dataset's name, and its folder's when it has one (two image folders differ)."""
    try:
        cfg = compose_config([f"experiment={budget}", *data], REPO / "outputs")
    except Exception as error:  # Hydra's own message names the bad override
        sys.exit(f"ablation: these dataset overrides do not compose: {' '.join(data)}\n{error}")
    if "root" in cfg.dataset and OmegaConf.is_missing(cfg.dataset, "root"):
        sys.exit("ablation: this dataset needs its folder, e.g. "
                 'DATA="dataset=imagefolder dataset.root=/my/images"')  # fmt: skip
    root = cfg.dataset.get("root")
    return f"{cfg.dataset.name}-{Path(str(root)).name}" if root else str(cfg.dataset.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, help="seeds per augmentation (conf: seeds)")
    parser.add_argument("--budget", choices=TABLE_BUDGETS, help="conf: budget")
    parser.add_argument("--name", help="the report's folder name (default: from the data)")
    parser.add_argument("--augs", help="comma-separated augmentations (conf: augs)")
    parser.add_argument("--output", type=Path, help="where the report folders go (conf: output)")
    parser.add_argument("data", nargs="*", help="dataset overrides, e.g. dataset=leukemia")
    args = parser.parse_args()
    settings = OmegaConf.load(config_dir() / "ablation.yaml")
    seeds, budget = args.seeds or settings.seeds, args.budget or settings.budget
    augs = args.augs.split(",") if args.augs else list(settings.augs)
    if not any(override.startswith("dataset=") for override in args.data):
        sys.exit('ablation: name the collection, e.g. make ablation DATA="dataset=imagefolder '
                 'dataset.root=/my/images" (or DATA="dataset=leukemia").')  # fmt: skip
    if seeds < 1:
        sys.exit(f"ablation: SEEDS must be at least 1, got {seeds}.")
    name = args.name or collection_name(args.data, budget)
    folder = (args.output or REPO / settings.output) / name
    command = [
        sys.executable, str(REPO / "train.py"), "-m", f"experiment={budget}",
        f"method={settings.method}", f"aug={','.join(augs)}",
        f"seed={','.join(str(seed) for seed in range(seeds))}", *args.data,
        f"hydra.sweep.dir={folder}", f"hydra.sweep.subdir={SUBDIR}",
    ]  # fmt: skip
    print(f"ablation: {len(augs) * seeds} runs of {name} at budget {budget} in {folder}",
          flush=True)  # fmt: skip
    trained = subprocess.run(command, cwd=REPO)
    written = write_report(folder, name, augs, seeds, OmegaConf.to_container(settings.label_free))
    for path in written:
        print(f"ablation: wrote {path}")
    if trained.returncode:
        sys.exit(f"ablation: a run stopped (exit {trained.returncode}); its message is above. "
                 "The report covers the finished runs; the same command goes on.")  # fmt: skip


if __name__ == "__main__":
    main()
