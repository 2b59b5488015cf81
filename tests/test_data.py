import numpy as np
import pytest
from PIL import Image

from conftest import require_data
from medmap.data import load_dataset, stratified_subset
from medmap.data.sources import load_image_folder, load_medmnist, load_npz, load_pcam
from medmap.errors import BadImageError, DatasetUnavailableError, UserFacingError

LEUKEMIA_CLASSES = [
    "BAS",
    "EBO",
    "EOS",
    "KSC",
    "LYA",
    "LYT",
    "MMZ",
    "MOB",
    "MON",
    "MYB",
    "MYO",
    "NGB",
    "NGS",
    "PMB",
    "PMO",
]
NCT_CLASSES = ["ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "TUM"]


@pytest.mark.data
def test_bloodmnist_like_loads_through_medmnist_with_splits_pooled():
    root = require_data("medmnist", "bloodmnist.npz").parent
    blood = load_medmnist("bloodmnist", root, download=False)
    assert blood.images.shape == (17092, 28, 28, 3) and blood.images.dtype == np.uint8
    assert len(blood.class_names) == 8 and blood.class_names[0] == "basophil"
    assert blood.class_names[7] == "platelet"
    assert {s: int((blood.splits == s).sum()) for s in ("train", "val", "test")} == {
        "train": 11959,
        "val": 1712,
        "test": 3421,
    }
    assert sorted(np.unique(blood.labels)) == list(range(8))


@pytest.mark.data
def test_breastmnist_grayscale_becomes_rgb():
    root = require_data("medmnist", "breastmnist.npz").parent
    breast = load_medmnist("breastmnist", root, download=False)
    assert breast.images.shape == (780, 28, 28, 3)
    assert np.array_equal(breast.images[..., 0], breast.images[..., 2])
    assert breast.class_names == ["malignant", "normal, benign"]


def test_missing_medmnist_file_offline_says_where_and_how(tmp_path):
    with pytest.raises(DatasetUnavailableError) as error:
        load_medmnist("dermamnist", tmp_path / "medmnist", download=True)
    message = str(error.value)
    assert str(tmp_path / "medmnist" / "dermamnist.npz") in message
    assert "zenodo.org" in message and "DATA_DIR" in message


@pytest.mark.data
def test_leukemia_tiffs_rgba_to_rgb_28px_with_alphabetical_classes():
    root = require_data("leukemia-sample")
    leukemia = load_image_folder(root, size=28)
    assert leukemia.class_names == LEUKEMIA_CLASSES
    assert leukemia.images.shape == (30, 28, 28, 3)
    assert np.array_equal(np.bincount(leukemia.labels), [2] * 15)
    with Image.open(next(root.joinpath("BAS").iterdir())) as original:
        assert original.mode == "RGBA" and original.size == (400, 400)


@pytest.mark.data
def test_nct_tiles_as_imagefolder_by_prefix_and_by_folder(tmp_path):
    root = require_data("nct-crc-sample")
    flat = load_image_folder(root, size=28, label_from="prefix")
    assert flat.class_names == NCT_CLASSES and flat.images.shape == (9, 28, 28, 3)
    for tile in root.iterdir():
        folder = tmp_path / tile.name.split("-")[0]
        folder.mkdir()
        (folder / tile.name).symlink_to(tile)
    tree = load_image_folder(tmp_path, size=32)
    assert tree.class_names == NCT_CLASSES and tree.images.shape == (9, 32, 32, 3)


def write_pcam(root, counts):
    import h5py

    rng = np.random.default_rng(0)
    for tag, count in counts.items():
        with h5py.File(root / f"camelyonpatch_level_2_split_{tag}_x.h5", "w") as f:
            f["x"] = rng.integers(0, 256, (count, 96, 96, 3), dtype=np.uint8)
        with h5py.File(root / f"camelyonpatch_level_2_split_{tag}_y.h5", "w") as f:
            f["y"] = (np.arange(count) % 2).astype(np.uint8).reshape(count, 1, 1, 1)


def test_pcam_reads_each_split_from_its_own_file(tmp_path):
    write_pcam(tmp_path, {"train": 6, "valid": 4, "test": 2})
    pcam = load_pcam(tmp_path, size=96)
    assert pcam.images.shape == (12, 96, 96, 3)
    assert [int((pcam.splits == s).sum()) for s in ("train", "val", "test")] == [6, 4, 2]
    import h5py

    with h5py.File(tmp_path / "camelyonpatch_level_2_split_test_x.h5") as f:
        assert np.array_equal(pcam.images[pcam.splits == "test"], f["x"][:])
    assert load_pcam(tmp_path, size=28).images.shape == (12, 28, 28, 3)


def test_pcam_missing_files_name_the_file(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="camelyonpatch_level_2_split_train_x.h5"):
        load_pcam(tmp_path)


def test_npz_with_string_labels_and_missing_keys(tmp_path):
    path = tmp_path / "tiny.npz"
    images = np.zeros((5, 8, 8), dtype=np.uint8)
    np.savez(
        path, train_images=images, train_labels=np.array(["b", "a", "b", "c", "a"]).reshape(5, 1)
    )
    tiny = load_npz(path)
    assert tiny.class_names == ["a", "b", "c"] and list(tiny.labels) == [1, 0, 1, 2, 0]
    assert tiny.images.shape == (5, 8, 8, 3)
    np.savez(tmp_path / "bad.npz", images=images)
    with pytest.raises(UserFacingError, match="train_images"):
        load_npz(tmp_path / "bad.npz")


def test_corrupt_image_is_named_or_skipped(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (10, 10), (200, 10, 10)).save(tmp_path / name / "ok.png")
    Image.new("I;16", (10, 10), 4000).save(tmp_path / "a" / "deep.png")
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(BadImageError, match="broken.png"):
        load_image_folder(tmp_path)
    loaded = load_image_folder(tmp_path, skip_bad_files=True)
    assert len(loaded) == 3 and loaded.skipped_files == 1


def test_empty_or_missing_folders_are_clear_errors(tmp_path):
    with pytest.raises(UserFacingError, match="No image files"):
        load_image_folder(tmp_path)
    with pytest.raises(DatasetUnavailableError, match="does not exist"):
        load_image_folder(tmp_path / "nope")


@pytest.mark.data
def test_config_subset_is_stratified_and_seeded(make_config):
    cfg = make_config("dataset=bloodmnist", "dataset.subset=800")
    first = load_dataset(cfg.dataset, seed=3)
    again = load_dataset(cfg.dataset, seed=3)
    other = load_dataset(cfg.dataset, seed=4)
    assert len(first) == 800 and np.array_equal(first.images, again.images)
    assert not np.array_equal(first.images, other.images)
    full = load_dataset(make_config("dataset=bloodmnist").dataset, seed=0)
    full_share = np.bincount(full.labels) / len(full)
    assert np.allclose(np.bincount(first.labels) / 800, full_share, atol=0.01)
    assert stratified_subset(first, None, 0) is first
