"""Tables 1-3 of the study: run the sweeps behind a table, or rebuild tables from runs.

    python scripts/tables.py run table1 --budget smoke --datasets bloodmnist --seeds 2
    python scripts/tables.py run table2 table1 table3 --budget cpu --jobs 12
    python scripts/tables.py build [--budget cpu] [--outputs outputs]

`run` launches the tables' Hydra multiruns (conf/tables/<table>.yaml, `sweeps`) through
train.py, then builds those tables. `--jobs N` runs N single jobs side by side instead, in the
same run directories (small budgets leave most of a GPU idle; on a CPU one job already uses
every core: results/threads-cpu.md). `build` only reads run directories under --outputs and
writes outputs/tables/<table>.{md,csv,tex}; it never trains.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from medmap.reporting.tables import (
    TABLE_BUDGETS,
    TableSpec,
    build_table,
    collect_runs,
    single_jobs,
    sweep_commands,
    write_table,
)

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


def run(names: list[str], outputs: Path, budget: str, datasets: str | None, seeds: int,
        jobs: int) -> None:  # fmt: skip
    commands = []
    for name in names:
        spec = load_spec(name)
        chosen = datasets.split(",") if datasets else spec.columns
        try:
            commands += sweep_commands(spec, budget, chosen, seeds, outputs / "sweeps")
        except ValueError as error:
            sys.exit(str(error))
    if jobs > 1:
        run_side_by_side(single_jobs(commands), jobs)
    else:
        run_multiruns(commands)
    build(names, outputs, budget)


def run_multiruns(commands: list[list[str]]) -> None:
    for overrides in commands:
        print("python train.py -m " + " ".join(overrides), flush=True)
        # Failed jobs are recorded in their run directory and do not stop the sweep; only a
        # broken sweep (e.g. an unknown override) exits non-zero.
        if subprocess.run([sys.executable, str(REPO / "train.py"), "-m", *overrides]).returncode:
            sys.exit(f"The sweep failed to start: python train.py -m {' '.join(overrides)}")


def run_side_by_side(jobs: list[list[str]], count: int) -> None:
    """Each job a train.py process, `count` at a time, the cores split between them. A failed
    job is recorded in its run directory (failed.json) and printed; the others go on."""
    threads = max(1, (os.cpu_count() or 1) // count)
    env = {"OMP_NUM_THREADS": str(threads), **os.environ}
    print(f"{len(jobs)} jobs, {count} at a time, {env['OMP_NUM_THREADS']} threads each", flush=True)

    def start(numbered: tuple[int, list[str]]) -> None:
        number, overrides = numbered
        started = time.monotonic()
        command = [sys.executable, str(REPO / "train.py"), *overrides,
                   "trainer.enable_progress_bar=false"]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        what = " ".join(overrides[:-1])
        print(f"[{number}/{len(jobs)}] exit {done.returncode} after "
              f"{time.monotonic() - started:.0f} s: {what}", flush=True)  # fmt: skip
        if done.returncode:
            print(done.stderr[-1500:], flush=True)

    with ThreadPoolExecutor(count) as pool:
        list(pool.map(start, enumerate(jobs, 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outputs", type=Path, default=REPO / "outputs")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run tables' sweeps, then build them")
    run_parser.add_argument("tables", nargs="+")
    run_parser.add_argument("--budget", default="paper", choices=TABLE_BUDGETS)
    run_parser.add_argument("--datasets", help="comma-separated; default: the table's columns")
    run_parser.add_argument("--seeds", type=int, default=3)
    run_parser.add_argument("--jobs", type=int, default=1, help="single jobs side by side")
    build_parser = commands.add_parser("build", help="rebuild tables from existing runs")
    build_parser.add_argument("tables", nargs="*", default=["table1", "table2", "table3"])
    build_parser.add_argument("--budget", help="default: the budget of each table's newest run")
    args = parser.parse_args()
    if args.command == "run":
        run(args.tables, args.outputs, args.budget, args.datasets, args.seeds, args.jobs)
    else:
        build(args.tables, args.outputs, args.budget)


if __name__ == "__main__":
    main()
