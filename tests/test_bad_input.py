"""Bad input: one clear message naming the problem and the fix, a non-zero exit, no stack
trace on the console (the trace goes to the run's error.log)."""

import numpy as np
import pytest
from PIL import Image

from conftest import cli, require_data


def assert_clear_failure(result, *fragments: str) -> str:
    console = result.stdout + result.stderr
    assert result.returncode != 0, console[-2000:]
    assert "Traceback" not in console, console[-3000:]
    for fragment in fragments:
        assert fragment in console, f"{fragment!r} not in:\n{console[-2000:]}"
    return console


def assert_trace_logged(run_dir) -> None:
    assert "Traceback" in (run_dir / "error.log").read_text()
    assert (run_dir / "failed.json").is_file()


def run_smoke(tmp_path, *overrides):
    run_dir = tmp_path / "run"
    return cli("experiment=smoke", "logger=none", f"hydra.run.dir={run_dir}", *overrides), run_dir


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
def test_bad_settings_and_missing_data_give_one_message(tmp_path, overrides, fragments):
    if not any(o.startswith("dataset=") for o in overrides):  # these fail after loading
        require_data("medmnist", "bloodmnist.npz")
    result, run_dir = run_smoke(tmp_path, *overrides)
    assert_clear_failure(result, *fragments)
    assert_trace_logged(run_dir)


def test_unknown_option_or_group_value_is_hydras_message(tmp_path):
    result, _ = run_smoke(tmp_path, "model.depth=3")
    assert_clear_failure(result, "Could not override 'model.depth'")
    result, _ = run_smoke(tmp_path, "aug=sideways")
    assert_clear_failure(result, "aug/sideways", "Available options")


def test_empty_folder_and_corrupt_image_are_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result, run_dir = run_smoke(tmp_path, "dataset=imagefolder", f"dataset.root={empty}")
    assert_clear_failure(result, "No image files", str(empty))
    assert_trace_logged(run_dir)

    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")
    broken = folder / "b" / "truncated.png"
    broken.write_bytes((folder / "b" / "0.png").read_bytes()[:60])
    result, _ = run_smoke(tmp_path, "dataset=imagefolder", f"dataset.root={folder}")
    assert_clear_failure(result, str(broken), "skip_bad_files=true")

    result, run_dir = run_smoke(
        tmp_path, "dataset=imagefolder", f"dataset.root={folder}", "dataset.skip_bad_files=true"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"skipped_files": 1' in (run_dir / "metrics.json").read_text()


def test_npz_with_missing_keys_or_mismatched_labels(tmp_path):
    images = np.zeros((20, 28, 28, 3), dtype=np.uint8)
    wrong_keys = tmp_path / "wrong.npz"
    np.savez(wrong_keys, x=images, y=np.zeros(20))
    result, _ = run_smoke(tmp_path, "dataset=npz", f"dataset.path={wrong_keys}")
    assert_clear_failure(result, "none named train_images")
    some_labels = tmp_path / "somelabels.npz"
    np.savez(some_labels, train_images=images, train_labels=np.zeros(20), test_images=images)
    result, _ = run_smoke(tmp_path, "dataset=npz", f"dataset.path={some_labels}")
    assert_clear_failure(result, "lacks ['test_labels']", "or none for an unlabeled")
    short = tmp_path / "short.npz"
    np.savez(short, train_images=images, train_labels=np.zeros(15, dtype=int))
    result, _ = run_smoke(tmp_path, "dataset=npz", f"dataset.path={short}")
    assert_clear_failure(result, "20 images but 15 labels")
