"""Loaders for every supported image source. Each returns an ImageCollection with splits pooled.

The medmnist datasets go through the medmnist package itself (its file names, split checks and
download code); folders of image files and PCam's h5 files are read here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medmap.data.collection import ImageCollection
from medmap.errors import BadImageError, DatasetUnavailableError, UserFacingError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")


def load_medmnist(flag: str, root: str | os.PathLike, size: int = 28, download: bool = True):
    """A MedMNIST dataset (train, val and test pooled) read by the medmnist package.

    The file ``<root>/<flag>[_<size>].npz`` is used when present (with ``download=False``, so a
    file with a different checksum is accepted); otherwise medmnist downloads it into ``root``.
    """
    import medmnist

    if flag not in medmnist.INFO:
        known = ", ".join(sorted(medmnist.INFO))
        raise UserFacingError(f"Unknown MedMNIST flag {flag!r}. Known flags: {known}.")
    info = medmnist.INFO[flag]
    dataset_class = getattr(medmnist, info["python_class"])
    root = Path(root).expanduser().resolve()
    file_name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    file_path = root / file_name
    if not file_path.exists():
        url = info["url"] if size == 28 else info.get(f"url_{size}", info["url"])
        if not download:
            raise DatasetUnavailableError(_missing_medmnist_message(flag, file_path, url, None))
        root.mkdir(parents=True, exist_ok=True)
        log.info("%s not found: downloading it from %s", file_path, url)
        try:
            dataset_class(split="train", root=str(root), size=size, download=True)
        except Exception as error:  # medmnist raises bare RuntimeErrors offline
            raise DatasetUnavailableError(
                _missing_medmnist_message(flag, file_path, url, error)
            ) from error
    parts = [
        dataset_class(split=split, root=str(root), size=size, download=False) for split in SPLITS
    ]
    images = np.concatenate([_as_rgb(np.asarray(part.imgs)) for part in parts])
    labels = np.concatenate([np.asarray(part.labels).reshape(-1) for part in parts])
    splits = np.concatenate(
        [np.full(len(part.labels), split) for part, split in zip(parts, SPLITS)]
    )
    class_names = [info["label"][str(i)] for i in range(len(info["label"]))]
    return ImageCollection(flag, images, labels, class_names, splits)


def _missing_medmnist_message(flag: str, path: Path, url: str, error: Exception | None) -> str:
    reason = (
        f"the download failed ({type(error).__name__}; is the machine offline?)"
        if error
        else "downloading is switched off (dataset.download=false)"
    )
    return (
        f"The {flag} dataset file was not found at {path} and {reason}. "
        f"Either download {url} on a machine with internet access and copy it to {path}, "
        f"or point DATA_DIR at the folder that holds medmnist/{path.name} "
        f"(e.g. DATA_DIR=../shared/data), or set dataset.root=<folder with {path.name}>."
    )


def load_npz(path: str | os.PathLike, class_names: Sequence[str] | None = None, name: str = "npz"):
    """A MedMNIST-style npz (``<split>_images`` and ``<split>_labels`` for any present split)
    read with numpy, so hand-made files of any size work."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetUnavailableError(
            f"No npz file at {path.resolve()}. Set dataset.path=<file.npz> to a MedMNIST-style "
            "file with <split>_images and <split>_labels arrays."
        )
    with np.load(path) as archive:
        present = [s for s in SPLITS if f"{s}_images" in archive.files]
        if not present:
            raise UserFacingError(
                f"{path} holds the arrays {archive.files} but none named train_images, "
                "val_images or test_images. Save the images as <split>_images (N, H, W[, C]) "
                "uint8 and the labels as <split>_labels."
            )
        missing = [f"{s}_labels" for s in present if f"{s}_labels" not in archive.files]
        if missing:
            raise UserFacingError(f"{path} lacks the label arrays {missing}.")
        images = np.concatenate([_as_rgb(archive[f"{s}_images"]) for s in present])
        raw_labels = np.concatenate([archive[f"{s}_labels"].reshape(-1) for s in present])
        splits = np.concatenate([np.full(len(archive[f"{s}_labels"]), s) for s in present])
    labels, found_names = _encode_labels(raw_labels)
    names = list(class_names) if class_names else found_names
    return ImageCollection(name, images, labels, names, splits)


def _encode_labels(raw: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Integer labels and names for any label array: ints keep their ids, strings are sorted."""
    if np.issubdtype(raw.dtype, np.integer):
        return raw.astype(np.int64), [str(i) for i in range(int(raw.max()) + 1)]
    names = sorted({str(v) for v in raw})
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[str(v)] for v in raw], dtype=np.int64), names


def load_image_folder(
    root: str | os.PathLike,
    size: int = 28,
    label_from: str = "folder",
    skip_bad_files: bool = False,
    name: str = "imagefolder",
):
    """Any tree of image files: one folder per class (``label_from=folder``, the TCIA layout of
    the Leukemia data) or a flat folder whose file names start with ``<CLASS>-``
    (``label_from=prefix``, the NCT-CRC-HE layout). Images are converted to RGB and resized to
    ``size`` x ``size``; class ids follow the alphabetical order of the class names."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetUnavailableError(
            f"The image folder {root.resolve()} does not exist. Set dataset.root=<folder> to a "
            "folder with one sub-folder of images per class."
        )
    files, class_of_file = _list_image_files(root, label_from)
    if not files:
        raise UserFacingError(
            f"No image files ({', '.join(IMAGE_SUFFIXES)}) were found in {root.resolve()} "
            f"(label_from={label_from}). Put the images in one sub-folder per class."
        )
    class_names = sorted(set(class_of_file))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        decoded = list(pool.map(lambda f: _read_image(f, size, skip_bad_files), files))
    keep = [i for i, image in enumerate(decoded) if image is not None]
    if len(keep) < len(files):
        log.warning("Skipped %d unreadable image files in %s", len(files) - len(keep), root)
    if not keep:
        raise UserFacingError(f"None of the {len(files)} image files in {root} could be read.")
    index = {c: i for i, c in enumerate(class_names)}
    labels = np.array([index[class_of_file[i]] for i in keep], dtype=np.int64)
    images = np.stack([decoded[i] for i in keep])
    return ImageCollection(name, images, labels, class_names, skipped_files=len(files) - len(keep))


def _list_image_files(root: Path, label_from: str) -> tuple[list[Path], list[str]]:
    if label_from == "folder":
        files = sorted(
            p
            for p in root.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and p.parent != root
        )
        return files, [p.relative_to(root).parts[0] for p in files]
    if label_from == "prefix":
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return files, [p.name.split("-")[0].split("_")[0] for p in files]
    raise UserFacingError(f"dataset.label_from must be 'folder' or 'prefix', got {label_from!r}.")


def _read_image(path: Path, size: int, skip_bad_files: bool) -> np.ndarray | None:
    """One image file as uint8 (size, size, 3): grayscale, RGBA and 16-bit inputs converted."""
    try:
        with Image.open(path) as image:
            image.load()
            image = _to_rgb(image)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        if skip_bad_files:
            log.warning("Skipping unreadable image %s: %s", path, error)
            return None
        raise BadImageError(
            f"The image file {path} could not be read ({error}). Remove or replace it, or set "
            "dataset.skip_bad_files=true to leave unreadable files out (they are counted)."
        ) from error
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        image = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    return image.convert("RGB")


def _as_rgb(images: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, H, W, 1) grayscale to (N, H, W, 3); RGB passes through."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise UserFacingError(f"Expected uint8 images, got {images.dtype}.")
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


PCAM_SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}


def load_pcam(root: str | os.PathLike, size: int = 96, name: str = "pcam"):
    """PatchCamelyon from its h5 files ``camelyonpatch_level_2_split_<split>_{x,y}.h5``, each
    split read from its own file (the authors' loader read the train file three times)."""
    import h5py

    root = Path(root).expanduser()
    images, labels, splits = [], [], []
    for split, tag in PCAM_SPLIT_FILES.items():
        x_path = root / f"camelyonpatch_level_2_split_{tag}_x.h5"
        y_path = root / f"camelyonpatch_level_2_split_{tag}_y.h5"
        if not (x_path.is_file() and y_path.is_file()):
            raise DatasetUnavailableError(
                f"The PCam {split} files were not found: looked for {x_path.resolve()} and "
                f"{y_path.resolve()}. Download them from https://github.com/basveeling/pcam "
                "(Zenodo record 2546921), unzip them into one folder and set dataset.root to it."
            )
        with h5py.File(x_path, "r") as fx, h5py.File(y_path, "r") as fy:
            x = fx["x"]
            part = x[:] if size == x.shape[1] else _resize_batches(x, size)
            images.append(part)
            labels.append(np.asarray(fy["y"]).reshape(-1))
            splits.append(np.full(len(part), split))
    return ImageCollection(
        name,
        np.concatenate(images),
        np.concatenate(labels),
        ["normal", "tumour"],
        np.concatenate(splits),
    )


def _resize_batches(dataset, size: int, chunk: int = 4096) -> np.ndarray:
    out = np.empty((dataset.shape[0], size, size, 3), dtype=np.uint8)
    for start in range(0, dataset.shape[0], chunk):
        for i, array in enumerate(dataset[start : start + chunk]):
            image = Image.fromarray(array).resize((size, size), Image.Resampling.BICUBIC)
            out[start + i] = np.asarray(image)
    return out
