"""Tables 1-3 of the study: run the sweeps behind a table, or rebuild tables from runs.

    python scripts/tables.py run table1 --budget smoke --datasets bloodmnist --seeds 2
    python scripts/tables.py build [--budget cpu] [--outputs outputs]

`run` launches the table's Hydra multiruns (conf/tables/<table>.yaml, `sweeps`) through
train.py, then builds that table. `build` only reads run directories under --outputs and
writes outputs/tables/<table>.{md,csv,tex}; it never trains.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from medmap.tables import TableSpec, build_table, collect_runs, sweep_commands, write_table

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "conf" / "tables"


def load_spec(name: str) -> TableSpec:
    path = SPECS / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SPECS.glob("*.yaml")))
        sys.exit(f"No table {name!r}: known tables are {known}.")
    return TableSpec.load(path)


def build(names: list[str], outputs: Path, budget: str | None) -> None:
    runs = collect_runs(outputs)
    for name in names:
        table = build_table(load_spec(name), runs, budget)
        paths = write_table(table, outputs / "tables")
        print(f"{name} (budget {table.budget}): " + ", ".join(str(p) for p in paths))


def run(name: str, outputs: Path, budget: str, datasets: str | None, seeds: int) -> None:
    spec = load_spec(name)
    chosen = datasets.split(",") if datasets else spec.columns
    try:
        commands = sweep_commands(spec, budget, chosen, seeds, outputs / "sweeps")
    except ValueError as error:
        sys.exit(str(error))
    for overrides in commands:
        print("python train.py -m " + " ".join(overrides), flush=True)
        # Failed jobs are recorded in their run directory and do not stop the sweep; only a
        # broken sweep (e.g. an unknown override) exits non-zero.
        if subprocess.run([sys.executable, str(REPO / "train.py"), "-m", *overrides]).returncode:
            sys.exit(f"The sweep failed to start: python train.py -m {' '.join(overrides)}")
    build([name], outputs, budget)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outputs", type=Path, default=REPO / "outputs")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run a table's sweeps, then build it")
    run_parser.add_argument("table")
    run_parser.add_argument("--budget", default="paper", choices=["paper", "cpu", "smoke"])
    run_parser.add_argument("--datasets", help="comma-separated; default: the table's columns")
    run_parser.add_argument("--seeds", type=int, default=3)
    build_parser = commands.add_parser("build", help="rebuild tables from existing runs")
    build_parser.add_argument("tables", nargs="*", default=["table1", "table2", "table3"])
    build_parser.add_argument("--budget", help="default: the budget of each table's newest run")
    args = parser.parse_args()
    if args.command == "run":
        run(args.table, args.outputs, args.budget, args.datasets, args.seeds)
    else:
        build(args.tables, args.outputs, args.budget)


if __name__ == "__main__":
    main()
