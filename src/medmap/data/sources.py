"""Loaders for every supported image source and its layout. Each returns an ImageCollection
with splits pooled.

The medmnist datasets go through the medmnist package itself (its file names, split checks and
download code); folders of image files (class folders, prefixes, wrappers, metadata), npz
files and PCam's h5 files are laid out here; decoding the images is ``decoding``'s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from medmap.data.collection import ImageCollection
from medmap.data.decoding import (
    SQUARE_MODES,
    NpzArchive,
    as_rgb,
    read_image,
    resized,
    square_images,
)
from medmap.errors import DatasetUnavailableError, UserFacingError

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
    file_path = medmnist_file(flag, root, size)
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
    try:  # a truncated or foreign file: one message naming it
        parts = [
            dataset_class(split=split, root=str(root), size=size, download=False)
            for split in SPLITS
        ]
    except Exception as error:
        raise NpzArchive(file_path).unreadable(error) from error
    images = np.concatenate([as_rgb(np.asarray(part.imgs)) for part in parts])
    labels = np.concatenate([np.asarray(part.labels).reshape(-1) for part in parts])
    splits = np.concatenate(
        [np.full(len(part.labels), split) for part, split in zip(parts, SPLITS)]
    )
    class_names = [info["label"][str(i)] for i in range(len(info["label"]))]
    return ImageCollection(flag, images, labels, class_names, splits)


def medmnist_file(flag: str, root: str | os.PathLike, size: int = 28) -> Path:
    """Where medmnist keeps (and downloads) the file of ``flag`` at ``size`` pixels."""
    return Path(root).expanduser().resolve() / (
        f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    )


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


def load_npz(
    path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    name: str = "npz",
    size: int | None = None,
    resize: str = "crop",
):
    """A MedMNIST-style npz (``<split>_images`` and, optionally, ``<split>_labels`` for any
    present split) read with numpy, so hand-made files of any size work. Without label arrays
    the collection is unlabeled. Non-square images are made square (``resize``), and all are
    resized to ``size`` when it is set."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetUnavailableError(
            f"No npz file at {path.resolve()}. Set dataset.path=<file.npz> to a MedMNIST-style "
            "file with <split>_images (and optionally <split>_labels) arrays."
        )
    with NpzArchive(path) as archive:
        present = [s for s in SPLITS if f"{s}_images" in archive.files]
        if not present:
            raise UserFacingError(
                f"{path} holds the arrays {archive.files} but none named train_images, "
                "val_images or test_images. Save the images as <split>_images (N, H, W[, C]) "
                "uint8 and, if there are labels, the labels as <split>_labels."
            )
        labeled = [s for s in present if f"{s}_labels" in archive.files]
        if labeled and len(labeled) < len(present):
            missing = [f"{s}_labels" for s in present if s not in labeled]
            raise UserFacingError(
                f"{path} has labels for some splits but lacks {missing}: give every split "
                "labels, or none for an unlabeled collection."
            )
        parts = [square_images(as_rgb(archive[f"{s}_images"]), resize, size) for s in present]
        if len({part.shape[1:] for part in parts}) > 1:
            raise UserFacingError(
                f"{path}: the splits hold images of different sizes "
                f"({[part.shape[1:3] for part in parts]}); set dataset.size=<pixels>."
            )
        splits = np.concatenate([np.full(len(part), s) for part, s in zip(parts, present)])
        raw_labels = (
            np.concatenate([archive[f"{s}_labels"].reshape(-1) for s in present])
            if labeled
            else None
        )
    images = np.concatenate(parts)
    if raw_labels is None:
        log.info("%s has no <split>_labels arrays: %d images read unlabeled", path, len(images))
        return ImageCollection(name, images, np.zeros(len(images)), [UNLABELED], splits,
                               labeled=False)  # fmt: skip
    if len(raw_labels) != len(images):
        raise UserFacingError(
            f"{path}: {len(images)} images but {len(raw_labels)} labels; each split's "
            "<split>_labels must have one label per image."
        )
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
    resize: str = "crop",
    allocate: Callable[[tuple[int, ...]], np.ndarray] | None = None,
):
    """Any tree of image files (symlinked folders and files followed):

    - ``label_from=folder``: one sub-folder per class (the TCIA layout of the Leukemia data).
      A root that holds only one folder above the class folders is descended into; a root
      whose images all sit directly in it is read as an unlabeled collection; a root with
      images both loose and in sub-folders is refused (which of the two is meant is unclear).
    - ``label_from=prefix``: a flat folder whose file names start with ``<CLASS>-`` (the
      NCT-CRC-HE layout).
    - ``label_from=none``: every image of the tree, unlabeled.

    Images are converted to RGB, made square (``resize``: crop|squash|pad) and resized to
    ``size`` x ``size``; class ids follow the alphabetical order of the class names. Each
    image's id is its path relative to ``root``. The pixels are decoded straight into
    ``allocate(shape)`` (the image cache passes a memory-mapped file)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetUnavailableError(
            f"The image folder {root.resolve()} does not exist. Set dataset.root=<folder> to a "
            "folder of images (one sub-folder per class, or all in one folder if unlabeled)."
        )
    if resize not in SQUARE_MODES:
        raise UserFacingError(
            f"dataset.resize must be one of {', '.join(SQUARE_MODES)}, got {resize!r}."
        )
    files = _find_image_files(root)
    if not files:
        raise UserFacingError(
            f"No image files ({', '.join(IMAGE_SUFFIXES)}) were found in {root.resolve()} or "
            "its sub-folders. Point dataset.root at the folder that holds the images."
        )
    class_of_file = _classes_of(root, files, label_from)
    images = (allocate or in_memory)((len(files), size, size, 3))

    def decode(index: int) -> bool:
        image = read_image(root / files[index], size, skip_bad_files, resize)
        if image is not None:
            images[index] = image
        return image is not None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        readable = list(pool.map(decode, range(len(files))))
    keep = [i for i, ok in enumerate(readable) if ok]
    if len(keep) < len(files):
        log.warning("Skipped %d unreadable image files in %s", len(files) - len(keep), root)
        images = images[keep]
    if not keep:
        raise UserFacingError(f"None of the {len(files)} image files in {root} could be read.")
    labeled = class_of_file is not None
    class_names = sorted(set(class_of_file)) if labeled else [UNLABELED]
    index = {c: i for i, c in enumerate(class_names)}
    labels = [index[class_of_file[i]] for i in keep] if labeled else [0] * len(keep)
    return ImageCollection(
        name,
        images,
        np.array(labels, dtype=np.int64),
        class_names,
        skipped_files=len(files) - len(keep),
        ids=np.array([files[i].as_posix() for i in keep]),
        labeled=labeled,
    )


def in_memory(shape: tuple[int, ...]) -> np.ndarray:
    """Room for uint8 images in memory (the image cache passes a memory-mapped file instead)."""
    return np.empty(shape, dtype=np.uint8)


UNLABELED = "unlabeled"  # the one placeholder class of an unlabeled collection
LABEL_SOURCES = ("folder", "prefix", "none")


def _find_image_files(root: Path) -> list[Path]:
    """Image files under ``root`` as paths relative to it, sorted; symlinked folders and files
    are followed (each real folder once, so a link cycle ends)."""
    found, seen = [], set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders.clear()
            continue
        seen.add(real)
        subfolders.sort()
        here = Path(folder).relative_to(root)
        found += [
            here / n
            for n in names
            if Path(n).suffix.lower() in IMAGE_SUFFIXES and (Path(folder) / n).is_file()
        ]
    return sorted(found)


def _classes_of(root: Path, files: list[Path], label_from: str) -> list[str] | None:
    """Each file's class name, or None for an unlabeled collection (see load_image_folder)."""
    if label_from == "none":
        log.info("%s: %d images read unlabeled (dataset.label_from=none)", root, len(files))
        return None
    if label_from == "prefix":
        return [f.name.split("-")[0].split("_")[0] for f in files]
    if label_from != "folder":
        raise UserFacingError(
            f"dataset.label_from must be one of {', '.join(LABEL_SOURCES)}, got {label_from!r}."
        )
    depth = 0  # wrapper folders above the class folders, e.g. <root>/AML-Cytomorphology/<CLASS>
    while (
        len({f.parts[depth] for f in files}) == 1
        and min(len(f.parts) for f in files) > depth + 1
        and max(len(f.parts) for f in files) > depth + 2
    ):
        depth += 1
    if depth:
        log.info(
            "%s holds only the folder %s: its sub-folders are the classes",
            root,
            Path(*files[0].parts[:depth]),
        )
    loose = [f for f in files if len(f.parts) == depth + 1]
    if len(loose) == len(files):
        log.info(
            "%s has no class sub-folders: %d images read as an unlabeled collection",
            root,
            len(files),
        )
        return None
    if loose:
        folder = root.joinpath(*files[0].parts[:depth])
        raise UserFacingError(
            f"{folder} holds {len(loose)} images directly (e.g. {loose[0].name}) and "
            f"{len(files) - len(loose)} in sub-folders, so it is unclear which are the classes. "
            "Move the loose images into a class folder (or out of the tree), point "
            "dataset.root at one of the sub-folders, or set dataset.label_from=none to map "
            "the whole tree unlabeled."
        )
    classes = [f.parts[depth] for f in files]
    if len(set(classes)) == 1:
        log.warning(
            "%s has one class folder (%s): the map will have a single class and no class "
            "scores. Point dataset.root at the folder of the class folders, or set "
            "dataset.label_from=none for an unlabeled collection.",
            root,
            classes[0],
        )
    return classes


PCAM_SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}


def pcam_files(root: str | os.PathLike) -> dict[str, tuple[Path, Path]]:
    """Each split's (images, labels) h5 files under ``root``."""
    root = Path(root).expanduser()
    return {
        split: tuple(root / f"camelyonpatch_level_2_split_{tag}_{kind}.h5" for kind in "xy")
        for split, tag in PCAM_SPLIT_FILES.items()
    }


def load_pcam(
    root: str | os.PathLike,
    size: int = 96,
    name: str = "pcam",
    allocate: Callable[[tuple[int, ...]], np.ndarray] | None = None,
    chunk: int = 4096,
):
    """PatchCamelyon from its h5 files ``camelyonpatch_level_2_split_<split>_{x,y}.h5``, each
    split read from its own file (the authors' loader read the train file three times), in
    chunks of ``chunk`` images straight into ``allocate(shape)``: one copy of the 9 GB of
    pixels at the peak, none when the image cache passes a memory-mapped file."""
    import h5py

    files = pcam_files(root)
    for split, (x_path, y_path) in files.items():
        if not (x_path.is_file() and y_path.is_file()):
            raise DatasetUnavailableError(
                f"The PCam {split} files were not found: looked for {x_path.resolve()} and "
                f"{y_path.resolve()}. Download them from https://github.com/basveeling/pcam "
                "(Zenodo record 2546921), unzip them into one folder and set dataset.root to it."
            )
    labels, splits, counts = [], [], []
    for split, (x_path, y_path) in files.items():
        with h5py.File(x_path, "r") as fx, h5py.File(y_path, "r") as fy:
            counts.append(fx["x"].shape[0])
            labels.append(np.asarray(fy["y"]).reshape(-1))
            splits.append(np.full(counts[-1], split))
    images = (allocate or in_memory)((sum(counts), size, size, 3))
    offset = 0
    for (x_path, _), count in zip(files.values(), counts):
        with h5py.File(x_path, "r") as fx:
            for start in range(0, count, chunk):
                part = fx["x"][start : start + chunk]
                if part.shape[1] != size:
                    part = np.stack([resized(array, size) for array in part])
                images[offset + start : offset + start + len(part)] = part
        offset += count
    return ImageCollection(
        name, images, np.concatenate(labels), ["normal", "tumour"], np.concatenate(splits)
    )


def source_files(loader: Callable, arguments: dict) -> list[Path] | None:
    """The files ``loader(**arguments)`` reads (the image cache's key), or None when they are
    not all there: the loader then says what is missing, or downloads it."""
    if loader is load_medmnist:
        files = [medmnist_file(arguments["flag"], arguments["root"], arguments.get("size", 28))]
    elif loader is load_npz:
        files = [Path(arguments["path"]).expanduser()]
    elif loader is load_pcam:
        files = [path for pair in pcam_files(arguments["root"]).values() for path in pair]
    elif loader is load_image_folder:
        root = Path(arguments["root"]).expanduser()
        files = [root / name for name in _find_image_files(root)] if root.is_dir() else []
    else:
        return None
    return [path.resolve() for path in files] if files and all(p.is_file() for p in files) else None
