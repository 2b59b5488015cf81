"""``make gpu-check`` dry-run on the CPU with tiny settings: every step runs and is written."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, data_dir, require_data


# slow (about 60 s: five processes of a script meant for a GPU): make test-all runs it
@pytest.mark.slow
@pytest.mark.data
def test_gpu_check_dry_runs_on_the_cpu_and_writes_its_record(tmp_path):
    require_data("medmnist", "bloodmnist.npz")
    bench = f"method.batch_size=64,model.width=8,dataset.subset=256,bench.output_dir={tmp_path}/b"
    tiny = [
        f"output_dir={tmp_path}",
        f"bench.overrides=[{bench}]",
        "pcam_step.overrides=[dataset=pcam,experiment=smoke,method.batch_size=4]",
        "pcam_step.image_size=32",
        "pcam_step.steps=1",
        "pair.overrides=[experiment=smoke,dataset=bloodmnist,dataset.subset=256,logger=none]",
    ]
    done = subprocess.run([sys.executable, "scripts/gpu_check.py", *tiny], cwd=REPO,
                          env={**os.environ, "DATA_DIR": str(data_dir())},
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((tmp_path / "gpu-check.json").read_text())
    assert record["bench"]["exit_code"] == 0 and record["bench"]["batch_size"] == 64
    assert record["bench"]["ours_img_s"] > 0 and (tmp_path / "bench-gpu.md").is_file()
    assert record["pcam_step"]["batch_size"] == 4 and record["pcam_step"]["image_size"] == 32
    assert record["pcam_step"]["peak_memory_mib"] > 0
    for aug in ("randrot", "default"):
        assert -1 <= record["pair"][aug]["silhouette"] <= 1
        assert json.loads((tmp_path / f"pair-{aug}.json").read_text())["aug"] == aug
    assert "| randrot |" in (tmp_path / "gpu-check.md").read_text()
