"""Bad input: one clear message naming the problem and the fix, a non-zero exit, no stack
trace on the console (the trace goes to the run's error.log).

The cases run in-process through the entry point behind ``train.py`` (``medmap.train.main``
with a config composed from the real ``conf/``); two go through the real CLI to check what the
console shows."""

import faulthandler
import logging
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import cli, compose_config, require_data
from medmap.train import main, run_train


def fail_in_process(tmp_path, caplog, *overrides: str) -> str:
    """Run the entry point on ``experiment=smoke`` + ``overrides``; return the logged message
    of the exit it must end with (status 1)."""
    run_dir = tmp_path / "run"
    cfg = compose_config(["experiment=smoke", "logger=none", *overrides], run_dir)
    caplog.clear()
    try:
        with (
            caplog.at_level(logging.ERROR, logger="medmap.train"),
            pytest.raises(SystemExit) as exit,
        ):
            main(cfg)
    finally:
        faulthandler.enable(file=sys.__stderr__)  # main() points it at the run's log
    assert exit.value.code == 1
    assert "Traceback" in (run_dir / "error.log").read_text()
    assert (run_dir / "failed.json").is_file()
    return caplog.text


def assert_named(message: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message[-2000:]}"


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["dataset=dermamnist", "paths.data_dir=/nonexistent/data", "dataset.download=false"],
         ["dermamnist.npz", "not found", "DATA_DIR"]),
        (["dataset=leukemia", "dataset.root=/no/such/folder"], ["does not exist", "dataset.root"]),
        (["dataset=pcam", "dataset.root=/no/such/folder"], ["PCam train files were not found"]),
        (["dataset=npz", "dataset.path=/no/such/file.npz"], ["No npz file", "dataset.path"]),
        (["method.epochs=[5,3]"], ["one entry per phase"]),
        (["method.epochs=[2,0,1]"], ["at least 1 epoch"]),
        (["method.batch_size=0"], ["at least 2"]),
        (["dataset.subset=-5"], ["positive number of images"]),
        (["method.lr_per_256=-0.1"], ["method.lr_per_256 must be > 0"]),
        (["loss.temperature=0"], ["loss.temperature must be > 0"]),
        (["loss.exaggeration=-1"], ["loss.exaggeration must be > 0"]),
        (["model.width=-8"], ["model.width"]),
        (["aug.hflip_p=2"], ["probability"]),
    ],
)  # fmt: skip
def test_bad_settings_and_missing_data_give_one_message(tmp_path, caplog, overrides, fragments):
    if not any(o.startswith("dataset=") for o in overrides):  # these fail after loading
        require_data("medmnist", "bloodmnist.npz")
    assert_named(fail_in_process(tmp_path, caplog, *overrides), *fragments)


def assert_clear_cli_failure(result, *fragments: str) -> None:
    console = result.stdout + result.stderr
    assert result.returncode != 0, console[-2000:]
    assert "Traceback" not in console, console[-3000:]
    assert_named(console, *fragments)


def test_the_console_shows_one_message_and_no_trace(tmp_path):
    """Through the real CLI: a missing dataset offline, and Hydra's own message for an
    unknown option and an unknown group value."""
    run_dir = tmp_path / "run"
    result = cli("experiment=smoke", "logger=none", f"hydra.run.dir={run_dir}", "dataset=npz",
                 "dataset.path=/no/such/file.npz")  # fmt: skip
    assert_clear_cli_failure(result, "No npz file", "dataset.path")
    assert "Traceback" in (run_dir / "error.log").read_text()
    result = cli("experiment=smoke", "model.depth=3")
    assert_clear_cli_failure(result, "Could not override 'model.depth'")
    result = cli("experiment=smoke", "aug=sideways")
    assert_clear_cli_failure(result, "aug/sideways", "Available options")


def test_empty_folder_and_corrupt_image_are_named(tmp_path, caplog):
    empty = tmp_path / "empty"
    empty.mkdir()
    message = fail_in_process(tmp_path, caplog, "dataset=imagefolder", f"dataset.root={empty}")
    assert_named(message, "No image files", str(empty))

    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")
    broken = folder / "b" / "truncated.png"
    broken.write_bytes((folder / "b" / "0.png").read_bytes()[:60])
    message = fail_in_process(tmp_path, caplog, "dataset=imagefolder", f"dataset.root={folder}")
    assert_named(message, str(broken), "skip_bad_files=true")

    skipping = compose_config(["experiment=smoke", "logger=none", "dataset=imagefolder",
                               f"dataset.root={folder}", "dataset.skip_bad_files=true",
                               "method.epochs=[1,1,1]"], tmp_path / "skipping")  # fmt: skip
    assert run_train(skipping)["skipped_files"] == 1
    assert '"skipped_files": 1' in (tmp_path / "skipping" / "metrics.json").read_text()


def test_npz_with_missing_keys_or_mismatched_labels(tmp_path, caplog):
    images = np.zeros((20, 28, 28, 3), dtype=np.uint8)
    cases = {
        "wrong.npz": ({"x": images, "y": np.zeros(20)}, ["none named train_images"]),
        "somelabels.npz": (
            {"train_images": images, "train_labels": np.zeros(20), "test_images": images},
            ["lacks ['test_labels']", "or none for an unlabeled"],
        ),
        "short.npz": (
            {"train_images": images, "train_labels": np.zeros(15, dtype=int)},
            ["20 images but 15 labels"],
        ),
    }
    for name, (arrays, fragments) in cases.items():
        np.savez(tmp_path / name, **arrays)
        message = fail_in_process(
            tmp_path, caplog, "dataset=npz", f"dataset.path={tmp_path / name}"
        )
        assert_named(message, *fragments)
