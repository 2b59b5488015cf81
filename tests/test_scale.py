"""``make scale``'s script on a tiny PCam-format collection: every stage runs and is recorded."""

import json
import subprocess
import sys

import h5py
import pytest

from conftest import REPO


@pytest.mark.slow
def test_the_scale_benchmark_runs_every_stage_on_a_small_collection(tmp_path):
    work = tmp_path / "scale"
    done = subprocess.run(
        [sys.executable, "scripts/scale.py", "--images", "600", "--train-subset", "300",
         "--work", str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with h5py.File(work / "pcam" / "camelyonpatch_level_2_split_train_x.h5") as handle:
        assert handle["x"].shape == (480, 96, 96, 3)
    record = json.loads((work / "scale.json").read_text())
    assert [step["exit_code"] for step in record["steps"]] == [0] * 10
    assert all(step["peak_rss_gib"] > 0 for step in record["steps"])
    assert record["explorer_mb"] > 0 and record["cache_gib"] > 0
    embedded = work / "runs" / "subset" / "embedding_new.npy"
    assert embedded.is_file()
    warm = next(step for step in record["steps"] if step["step"].startswith("load warm"))
    assert 0 < warm["load_seconds"] < warm["seconds"]
    assert "| load warm + smoke run (512 images) |" in (work / "scale.md").read_text()
    maps = record["maps"]
    assert maps["all 600 images mapped by it"]["points"] == 600
    assert all(-1 <= found["silhouette"] <= 1 for found in maps.values())


# slow (about 37 s: every stage of make scale): make test-all runs it
@pytest.mark.slow
def test_a_stopped_scale_benchmark_resumes_after_its_recorded_steps(tmp_path):
    """Each finished step is recorded at once; --resume skips those and keeps the files."""
    work = tmp_path / "scale"
    command = [sys.executable, "scripts/scale.py", "--images", "64", "--work", str(work),
               "--skip", "smoke", "subset", "embed", "evaluate", "pixel", "explorer"]  # fmt: skip
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    recorded = json.loads((work / "steps.json").read_text())
    assert [step["step"].split(":")[0] for step in recorded] == [
        "write PCam-format files", "load cold", "load warm"]  # fmt: skip
    assert recorded[2]["load_seconds"] < recorded[1]["load_seconds"]  # memory-mapped
    written = (work / "pcam" / "camelyonpatch_level_2_split_train_x.h5").stat().st_mtime_ns
    again = subprocess.run([*command, "--resume"], cwd=REPO, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("done before, skipped (--resume)") == 2  # both loads
    assert "write PCam-format files: /" not in again.stdout  # the files are kept
    assert (work / "pcam" / "camelyonpatch_level_2_split_train_x.h5").stat().st_mtime_ns == written
    assert json.loads((work / "steps.json").read_text()) == recorded
    record = json.loads((work / "scale.json").read_text())
    assert record["steps"] == recorded
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    assert record["commits"] == [head.stdout.strip()]  # every step says what code ran it
