"""The study's scale on this machine: PCam-format files of full size, then every stage a
researcher runs on them, each in its own process with its wall time and peak RSS.

    python scripts/scale.py [--images 327680] [--train-subset 20000] [--work outputs/scale]
    python scripts/scale.py --resume     # go on after a stop (time limit, end of a session)

The real PCam files cannot be downloaded here, so the pixels are synthetic (smooth class-
dependent patterns plus noise) in the real files' layout: camelyonpatch_level_2_split_
{train,valid,test}_{x,y}.h5 of 96x96x3 uint8 with the real split sizes (262,144 / 32,768 /
32,768). Writes <work>/scale.md and .json (``make scale`` copies them to results/).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from medmap.benchmark import cpu_model
from medmap.identity import git_commit

REPO = Path(__file__).resolve().parents[1]
SPLIT_SHARES = {"train": 0.8, "valid": 0.1, "test": 0.1}


def write_pcam_files(root: Path, count: int, chunk: int = 8192, seed: int = 0) -> None:
    """Synthetic PCam h5 files (two classes: a bright or a dark smooth blob over noise)."""
    import h5py

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 96), np.linspace(-1, 1, 96)), axis=-1)
    sizes = {tag: int(count * share) for tag, share in SPLIT_SHARES.items()}
    sizes["train"] += count - sum(sizes.values())
    for tag, size in sizes.items():
        labels = rng.integers(0, 2, size).astype(np.uint8)
        with h5py.File(root / f"camelyonpatch_level_2_split_{tag}_y.h5", "w") as handle:
            handle["y"] = labels.reshape(size, 1, 1, 1)
        with h5py.File(root / f"camelyonpatch_level_2_split_{tag}_x.h5", "w") as handle:
            images = handle.create_dataset("x", (size, 96, 96, 3), dtype=np.uint8)
            for start in range(0, size, chunk):
                part = labels[start : start + chunk]
                centres = rng.uniform(-0.5, 0.5, (len(part), 1, 1, 2))
                blob = np.exp(-((grid - centres) ** 2).sum(-1) / 0.1)[..., None]
                tone = np.where(part == 1, 200, 60)[:, None, None, None]
                noise = rng.integers(0, 40, (len(part), 96, 96, 3))
                images[start : start + len(part)] = np.clip(
                    100 + blob * (tone - 100) + noise, 0, 255
                ).astype(np.uint8)


def measure(name: str, command: list[str], environment: dict[str, str], log: Path) -> dict:
    """Run ``command`` and return its wall time and peak RSS (its own, from wait4)."""
    print(f"[scale] {name}: {shlex.join(command)}", flush=True)
    commit = git_commit()  # the code the step starts with, not a commit made while it ran
    started = time.perf_counter()
    with log.open("a") as output:
        output.write(f"\n=== {name}: {shlex.join(command)}\n")
        output.flush()
        process = subprocess.Popen(
            command, cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    result = {
        "step": name,
        "seconds": round(seconds, 1),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),  # ru_maxrss is in KiB on Linux
        "exit_code": code,
        "commit": commit,
    }
    print(f"[scale] {name}: {result}", flush=True)
    if code != 0:
        raise SystemExit(f"{name} failed (exit {code}); see {log}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=327_680)
    parser.add_argument("--train-subset", type=int, default=20_000)
    parser.add_argument("--work", type=Path, default=REPO / "outputs" / "scale")
    parser.add_argument("--keep-files", action="store_true", help="reuse existing h5 files")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on after a stop: keep files, cache, runs and the steps recorded in steps.json "
        "(a step that was running starts again; a training resumes from its checkpoints)",
    )
    parser.add_argument("--write-only", type=Path, help=argparse.SUPPRESS)  # the first step
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        help="leave out the steps whose names hold these words, e.g. pixel explorer",
    )
    args = parser.parse_args()
    if args.write_only:
        write_pcam_files(args.write_only, args.images)
        return
    work = args.work.resolve()
    data, cache, runs = work / "pcam", work / "cache", work / "runs"
    log, finished = work / "scale.log", work / "steps.json"
    work.mkdir(parents=True, exist_ok=True)
    results = json.loads(finished.read_text()) if args.resume and finished.is_file() else []
    done = {result["step"] for result in results}
    if not args.resume:
        log.write_text("")
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(runs, ignore_errors=True)
    environment = {**os.environ, "MEDMAP_CACHE_DIR": str(cache), "HYDRA_FULL_ERROR": "0"}
    python = sys.executable

    def run_step(name: str, command: list[str]) -> bool:
        """Measure a step and record it at once (a stopped benchmark resumes after it)."""
        if name in done:
            print(f"[scale] {name}: done before, skipped (--resume)", flush=True)
            return False
        results.append(measure(name, command, environment, log))
        finished.write_text(json.dumps(results, indent=2) + "\n")
        return True

    dataset = ["dataset=pcam", f"dataset.root={data}", "logger=none",
               "trainer.enable_progress_bar=false"]  # fmt: skip
    keep = (args.keep_files or args.resume) and (
        data / "camelyonpatch_level_2_split_test_y.h5"
    ).is_file()
    if not keep:
        shutil.rmtree(data, ignore_errors=True)
        writer = [python, __file__, "--write-only", str(data), "--images", str(args.images)]
        run_step("write PCam-format files", writer)
    load = [python, "-c", LOAD, str(work), "dataset=pcam", f"dataset.root={data}"]
    for name in ("cold", "warm"):  # the loader alone on all images, timed inside
        if run_step(f"load {name}: all {args.images} images (loader only)", [*load, name]):
            timed = json.loads((work / f"load-{name}.json").read_text())
            results[-1]["load_seconds"] = timed["seconds"]
            finished.write_text(json.dumps(results, indent=2) + "\n")
            if name == "warm":  # the first smoke run decodes again, as a first run would
                shutil.rmtree(cache)
    steps = {
        "load cold + smoke run (512 images)": [
            python, "train.py", *dataset, "experiment=smoke", f"hydra.run.dir={runs / 'cold'}"],
        "load warm + smoke run (512 images)": [
            python, "train.py", *dataset, "experiment=smoke", f"hydra.run.dir={runs / 'warm'}"],
        f"train on a {args.train_subset}-image subset (smoke budget)": [
            python, "train.py", *dataset, "experiment=smoke", f"dataset.subset={args.train_subset}",
            f"hydra.run.dir={runs / 'subset'}"],
        f"map all {args.images} images into it (embed.py)": [
            python, "embed.py", f"run={runs / 'subset'}", "dataset=pcam",
            f"dataset.root={data}"],
        f"evaluate the map of all {args.images} (silhouette, kNN)": [
            python, "-c", EVALUATE, str(runs / "subset")],
        "pixel t-SNE baseline on all images": [
            python, "train.py", *dataset, "method=tsne", "method.features=pixels",
            f"hydra.run.dir={runs / 'pixel-tsne'}"],
        "explorer page of the pixel t-SNE map": [
            python, "explore.py", f"run={runs / 'pixel-tsne'}"],
    }  # fmt: skip
    for name, command in steps.items():
        if not any(word in name for word in args.skip):
            run_step(name, command)
    page = runs / "pixel-tsne" / "explorer.html"
    record = {
        "images": args.images,
        "train_subset": args.train_subset,
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "commits": sorted({r.get("commit", "not recorded") for r in results}),
        "finished": time.strftime("%Y-%m-%d %H:%M"),
        "total_seconds": round(sum(result["seconds"] for result in results), 1),
        "explorer_mb": round(page.stat().st_size / 1e6, 1) if page.is_file() else None,
        "cache_gib": round(
            sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 2**30, 2
        ),
        "maps": {
            f"the training's own {args.train_subset} images": map_scores(
                runs / "subset" / "metrics.json"
            ),
            f"all {args.images} images mapped by it": map_scores(
                runs / "subset" / "evaluation_new.json"
            ),
            "pixel t-SNE of all images": map_scores(runs / "pixel-tsne" / "metrics.json"),
        },
        "steps": results,
    }
    (work / "scale.json").write_text(json.dumps(record, indent=2) + "\n")
    (work / "scale.md").write_text(render_markdown(record))
    print((work / "scale.md").read_text())


def map_scores(path: Path) -> dict | None:
    """A map's size and scores (and their times, where recorded) from a run's json file."""
    if not path.is_file():
        return None
    found = json.loads(path.read_text())
    keys = ("n_images", "points", "silhouette", "knn_acc", "silhouette_seconds",
            "knn_acc_seconds", "train_seconds")  # fmt: skip
    return {key: found[key] for key in keys if key in found}


def render_markdown(record: dict) -> str:
    rows = [f"| {r['step']} | {r['seconds']:.1f} | {r.get('load_seconds', '')} | "
            f"{r['peak_rss_gib']:.2f} |" for r in record["steps"]]  # fmt: skip
    maps = [
        f"| {name} | {found.get('n_images', found.get('points'))} | "
        f"{found['silhouette']:.3f} | {found['knn_acc']:.1f} | "
        f"{found.get('silhouette_seconds', '')} | {found.get('knn_acc_seconds', '')} |"
        for name, found in record["maps"].items()
        if found
    ]
    return (
        f"# Scale: {record['images']:,} PCam-format images (synthetic pixels)\n\n"
        f"`make scale`, steps run at commit {', '.join(record['commits'])}, "
        f"finished {record['finished']}. "
        f"Machine: {record['machine']}. The real PCam files cannot be downloaded here: the "
        "files have the real layout and split sizes with synthetic pixels. Peak RSS is each "
        "step's own process (`wait4`); wall s includes starting Python and importing torch.\n\n"
        f"Decoded-image cache: {record['cache_gib']} GiB. Explorer page: "
        f"{record['explorer_mb']} MB.\n\n"
        "| step | wall s | load s (inside) | peak RSS GiB |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
        + (
            "\n| map | points | silhouette | kNN % | silhouette s | kNN s |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(maps) + "\n"
            if maps
            else ""
        )
    )


LOAD = """
import json, sys, time
from pathlib import Path
from medmap.api import compose_config
from medmap.data import load_dataset
work, overrides, name = Path(sys.argv[1]), sys.argv[2:-1], sys.argv[-1]
cfg = compose_config(overrides, work)
started = time.perf_counter()
collection = load_dataset(cfg.dataset, cfg.seed)
seconds = round(time.perf_counter() - started, 2)
print("load", name, collection.describe(), seconds, "s", flush=True)
record = {"seconds": seconds, "images": len(collection.images)}
(work / f"load-{name}.json").write_text(json.dumps(record))
"""

EVALUATE = """
import json, sys, time, numpy as np
from pathlib import Path
from medmap.evaluation import knn_accuracy, silhouette
run = Path(sys.argv[1])
embedding, labels = np.load(run / "embedding_new.npy"), np.load(run / "labels_new.npy")
record = {"points": len(labels)}
for name, score in (("silhouette", silhouette), ("knn_acc", knn_accuracy)):
    started = time.perf_counter()
    record[name] = float(score(embedding, labels))
    record[name + "_seconds"] = round(time.perf_counter() - started, 1)
print(record, flush=True)
(run / "evaluation_new.json").write_text(json.dumps(record, indent=2))
"""

if __name__ == "__main__":
    main()
