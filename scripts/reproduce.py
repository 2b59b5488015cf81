"""``make reproduce [BUDGET=cpu]``: run every missing run behind one dataset's cells of Tables
1-3 (conf/reproduce.yaml), one at a time at low CPU priority, and keep each as it finishes.

    python scripts/reproduce.py [--budget cpu] [--dry-run] [--no-commit] [--report-only]
                                [--collect] [key=value ...]

A run counts as done when its small files are kept (``<kept>/<budget>/<run name>/metrics.json``);
a stopped run resumes from its checkpoint in ``<sweeps>/<budget>/<run name>`` (train.py's
auto_resume). After each run the tables, cells.csv and the verdicts on the poster's claims
(the README's table; reporting/claims.py) are rebuilt from the kept runs, in ``<report>`` for
the campaign's budget and in ``<report>/<budget>/`` for any other, and with
``commit: true`` the run and the report are committed, so the campaign survives a stop or a
new machine: the same command goes on where it stopped. Prints one line per finished run.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from medmap.cli import config_dir
from medmap.reporting.claims import claims_table, update_readme
from medmap.reporting.reproduction import (
    campaign_jobs,
    cell_key,
    cell_rows,
    draw_maps,
    first_kept_runs,
    keep_run,
    run_name,
    write_cells,
)
from medmap.reporting.tables import (
    TABLE_BUDGETS,
    TableSpec,
    build_table,
    collect_runs,
    sweep_dir,
    write_table,
)

REPO = Path(__file__).resolve().parents[1]


def report_dir(settings, budget: str) -> Path:
    """Where a budget's report goes: the campaign's budget in ``report``, any other beside it
    in ``report/<budget>/`` (a ``cpu`` campaign on a lent GPU leaves the ``short`` one as is)."""
    report = REPO / settings.report
    return report if budget == settings.budget else report / budget


def rebuild_report(
    settings,
    specs: list[TableSpec],
    named: list[tuple[list[str], str]],
    budget: str,
    new_run: Path | None = None,
) -> tuple[list[Path], list[dict]]:
    """Tables 1-3, cells.csv, the claims' verdicts in the README and the figures, from the kept
    runs of ``budget`` only; after a ``new_run`` the figures only where it is a cell's first
    run (the one they show). Returns the files written and the cells' rows."""
    kept, report = REPO / settings.kept / budget, report_dir(settings, budget)
    runs = collect_runs(kept)
    written = []
    for spec in specs:
        table = build_table(spec, runs, budget, expected_seeds=settings.seeds)
        written += write_table(table, report)
    jobs = [job for job, _ in named]
    rows = cell_rows(jobs, specs, kept, budget, settings.dataset, config_dir())
    written.append(write_cells(rows, report / "cells.csv"))
    claims = OmegaConf.to_container(settings.claims)
    intro = "# The poster's claims\n"
    if report != REPO / settings.report:  # another budget's, beside the campaign's report
        main_readme = os.path.relpath(REPO / settings.report / "README.md", report)
        intro = (f"# The poster's claims at the `{budget}` budget\n\nRebuilt by `make "
                 f"reproduce BUDGET={budget}` from the runs in `{shown(kept)}/`. The rule for a "
                 f"verdict, and the campaign at its own budget: [{settings.report}]"
                 f"({main_readme}).\n")  # fmt: skip
    update_readme(report / "README.md", claims_table(claims, rows, settings.seeds), intro)
    first_runs = first_kept_runs(named, kept, config_dir())
    if new_run is None or new_run in first_runs.values():
        written += draw_maps(OmegaConf.to_container(settings.figures), first_runs, report)
    return [*written, report / "README.md"], rows


def warn_unknown_cells(settings, cells: set[str]) -> None:
    """Name the cells claims and figures ask for that no job of this campaign fills: a typo in
    conf/reproduce.yaml would otherwise read "pending" forever."""
    named = {item[side] for claim in settings.claims for item in claim.compare for side in "ab"}
    named |= {cell for figure in settings.figures for cell in figure.cells}
    if unknown := sorted(named - cells):
        print(f"reproduce: no run of this campaign fills {', '.join(unknown)} (named in "
              f"conf/reproduce.yaml claims or figures): they stay pending", flush=True)  # fmt: skip


def hold_campaign_lock(folder: Path):
    """One campaign per budget at a time: a second one would train the same runs into the
    same directories. Exits with a message naming the other one. The lock goes with the
    process, however it ends, and with the training run it passes the lock to (``pass_fds``)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / ".reproduce.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        other = handle.read().strip() or "?"
        sys.exit(f"reproduce: another campaign (pid {other}) is training into {shown(folder)}; "
                 "let it finish, or stop it first (its run resumes later)")  # fmt: skip
    except OSError as error:  # a filesystem without locks (some NFS and FUSE mounts)
        print(f"reproduce: cannot lock {shown(folder)} ({error.strerror}); going on without: "
              "start no second campaign of this budget", flush=True)  # fmt: skip
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def shown(path: Path) -> str:
    """A path relative to the repository where it lies inside it, else absolute."""
    return str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)


def commit(paths: list[Path], message: str) -> None:
    """Commit the kept runs and the report files just written (only those paths: other
    changes, e.g. hand edits beside them, stay as they are). A failure (another git command
    holding the index) is reported, not fatal: the next commit, given every kept run, takes
    this one's files along."""
    relative = [shown(path) for path in paths]
    if any(Path(path).is_absolute() for path in relative):
        print("reproduce: kept runs or report outside the repository: nothing committed")
        return
    for attempt in range(5):
        added = subprocess.run(["git", "add", "--", *relative], cwd=REPO, capture_output=True)
        done = added.returncode == 0 and subprocess.run(
            ["git", "commit", "-q", "-m", message, "--", *relative], cwd=REPO, capture_output=True
        ).returncode in (0, 1)  # 1: nothing to commit
        if done:
            return
        time.sleep(2 + attempt)
    print(f"reproduce: could not commit ({message}); the files are kept and go with the next")


def kept_runs(named: list[tuple[list[str], str]], kept_root: Path) -> list[Path]:
    """Every kept run of the campaign (committing unchanged ones adds nothing)."""
    return [kept_root / name for _, name in named if (kept_root / name / "metrics.json").is_file()]


def collect(settings, specs, named, todo, budget: str, commit_them: bool) -> None:
    """Keep the runs of ``todo`` that finished in the sweeps folder without this script, rebuild
    the report once and commit them together."""
    sweeps = sweep_dir(REPO / settings.sweeps, budget)
    kept_root = REPO / settings.kept / budget
    kept = [keep_run(sweeps / name, kept_root / name) for _, name in todo
            if (sweeps / name / "metrics.json").is_file()]  # fmt: skip
    written, _ = rebuild_report(settings, specs, named, budget)
    print(f"reproduce: kept {len(kept)} finished runs from {shown(sweeps)}, "
          f"{len(todo) - len(kept)} still to run", flush=True)  # fmt: skip
    if kept and settings.commit and commit_them:
        commit([*kept_runs(named, kept_root), *written],
               f"reproduction ({budget}): {len(kept)} runs collected")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", choices=TABLE_BUDGETS,
                        help="default: the campaign's (conf/reproduce.yaml: budget)")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="list the runs to do, train none")
    parser.add_argument("--no-commit", action="store_true", help="keep runs, commit nothing")
    parser.add_argument(
        "--report-only", action="store_true",
        help="rebuild tables, cells.csv and verdicts from the kept runs; train none",
    )  # fmt: skip
    parser.add_argument(
        "--collect", action="store_true",
        help="keep the runs already finished in the sweeps folder (e.g. trained side by side "
             "on a GPU: make table1 BUDGET=cpu JOBS=12), rebuild the report; train none",
    )  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="settings of conf/reproduce.yaml, key=value")
    args = parser.parse_args()
    settings = OmegaConf.merge(OmegaConf.load(config_dir() / "reproduce.yaml"),
                               OmegaConf.from_dotlist(args.overrides))  # fmt: skip
    args.budget = args.budget or settings.budget
    os.nice(settings.nice)  # the training runs inherit it; so do the figures and tables
    specs = [TableSpec.load(config_dir() / "tables" / f"{name}.yaml") for name in settings.tables]
    jobs = campaign_jobs(specs, OmegaConf.to_container(settings.extra_sweeps), settings.dataset,
                         settings.seeds, args.budget, REPO / settings.sweeps,
                         list(settings.skip))  # fmt: skip
    kept_root = REPO / settings.kept / args.budget
    named = [(job, run_name(job, config_dir())) for job in jobs]
    todo = [(job, name) for job, name in named if not (kept_root / name / "metrics.json").is_file()]
    print(f"reproduce: {len(named)} runs at budget {args.budget} on {settings.dataset}, "
          f"{len(named) - len(todo)} kept, {len(todo)} to run", flush=True)  # fmt: skip
    warn_unknown_cells(settings, {cell_key(job, config_dir()) for job in jobs})
    if args.report_only:
        for path in rebuild_report(settings, specs, named, args.budget)[0]:
            print(f"  {shown(path)}")
        return
    if args.dry_run:
        for _, name in todo:
            print(f"  {name}")
        return
    lock = hold_campaign_lock(sweep_dir(REPO / settings.sweeps, args.budget))
    if args.collect:
        collect(settings, specs, named, todo, args.budget, not args.no_commit)
        return
    durations = []
    for number, (job, name) in enumerate(todo, 1):
        if (kept_root / name / "metrics.json").is_file():  # kept meanwhile (--collect)
            continue
        started = time.monotonic()
        command = [
            sys.executable,
            str(REPO / "train.py"),
            *job,
            "trainer.enable_progress_bar=false",
        ]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                              pass_fds=(lock.fileno(),))  # fmt: skip
        run_dir = sweep_dir(REPO / settings.sweeps, args.budget) / name  # its hydra.run.dir
        if done.returncode or not (run_dir / "metrics.json").is_file():
            print(f"reproduce: {name} failed (exit {done.returncode}); its directory "
                  f"{run_dir} says why. Going on.\n{done.stderr[-1500:]}", flush=True)  # fmt: skip
            continue
        durations.append(time.monotonic() - started)
        kept = keep_run(run_dir, kept_root / name)
        written, rows = rebuild_report(settings, specs, named, args.budget, new_run=kept)
        runs = len(kept_runs(named, kept_root))
        cells = sum(1 for row in rows if row["n_seeds"] >= settings.seeds)
        left = (len(todo) - number) * sum(durations) / len(durations)
        print(f"reproduce: {name} done in {durations[-1] / 60:.1f} min; runs {runs}/{len(named)}, "
              f"cells with all seeds {cells}/{len(rows)}, about {left / 3600:.1f} h left",
              flush=True)  # fmt: skip
        if settings.commit and not args.no_commit:
            commit(
                [*kept_runs(named, kept_root), *written], f"reproduction ({args.budget}): {name}"
            )
    lock.close()


if __name__ == "__main__":
    main()
