"""The demo's map against minutes of training (results/map-per-minute, issue 25).

    python scripts/map_per_minute.py run      # train every missing point, one at a time
    python scripts/map_per_minute.py report   # curve.md, curve.csv, curve.png from the runs

The recipes, their points (schedules) and seeds are ``conf/map_per_minute.yaml``. Each point
trains ``train.py`` with the recipe's overrides in ``<output>/<recipe>-<epochs>-seed<k>`` at low
CPU priority; a finished point (its ``metrics.json``) is never trained again, a stopped one
resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from medmap.cli import config_dir
from medmap.reporting.budget_curve import curve_rows, curve_table, plot_curve, point_name
from medmap.runtime.time_budget import hydra_list

REPO = Path(__file__).resolve().parents[1]


def run(settings, recipes: list[dict]) -> None:
    output = REPO / settings.output
    environment = {**os.environ, **{key: str(value) for key, value in settings.environment.items()}}
    for recipe in recipes:
        for point in recipe["points"]:
            for seed in range(point.get("seeds", 1)):
                name = point_name(recipe["name"], point["epochs"], seed)
                if (output / name / "metrics.json").is_file():
                    continue
                command = [sys.executable, str(REPO / "train.py"), *settings.common,
                           *recipe["overrides"], f"method.epochs={hydra_list(point['epochs'])}",
                           f"method.warmup_epochs={hydra_list(point['warmup_epochs'])}",
                           f"seed={seed}", f"hydra.run.dir={output / name}"]  # fmt: skip
                print(f"map_per_minute: training {name}", flush=True)
                done = subprocess.run(
                    command,
                    cwd=REPO,
                    env=environment,
                    capture_output=True,
                    text=True,
                    preexec_fn=lambda: os.nice(settings.nice),
                )
                if done.returncode:
                    print(f"map_per_minute: {name} failed (exit {done.returncode}), going on:\n"
                          f"{done.stderr[-1500:]}", flush=True)  # fmt: skip


def report(settings, recipes: list[dict]) -> None:
    rows = curve_rows(recipes, REPO / settings.output)
    folder = REPO / settings.report
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "curve.md").write_text(curve_table(rows))
    with open(folder / "curve.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["recipe"])
        writer.writeheader()
        writer.writerows(rows)
    plot_curve(rows, OmegaConf.to_container(settings.goals), folder / "curve.png")
    print(curve_table(rows), end="")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["run", "report"])
    parser.add_argument("overrides", nargs="*", help="settings of conf/map_per_minute.yaml")
    args = parser.parse_args()
    settings = OmegaConf.merge(OmegaConf.load(config_dir() / "map_per_minute.yaml"),
                               OmegaConf.from_dotlist(args.overrides))  # fmt: skip
    recipes = OmegaConf.to_container(settings.recipes)
    (run if args.action == "run" else report)(settings, recipes)


if __name__ == "__main__":
    main()
