"""Decoded-image cache: a source (folder, PCam h5, npz, MedMNIST) is decoded and resized once
into a uint8 ``images.npy`` that every later run memory-maps, so a sweep does not decode 18,365
TIFFs per run and a subset reads only its own rows.

An entry is a folder ``<cache_dir>/<name>-<key>/`` holding ``images.npy``, ``arrays.npz``
(labels, splits, ids) and ``collection.json``. The key hashes the loader, its arguments, the
source files with their sizes and modification times, and :data:`CACHE_FORMAT`: a changed
source is read again. An entry is built under a temporary name and renamed into place (a
rename is atomic), while a lock file keeps several sweep jobs that start together from
decoding the same source twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medmap.data.collection import ImageCollection

log = logging.getLogger(__name__)

# Bump when decoding or resizing changes, so entries written by older code are not reused.
CACHE_FORMAT = 1


def load_cached(
    loader: Callable[..., ImageCollection],
    arguments: dict[str, Any],
    sources: list[Path] | None,
    cache_dir: str | os.PathLike | None,
    name: str | None = None,
) -> ImageCollection:
    """``loader(**arguments)``, through the cache in ``cache_dir`` when one is set and the
    source files are known (``sources``; None when they are missing, so that the loader
    itself says what is wrong). ``name`` (the dataset's) prefixes the entry's folder."""
    if cache_dir is None or sources is None:
        return loader(**arguments)
    cache_dir = Path(cache_dir).expanduser()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock = open(cache_dir / ".lock", "a")  # noqa: SIM115 (held until the entry exists)
    except OSError as error:
        log.warning(
            "The image cache folder %s cannot be written (%s): decoding without a cache. Set "
            "MEDMAP_CACHE_DIR (or paths.cache_dir) to a writable folder.",
            cache_dir,
            error.strerror or error,
        )
        return loader(**arguments)
    name = name or loader.__name__
    entry = cache_dir / f"{name}-{cache_key(loader, arguments, sources)}"
    with lock:
        if not entry.is_dir():
            fcntl.flock(lock, fcntl.LOCK_EX)  # another job may be writing this entry
        if not entry.is_dir():
            _build_entry(loader, arguments, entry, name)
        else:
            log.info("Reading the decoded images of %s from the cache %s", name, entry)
    return read_entry(entry)


def cache_key(loader: Callable, arguments: dict[str, Any], sources: list[Path]) -> str:
    """A short hash of everything that decides the decoded pixels."""
    fingerprint = {
        "format": CACHE_FORMAT,
        "loader": f"{loader.__module__}.{loader.__qualname__}",
        "arguments": {key: arguments[key] for key in sorted(arguments)},
        "sources": [_file_stamp(path) for path in sources],
    }
    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_stamp(path: Path) -> list:
    status = path.stat()
    return [str(path), status.st_size, status.st_mtime_ns]


def _build_entry(loader: Callable, arguments: dict[str, Any], entry: Path, name: str) -> None:
    """Decode the source into a temporary folder beside ``entry`` and rename it into place.
    Loaders that accept ``allocate`` write their pixels straight into the memory-mapped file,
    so the peak memory is one copy of the images, not two."""
    partial = entry.with_name(f"{entry.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    started = time.perf_counter()
    try:
        written = partial / "images.npy"
        allocated: list[np.ndarray] = []

        def allocate(shape: tuple[int, ...]) -> np.ndarray:
            allocated.append(
                np.lib.format.open_memmap(written, mode="w+", dtype=np.uint8, shape=shape)
            )
            return allocated[-1]

        extra = {"allocate": allocate} if "allocate" in inspect.signature(loader).parameters else {}
        collection = loader(**arguments, **extra)
        images = collection.images
        mapped = allocated[-1] if allocated else None
        in_place = (
            mapped is not None
            and images.shape == mapped.shape
            and np.may_share_memory(images, mapped)
        )
        if in_place:
            mapped.flush()
        elif mapped is not None:  # the loader kept only part of the allocated file: copy it
            images = np.array(images)
        del mapped
        allocated.clear()  # unmap (before the file is written anew, when it is)
        if not in_place:
            np.save(written, images)
        del images
        np.savez(
            partial / "arrays.npz",
            labels=collection.labels,
            splits=collection.splits,
            ids=collection.ids,
        )
        (partial / "collection.json").write_text(
            json.dumps(
                {
                    "name": collection.name,
                    "class_names": list(collection.class_names),
                    "labeled": collection.labeled,
                    "skipped_files": collection.skipped_files,
                    "loader": f"{loader.__module__}.{loader.__qualname__}",
                    "arguments": arguments,
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
        del collection
        os.replace(partial, entry)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    log.info(
        "Decoded %s once into the cache %s (%.0f s); later runs memory-map it",
        name,
        entry,
        time.perf_counter() - started,
    )


def read_entry(entry: Path) -> ImageCollection:
    """A cached collection whose images are memory-mapped (copy-on-write: nothing a run does
    changes the file), so only the rows a run touches are read from disk."""
    description = json.loads((entry / "collection.json").read_text())
    with np.load(entry / "arrays.npz") as arrays:
        labels, splits, ids = arrays["labels"], arrays["splits"], arrays["ids"]
    return ImageCollection(
        description["name"],
        np.load(entry / "images.npy", mmap_mode="c"),
        labels,
        description["class_names"],
        splits,
        skipped_files=description["skipped_files"],
        ids=ids,
        labeled=description["labeled"],
    )
