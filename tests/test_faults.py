"""Faults during training: Ctrl-C, a NaN loss, a full disk mid-checkpoint."""

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, cli, data_dir, require_data
from medmap.runtime.checkpoints import AtomicCheckpointIO, load_checkpoint
from medmap.train import run_train


def wait_for(path, text, process, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text():
            return
        if process.poll() is not None:
            pytest.fail(f"training ended before {text!r}: {process.communicate()}")
        time.sleep(0.2)
    pytest.fail(f"{text!r} never appeared in {path}")


@pytest.mark.data
def test_ctrl_c_saves_a_checkpoint_and_the_run_resumes_from_it(tmp_path):
    require_data("medmnist", "bloodmnist.npz")
    run = tmp_path / "run"
    overrides = ["experiment=smoke", "logger=none", "method.epochs=[40,1,1]", "dataset.subset=128",
                 f"hydra.run.dir={run}", "trainer.enable_progress_bar=false"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "train.py", *overrides],
        cwd=REPO,
        env={**os.environ, "DATA_DIR": str(data_dir())},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell without job control starts background jobs with SIGINT ignored, and Python
        # keeps an inherited SIG_IGN: give the run the Ctrl-C a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_for(run / "train.log", "epoch 2/42", process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "Traceback" not in stdout + stderr
    saved = run / "checkpoints" / "interrupted.ckpt"
    assert saved.is_file() and "Resume with ckpt_path=" in (run / "train.log").read_text()
    checkpoint = load_checkpoint(saved)
    assert 1 <= checkpoint["epoch"] < 40 and checkpoint["phase_index"] == 0
    resumed = cli(*overrides[:-1], f"ckpt_path={saved}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert final["epoch"] == 41 and final["phase_index"] == 2  # all 42 epochs, 3 phases
    assert (run / "metrics.json").is_file()


@pytest.mark.data
@pytest.mark.parametrize(
    "stop", [signal.SIGTERM, pytest.param(signal.SIGUSR1, marks=pytest.mark.slow)]
)  # the same handler: SIGUSR1 in make test-all
def test_a_cluster_stop_saves_exits_non_zero_and_the_same_command_resumes(tmp_path, stop):
    """SLURM sends SIGTERM at a time limit or preemption (SIGUSR1 as an early warning when
    asked): the run saves the partial epoch, records why it has no metrics and exits non-zero;
    the same command with the same run directory resumes on its own and finishes."""
    require_data("medmnist", "bloodmnist.npz")
    run = tmp_path / "run"
    command = [sys.executable, "train.py", "experiment=smoke", "logger=none", "dataset.subset=256",
               "method.epochs=[4,2,4]", f"hydra.run.dir={run}",
               "trainer.enable_progress_bar=false"]  # fmt: skip
    environment = {**os.environ, "DATA_DIR": str(data_dir())}
    process = subprocess.Popen(
        command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    wait_for(run / "train.log", "epoch 2/10", process)
    process.send_signal(stop)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143
    assert "Traceback" not in stdout + stderr
    log = (run / "train.log").read_text()
    assert "Stopped by signal" in log and f"hydra.run.dir={run} to resume" in log
    saved = load_checkpoint(run / "checkpoints" / "interrupted.ckpt")
    assert 2 <= saved["epoch"] < 10
    assert "stopped by a signal" in json.loads((run / "failed.json").read_text())["error"]
    assert not (run / "metrics.json").exists()

    again = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    log = (run / "train.log").read_text()
    assert f"Resuming from {run / 'checkpoints' / 'interrupted.ckpt'}" in log
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["resumed_from"].endswith("interrupted.ckpt")
    assert not (run / "failed.json").exists()  # the stop's record goes once the run is done
    final = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert final["epoch"] == 9 and final["phase_index"] == 2


@pytest.mark.data
def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    require_data("medmnist", "bloodmnist.npz")
    run = tmp_path / "run"
    # phase 3 at an absurd learning rate: the weights blow up and the loss stops being finite
    result = cli("experiment=smoke", "logger=none", "method.lr_factors=[1,1,1e12]",
                 f"hydra.run.dir={run}")  # fmt: skip
    console = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in console
    assert "The training loss became" in console and "phase 3" in console
    last = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert last["phase_index"] in (1, 2)  # written before the loss failed
    assert all(
        torch.isfinite(t).all() for t in last["state_dict"].values() if t.is_floating_point()
    )
    assert not (run / "metrics.json").exists() and (run / "failed.json").is_file()


def _write_then_overflow(directory, limit_bytes):
    """In a child process whose files may not exceed ``limit_bytes`` (RLIMIT_FSIZE, the
    kernel's own "file too large"), save a small checkpoint, then one that cannot fit."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    io = AtomicCheckpointIO()
    io.save_checkpoint({"weights": torch.arange(10.0)}, directory / "last.ckpt")
    try:
        io.save_checkpoint({"weights": torch.zeros(10_000_000)}, directory / "last.ckpt")
    except (OSError, RuntimeError) as error:  # torch wraps the OSError in a RuntimeError
        causes = [error, error.__context__, error.__cause__]
        if any(isinstance(c, OSError) and c.errno == errno.EFBIG for c in causes):
            print("save failed: File too large")


def test_a_full_disk_mid_checkpoint_leaves_the_previous_one_whole(tmp_path):
    code = (
        "import sys, pathlib; sys.path.insert(0, sys.argv[2]);"
        "from test_faults import _write_then_overflow;"
        "_write_then_overflow(pathlib.Path(sys.argv[1]), 1_000_000)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), str(REPO / "tests")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "save failed: File too large" in result.stdout, result.stderr[-2000:]
    saved = load_checkpoint(tmp_path / "last.ckpt")  # the first checkpoint, intact
    np.testing.assert_array_equal(saved["weights"].numpy(), np.arange(10.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no partial file left


def latest_phase(checkpoint_path):
    """(phase index, epoch) of the newest checkpoint, or None while there is none."""
    try:
        checkpoint = load_checkpoint(checkpoint_path)
        return checkpoint["phase_index"], checkpoint["epoch"]
    except Exception:  # not written yet
        return None


SCHEDULE = ["experiment=smoke", "logger=none", "trainer=cpu", "seed=3", "dataset.subset=512",
            "method.epochs=[4,4,4]", "method.warmup_epochs=[1,0,1]"]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run every killed-and-resumed run must end like (one for all three phases)."""
    require_data("medmnist", "bloodmnist.npz")
    run = tmp_path_factory.mktemp("reference")
    reference = cli(*SCHEDULE, f"hydra.run.dir={run}")
    assert reference.returncode == 0, reference.stderr[-2000:]
    return run


@pytest.mark.data
@pytest.mark.parametrize(
    "phase", [pytest.param(0, marks=pytest.mark.slow), pytest.param(1, marks=pytest.mark.slow), 2]
)  # phase 3 restores both head changes; phases 1 and 2 in make test-all
def test_sigkill_anywhere_then_resume_matches_the_uninterrupted_run(tmp_path, phase, uninterrupted):
    """A real process killed at a random epoch of each phase and resumed into the same run
    directory ends where an uninterrupted run with the same seed ends."""
    run = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "train.py", *SCHEDULE, f"hydra.run.dir={run}",
         "trainer.enable_progress_bar=false"],
        cwd=REPO, env={**os.environ, "DATA_DIR": str(data_dir())},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    target_epoch = 4 * phase + int(np.random.default_rng().integers(0, 3))
    checkpoint = run / "checkpoints" / "last.ckpt"
    state = None
    while process.poll() is None:
        state = latest_phase(checkpoint)
        if state and state[1] >= target_epoch:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = latest_phase(checkpoint)
    assert state is not None and state[0] == phase, f"killed at {state}, wanted phase {phase}"
    assert not (run / "metrics.json").exists()

    resumed = cli(*SCHEDULE, f"ckpt_path={checkpoint}", f"hydra.run.dir={run}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = load_checkpoint(checkpoint)
    assert final["epoch"] == 11 and final["phase_index"] == 2
    assert final["global_step"] == 12 * (512 // 64)
    expected = json.loads((uninterrupted / "metrics.json").read_text())
    got = json.loads((run / "metrics.json").read_text())
    assert got["silhouette"] == pytest.approx(expected["silhouette"], abs=0.01)
    assert got["knn_acc"] == pytest.approx(expected["knn_acc"], abs=1.0)
    np.testing.assert_allclose(
        np.load(run / "embedding.npy"), np.load(uninterrupted / "embedding.npy"),
        rtol=1e-3, atol=1e-2,
    )  # fmt: skip


@pytest.mark.data
def test_a_finished_run_started_again_in_its_directory_is_not_trained_again(make_config, caplog):
    """A table sweep started again after a time limit skips the runs it had finished; any
    changed setting trains afresh."""
    require_data("medmnist", "bloodmnist.npz")
    settings = ["experiment=smoke", "logger=none", "dataset.subset=128", "method.epochs=[1,1,1]"]
    first = run_train(make_config(*settings))
    run = Path(make_config(*settings).paths.output_dir)
    written = (run / "metrics.json").stat().st_mtime_ns
    assert len(first["config_digest"]) == 16
    with caplog.at_level(logging.INFO, logger="medmap.train"):
        again = run_train(make_config(*settings))
    assert again == first and (run / "metrics.json").stat().st_mtime_ns == written
    assert "already holds this run, finished" in caplog.text
    # Another setting (here the duplicate threshold) is another run: its checkpoint is
    # finished, so it is evaluated again and metrics.json rewritten.
    changed = run_train(make_config(*settings, "quality.duplicate_threshold=0.3"))
    assert changed["config_digest"] != first["config_digest"]
    assert (run / "metrics.json").stat().st_mtime_ns != written


def test_a_native_crash_leaves_the_python_stack_in_train_log(tmp_path):
    """A segfault in torch or oneDNN prints no traceback: faulthandler writes every thread's
    Python stack into the run's train.log, so the run directory shows where it died."""
    images = np.random.default_rng(0).integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "tiny.npz", train_images=images)
    run = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "train.py",
            "dataset=npz",
            f"dataset.path={tmp_path / 'tiny.npz'}",
            "experiment=smoke",
            "logger=none",
            "method.epochs=[500,1,1]",
            f"hydra.run.dir={run}",
            "trainer.enable_progress_bar=false",
        ],  # fmt: skip
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(run / "train.log", "epoch 2/502", process)
    process.send_signal(signal.SIGSEGV)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGSEGV
    log = (run / "train.log").read_text()
    crash = log[log.index("Fatal Python error: Segmentation fault") :]
    assert "Current thread" in crash or "Thread 0x" in crash
    assert "in train_network" in crash and "in fit" in crash  # the Python stack, run to step
