"""Planted data-quality problems and the figures built from finished runs."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, cli, data_dir, require_data
from medmap.data import ImageCollection, load_dataset
from medmap.data.inject import (
    ARTEFACT,
    ARTEFACT_KINDS,
    DUPLICATE,
    inject,
    paint_artefact,
    perturbed_copy,
)
from medmap.errors import UserFacingError
from medmap.evaluation import neighbourhood_share


def grey_collection(count=50):
    """Smooth random images (4x4 noise blown up to 28x28), each with its own pattern."""
    rng = np.random.default_rng(1)
    coarse = rng.integers(40, 216, (count, 4, 4, 3)).astype(np.uint8)
    images = coarse.repeat(7, axis=1).repeat(7, axis=2)
    return ImageCollection("grey", images, np.arange(count) % 5, list("abcde"))


def correlation(a, b):
    a, b = a.astype(float).ravel(), b.astype(float).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def test_duplicates_are_perturbed_copies_of_one_image_with_its_label():
    original = grey_collection()
    planted = inject(original, duplicates=10, artefacts=0, seed=3)
    assert len(planted) == 60 and (planted.injected == DUPLICATE).sum() == 10
    copies = planted.images[50:]
    source = int(np.argmax([correlation(copies[0], image) for image in original.images]))
    # every copy looks most like that one image (shifted, jittered, noisy) ...
    for copy in copies:
        likeness = [correlation(copy, image) for image in original.images]
        assert int(np.argmax(likeness)) == source and max(likeness) > 0.4
    assert len({c.tobytes() for c in planted.images[50:]}) == 10  # ... but no two identical
    assert (planted.labels[50:] == original.labels[source]).all()
    np.testing.assert_array_equal(planted.images[:50], original.images)  # originals untouched


def test_perturbation_sizes_bound_how_copies_differ():
    rng = np.random.default_rng(0)
    ramp = np.repeat(np.repeat(np.arange(28, dtype=np.uint8)[None, :, None] * 9, 28, 0), 3, 2)
    still = {"brightness": 0.0, "contrast": 0.0, "noise": 0.0}
    np.testing.assert_array_equal(perturbed_copy(ramp, rng, shift=0, **still), ramp)
    offsets = set()
    for _ in range(30):  # a shift repeats the edge column; it never wraps the far side round
        moved = perturbed_copy(ramp, rng, shift=2, **still)
        assert (np.diff(moved[0, :, 0].astype(int)) >= 0).all()
        offsets.add(int(moved[0, 14, 0]) // 9 - 14)
    assert offsets == {-2, -1, 0, 1, 2}
    grey = np.full((28, 28, 3), 128, np.uint8)
    for _ in range(30):  # brightness alone: one offset of at most 10% of the grey range
        brighter = perturbed_copy(grey, rng, brightness=0.1, contrast=0.0, noise=0.0)
        assert len(np.unique(brighter)) == 1 and abs(int(brighter[0, 0, 0]) - 128) <= 26
    with pytest.raises(ValueError, match="perturbation sizes must be >= 0"):
        inject(grey_collection(), duplicates=5, noise=-1.0)


def test_artefacts_paint_each_kind_and_keep_labels():
    original = grey_collection()
    planted = inject(original, duplicates=0, artefacts=8, seed=0)
    painted = np.flatnonzero(planted.injected == ARTEFACT)
    assert len(painted) == 8 and len(planted) == 50
    np.testing.assert_array_equal(planted.labels, original.labels)
    for index in painted:
        assert not np.array_equal(planted.images[index], original.images[index])
    rng = np.random.default_rng(0)
    bordered = paint_artefact(original.images[0], "black border", rng)
    assert (bordered[0] == 0).all() and (bordered[:, -1] == 0).all()
    for kind in ARTEFACT_KINDS:
        assert paint_artefact(original.images[0], kind, rng).shape == (28, 28, 3)
    with pytest.raises(ValueError, match=">= 0"):
        inject(original, duplicates=-1)


def test_neighbourhood_share_on_known_maps():
    rng = np.random.default_rng(0)
    island = np.vstack([rng.normal(0, 1, (200, 2)), rng.normal(50, 0.1, (20, 2))])
    members = np.arange(220) >= 200
    assert neighbourhood_share(island, members) == 1.0
    scattered = rng.normal(0, 1, (220, 2))
    assert neighbourhood_share(scattered, members) < 0.2


@pytest.mark.data
def test_injection_composes_with_a_dataset_and_figures_build_from_runs(tmp_path):
    require_data("medmnist", "bloodmnist.npz")
    run = tmp_path / "runs" / "tsimcne"
    result = cli("experiment=smoke", "logger=none", "dataset.subset=400", f"hydra.run.dir={run}",
                 "dataset.inject.duplicates=30", "dataset.inject.artefacts=20")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    injected = np.load(run / "injected.npy")
    assert len(injected) == 430 and (injected == DUPLICATE).sum() == 30
    assert (injected == ARTEFACT).sum() == 20
    with (run / "map.csv").open() as handle:  # named, so the explorer colours by kind
        kinds = [row["injected"] for row in csv.DictReader(handle)]
    assert kinds.count("duplicate") == 30 and kinds.count("artefact") == 20
    assert kinds.count("") == 380
    scores = json.loads((run / "metrics.json").read_text())["injected"]
    assert scores["duplicates"]["count"] == 30 and scores["artefacts"]["count"] == 20
    assert 0.0 <= scores["duplicates"]["neighbourhood_share"] <= 1.0
    pixels = cli("experiment=smoke", "logger=none", "method=tsne", "dataset.subset=400",
                 f"hydra.run.dir={tmp_path / 'runs' / 'pixels'}")  # fmt: skip
    assert pixels.returncode == 0, pixels.stderr[-2000:]

    env = {**os.environ, "DATA_DIR": str(data_dir())}
    command = [sys.executable, "scripts/duplicate_sensitivity.py", f"run={run}"]
    probed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert probed.returncode == 0, probed.stderr[-2000:]
    rows = json.loads((run / "duplicate_sensitivity.json").read_text())
    assert len(rows) == 9 and rows[0]["perturbation"] == "exact copies"
    assert rows[0]["island_share"] == 1.0 and rows[0]["spread_over_typical_gap"] < 1e-2
    assert all(0.0 <= row["island_share"] <= 1.0 for row in rows)
    assert "| shift ≤2 px |" in (run / "duplicate_sensitivity.md").read_text()
    command = [sys.executable, "scripts/figures.py", "--outputs", str(tmp_path)]
    made = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-2000:]
    figures = tmp_path / "figures" / "smoke" / "bloodmnist"
    for stem in ("tsimcne-default-seed0-map", "tsimcne-default-seed0-grid", "comparison"):
        for suffix in (".png", ".pdf"):
            assert (figures / f"{stem}{suffix}").stat().st_size > 5_000, stem + suffix
    with pytest.raises(UserFacingError, match=">= 0"):
        load_dataset({"_target_": "medmap.data.sources.load_medmnist", "flag": "bloodmnist",
                      "root": str(data_dir() / "medmnist"), "subset": 50,
                      "inject": {"duplicates": -5}}, seed=0)  # fmt: skip
