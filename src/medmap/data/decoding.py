"""Image decoding, apart from where the images come from (``sources``): image files in any
mode and shape to uint8 RGB squares, arrays made square and resized, npz archives opened with
one clear message when they are damaged."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medmap.errors import BadImageError, UserFacingError

log = logging.getLogger(__name__)

SQUARE_MODES = ("crop", "squash", "pad")


class NpzArchive:
    """``np.load`` of an npz whose failures (a truncated download, a file of another kind)
    become one message naming the file, also when an array is read lazily later."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        try:
            self.archive = np.load(self.path, allow_pickle=False)
        except Exception as error:
            raise self.unreadable(error) from error
        if not isinstance(self.archive, np.lib.npyio.NpzFile):
            raise UserFacingError(
                f"{self.path} is a single .npy array, not an npz archive: save the arrays "
                "with numpy.savez as <split>_images and <split>_labels."
            )
        return self

    @property
    def files(self) -> list[str]:
        return self.archive.files

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return self.archive[key]
        except Exception as error:
            raise self.unreadable(error) from error

    def __exit__(self, *exc) -> None:
        self.archive.close()

    def unreadable(self, error: Exception) -> UserFacingError:
        # numpy's own text can advise allow_pickle=True, which would run a foreign file's code
        zipped = zipfile.is_zipfile(self.path)
        return UserFacingError(
            f"{self.path} is not a readable npz file ("
            + (f"a damaged zip archive: {type(error).__name__}" if zipped else "not a zip archive")
            + "). It may be truncated (an interrupted download or copy: fetch or copy it again) "
            "or a file of another kind; an npz is written by numpy.savez with <split>_images "
            "and <split>_labels arrays."
        )


def square_images(images: np.ndarray, mode: str, size: int | None) -> np.ndarray:
    """uint8 (N, H, W, 3) arrays made square (``square_image``) and resized to ``size``;
    square images at the right size pass through untouched."""
    if mode not in SQUARE_MODES:
        raise UserFacingError(
            f"dataset.resize must be one of {', '.join(SQUARE_MODES)}, got {mode!r}."
        )
    height, width = images.shape[1:3]
    target = size or (min(height, width) if mode == "crop" else max(height, width))
    if height == width == target:
        return images
    log.info("Images of %dx%d made %dx%d (dataset.resize=%s)", height, width, target, target, mode)
    out = np.empty((len(images), target, target, 3), dtype=np.uint8)
    for i, array in enumerate(images):
        image = square_image(Image.fromarray(array), mode)
        out[i] = np.asarray(image.resize((target, target), Image.Resampling.BICUBIC))
    return out


def square_image(image: Image.Image, mode: str) -> Image.Image:
    """A non-square image made square: ``crop`` the centre, ``squash`` (resize both sides to
    the longer one, distorting) or ``pad`` (with the mean colour of its border)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    if mode == "squash":
        return image.resize((side, side), Image.Resampling.BICUBIC)
    if mode == "pad":
        array = np.asarray(image)
        border = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
        canvas = Image.new("RGB", (side, side), tuple(int(v) for v in border.mean(axis=0)))
        canvas.paste(image, ((side - width) // 2, (side - height) // 2))
        return canvas
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def read_image(
    path: Path, size: int, skip_bad_files: bool = False, resize: str = "crop"
) -> np.ndarray | None:
    """One image file as uint8 (size, size, 3): grayscale, RGBA and 16-bit inputs converted,
    non-square ones made square (``square_image``)."""
    try:
        with Image.open(path) as image:
            image.load()
            image = to_rgb(image)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        if skip_bad_files:
            log.warning("Skipping unreadable image %s: %s", path, error)
            return None
        raise BadImageError(
            f"The image file {path} could not be read ({error}). Remove or replace it, or set "
            "dataset.skip_bad_files=true to leave unreadable files out (they are counted)."
        ) from error
    image = square_image(image, resize)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        image = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    return image.convert("RGB")


def as_rgb(images: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, H, W, 1) grayscale to (N, H, W, 3); RGB passes through."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise UserFacingError(f"Expected uint8 images, got {images.dtype}.")
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


def resized(array: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.BICUBIC))
