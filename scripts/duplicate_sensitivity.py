"""How much perturbation can planted duplicates take and still form one island in a trained map?

    python scripts/duplicate_sensitivity.py run=<run dir trained with dataset.inject.duplicates>

Re-draws 100 copies of the run's duplicated image under each perturbation setting below,
embeds them into the run's map without retraining (out-of-sample, so the copies never took
part in training), and scores them as ``metrics.json`` does: the share of copies whose 15
map neighbours are mostly copies. Writes ``duplicate_sensitivity.{json,md}`` into the run.
"""

import json
import sys
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from medmap.api import TSimCNE, compose_config
from medmap.data import load_dataset
from medmap.data.inject import DUPLICATE, perturbed_copy
from medmap.errors import UserFacingError
from medmap.evaluation import isolation, neighbourhood_share

STILL = {"shift": 0, "brightness": 0.0, "contrast": 0.0, "noise": 0.0}
SETTINGS = {
    "exact copies": {},
    "noise σ=3": {"noise": 3.0},
    "brightness ±10%": {"brightness": 0.1},
    "contrast ±10%": {"contrast": 0.1},
    "photometric (default)": {"brightness": 0.1, "contrast": 0.1, "noise": 3.0},
    "shift ≤1 px": {"shift": 1},
    "shift ≤2 px": {"shift": 2},
    "default + shift ≤1 px": {"brightness": 0.1, "contrast": 0.1, "noise": 3.0, "shift": 1},
    "default + shift ≤2 px": {"brightness": 0.1, "contrast": 0.1, "noise": 3.0, "shift": 2},
}


def sensitivity(run_dir: Path, copies: int = 100, seed: int = 0) -> list[dict]:
    model = TSimCNE.load(run_dir)
    overrides = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
    cfg = compose_config(list(overrides), run_dir)
    collection = load_dataset(cfg.dataset, cfg.seed)
    planted = collection.injected == DUPLICATE
    if not planted.any():
        raise UserFacingError(f"{run_dir} was not trained with dataset.inject.duplicates.")
    embedding = np.load(run_dir / "embedding.npy")[~planted]
    originals = collection.images[~planted]
    # The copies are zero-mean perturbations: the original closest to their mean is the source.
    mean_copy = collection.images[planted].astype(np.float32).mean(axis=0)
    source = originals[np.abs(originals - mean_copy).mean(axis=(1, 2, 3)).argmin()]
    typical_gap = float(np.median(isolation(embedding)))
    rng = np.random.default_rng(seed)
    members = np.r_[np.zeros(len(embedding), bool), np.ones(copies, bool)]
    rows = []
    for name, sizes in SETTINGS.items():
        setting = {**STILL, **sizes}
        drawn = np.stack([perturbed_copy(source, rng, **setting) for _ in range(copies)])
        new = model.transform(drawn)
        spread = float(np.linalg.norm(new - new.mean(axis=0), axis=1).mean())
        rows.append(
            {
                "perturbation": name,
                **setting,
                "island_share": neighbourhood_share(np.vstack([embedding, new]), members),
                "spread_over_typical_gap": spread / typical_gap,
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| perturbation | island share (15 NN mostly copies) | spread / typical 15-NN gap |",
        "|---|---|---|",
    ]
    lines += [
        f"| {r['perturbation']} | {r['island_share']:.2f} | {r['spread_over_typical_gap']:.2f} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    runs = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("run=")]
    if len(runs) != 1:
        sys.exit("Usage: python scripts/duplicate_sensitivity.py run=<run dir>")
    run_dir = Path(runs[0])
    try:
        rows = sensitivity(run_dir)
    except UserFacingError as error:
        sys.exit(f"ERROR: {error}")
    (run_dir / "duplicate_sensitivity.json").write_text(json.dumps(rows, indent=2) + "\n")
    (run_dir / "duplicate_sensitivity.md").write_text(markdown(rows))
    print(markdown(rows))
