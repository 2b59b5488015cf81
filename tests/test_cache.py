"""The decoded-image cache: decode once, memory-map later, re-read a changed source, never
leave a half-written entry, and stay correct when several jobs start together."""

import logging
import mmap
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from medmap.data import load_dataset
from medmap.errors import UserFacingError
from test_data import write_pcam


def write_folder(root, count=12, seed=0):
    rng = np.random.default_rng(seed)
    for index in range(count):
        folder = root / ("alpha" if index % 2 else "beta")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)  # non-square: cropped
        Image.fromarray(pixels).save(folder / f"cell{index:02d}.png")


def folder_config(root, cache_dir, **extra):
    return {"_target_": "medmap.data.sources.load_image_folder", "name": "cells",
            "root": str(root), "size": 16, "cache_dir": str(cache_dir), **extra}  # fmt: skip


def memory_mapped(array) -> bool:
    while array is not None:
        if isinstance(array, np.memmap | mmap.mmap):
            return True
        array = getattr(array, "base", None)
    return False


def entries(cache_dir):
    return sorted(path.name for path in cache_dir.iterdir() if not path.name.startswith("."))


def test_a_folder_is_decoded_once_then_memory_mapped(tmp_path, caplog):
    write_folder(tmp_path / "data")
    cache = tmp_path / "cache"
    uncached = load_dataset({**folder_config(tmp_path / "data", cache), "cache_dir": None}, seed=0)
    with caplog.at_level(logging.INFO):
        first = load_dataset(folder_config(tmp_path / "data", cache), seed=0)
        second = load_dataset(folder_config(tmp_path / "data", cache), seed=0)
    assert len(entries(cache)) == 1 and "Decoded cells once" in caplog.text
    assert "Reading the decoded images of cells from the cache" in caplog.text
    for loaded in (first, second):
        assert memory_mapped(loaded.images)
        np.testing.assert_array_equal(loaded.images, uncached.images)
        np.testing.assert_array_equal(loaded.labels, uncached.labels)
        assert loaded.ids.tolist() == uncached.ids.tolist()
        assert loaded.class_names == ["alpha", "beta"] and loaded.labeled
    # a subset copies only its rows out of the mapped file
    subset = load_dataset(folder_config(tmp_path / "data", cache, subset=4), seed=0)
    assert not memory_mapped(subset.images) and subset.images.shape == (4, 16, 16, 3)


def test_a_changed_source_is_read_again(tmp_path):
    write_folder(tmp_path / "data")
    cache = tmp_path / "cache"
    before = load_dataset(folder_config(tmp_path / "data", cache), seed=0)
    changed = tmp_path / "data" / "beta" / "cell00.png"
    Image.fromarray(np.full((20, 30, 3), 7, dtype=np.uint8)).save(changed)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    after = load_dataset(folder_config(tmp_path / "data", cache), seed=0)
    assert len(entries(cache)) == 2
    row = after.ids.tolist().index("beta/cell00.png")
    assert (after.images[row] == 7).all() and not (before.images[row] == 7).all()
    # a different image size is another entry too
    load_dataset(folder_config(tmp_path / "data", cache, size=8), seed=0)
    assert len(entries(cache)) == 3


def test_a_failed_decode_leaves_no_entry_and_keeps_its_message(tmp_path):
    write_folder(tmp_path / "data")
    (tmp_path / "data" / "alpha" / "broken.png").write_bytes(b"not a png")
    cache = tmp_path / "cache"
    with pytest.raises(UserFacingError, match="broken.png could not be read"):
        load_dataset(folder_config(tmp_path / "data", cache), seed=0)
    assert entries(cache) == []
    skipped = load_dataset(folder_config(tmp_path / "data", cache, skip_bad_files=True), seed=0)
    assert len(skipped) == 12 and skipped.skipped_files == 1
    again = load_dataset(folder_config(tmp_path / "data", cache, skip_bad_files=True), seed=0)
    assert again.skipped_files == 1 and np.array_equal(again.images, skipped.images)


def test_pcam_goes_through_the_cache_in_chunks(tmp_path):
    write_pcam(tmp_path, {"train": 6, "valid": 4, "test": 3})
    config = {"_target_": "medmap.data.sources.load_pcam", "name": "pcam",
              "root": str(tmp_path), "size": 96, "chunk": 4}  # fmt: skip
    direct = load_dataset({**config, "cache_dir": None}, seed=0)
    cached = load_dataset({**config, "cache_dir": str(tmp_path / "cache")}, seed=0)
    np.testing.assert_array_equal(cached.images, direct.images)
    assert (
        cached.splits.tolist()
        == direct.splits.tolist()
        == ["train"] * 6 + ["val"] * 4 + ["test"] * 3
    )
    assert entries(tmp_path / "cache")[0].startswith("pcam-")


RACE = """
import logging, sys
logging.basicConfig(level=logging.INFO)
from medmap.data import load_dataset
collection = load_dataset({"_target_": "medmap.data.sources.load_image_folder", "name": "cells",
                           "root": sys.argv[1], "size": 16, "cache_dir": sys.argv[2]}, seed=0)
print(int(collection.images.astype(int).sum()))
"""


def test_jobs_that_start_together_share_one_entry(tmp_path):
    write_folder(tmp_path / "data", count=60)
    cache = tmp_path / "cache"
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(tmp_path / "data"), str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [job.communicate(timeout=300) for job in jobs]
    assert all(job.returncode == 0 for job in jobs), [err for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1
    assert len(entries(cache)) == 1  # one entry, no partial folders left behind
    assert sum("Decoded cells once" in err for _, err in results) == 1  # the others waited
    assert sum("from the cache" in err for _, err in results) == 2
