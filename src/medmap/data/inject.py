"""Data-quality experiments (docs/method.md §7): known problems planted in a dataset, to see
whether the map exposes them.

- ``duplicates=N`` appends N randomly perturbed copies of one randomly chosen image: brightness
  and contrast each within ±``brightness``/``contrast`` (default 10%), Gaussian noise of σ =
  ``noise`` grey levels (default 3) and, when ``shift`` > 0, a move of up to ``shift`` pixels
  (edges repeated, as a re-cut tile would show; default 0). That is, near duplicates as a
  re-scan or a re-export makes them. They keep the source image's label.
- ``artefacts=N`` paints one artefact onto each of N randomly chosen images, in turn:
  *pen mark* (a thick blue, green or black marker stroke across the image, as pathologists
  draw on slides), *text stamp* (a white box with black text, like a label or burnt-in patient
  ID), *dust and blur* (a defocus blur with dark specks of dust on the optics) and *black
  border* (a black frame of 3-5 pixels, a scanner or cropping edge). Labels are unchanged.

- ``label_noise=f`` gives a seeded random share ``f`` of the untouched images another class
  (uniformly among the others), as a mislabelled collection has them: the label-error finder
  (quality.py) should rank them first.

Each image's code in ``injected`` is 0 (untouched), 1 (a planted duplicate), 2 (painted) or 3
(label flipped).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from medmap.data.collection import ImageCollection

UNTOUCHED, DUPLICATE, ARTEFACT, LABEL_FLIPPED = 0, 1, 2, 3
INJECTED_NAMES = ("", "duplicate", "artefact", "label flipped")  # by code, for map.csv
ARTEFACT_KINDS = ("pen mark", "text stamp", "dust and blur", "black border")


def perturbed_copy(
    image: np.ndarray,
    rng: np.random.Generator,
    shift: int = 0,
    brightness: float = 0.1,
    contrast: float = 0.1,
    noise: float = 3.0,
) -> np.ndarray:
    """One near duplicate of ``image`` (H, W, C uint8); see the module docstring."""
    moved, shift = image.astype(np.float32), int(shift)
    if shift:
        down, right = rng.integers(-shift, shift + 1, size=2)
        padded = np.pad(moved, ((shift, shift), (shift, shift), (0, 0)), mode="edge")
        height, width = image.shape[:2]
        moved = padded[shift - down : shift - down + height, shift - right : shift - right + width]
    gain = rng.uniform(1 - contrast, 1 + contrast)
    offset = rng.uniform(-brightness, brightness) * 255
    mean = moved.mean()
    changed = (moved - mean) * gain + mean + offset + rng.normal(0, noise, moved.shape)
    return np.clip(changed, 0, 255).round().astype(np.uint8)


def paint_artefact(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    size = image.shape[0]
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    if kind == "pen mark":
        colour = [(20, 40, 200), (20, 140, 40), (10, 10, 10)][rng.integers(3)]
        points = [tuple(p) for p in rng.uniform(0, size, (4, 2))]
        draw.line(points, fill=colour, width=max(2, size // 9), joint="curve")
    elif kind == "text stamp":
        box = (size * 0.05, size * 0.55, size * 0.95, size * 0.95)
        draw.rectangle(box, fill=(255, 255, 255))
        draw.text((box[0] + 1, box[1]), f"ID{rng.integers(10, 99)}", fill=(0, 0, 0))
    elif kind == "dust and blur":
        picture = picture.filter(ImageFilter.GaussianBlur(radius=max(1.0, size / 20)))
        draw = ImageDraw.Draw(picture)
        for x, y in rng.uniform(0, size, (6, 2)):
            radius = rng.uniform(0.5, size / 18)
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(30, 30, 30))
    elif kind == "black border":
        width = int(rng.integers(3, 6)) * size // 28 or 1
        draw.rectangle((0, 0, size - 1, size - 1), outline=(0, 0, 0), width=width)
    else:
        raise ValueError(f"unknown artefact {kind!r}; known: {ARTEFACT_KINDS}")
    return np.asarray(picture, dtype=np.uint8)


def inject(
    collection: ImageCollection,
    duplicates: int = 0,
    artefacts: int = 0,
    label_noise: float = 0.0,
    seed: int = 0,
    **perturbation: float,
) -> ImageCollection:
    """A copy of ``collection`` with the planted problems; ``collection.injected`` codes them.
    ``perturbation`` (shift, brightness, contrast, noise) sets how the duplicates differ."""
    if duplicates < 0 or artefacts < 0 or min(perturbation.values(), default=0) < 0:
        raise ValueError(
            "dataset.inject counts and perturbation sizes must be >= 0; got "
            f"duplicates={duplicates}, artefacts={artefacts}, perturbation={perturbation}"
        )
    if not 0 <= label_noise < 1:
        raise ValueError(f"dataset.inject.label_noise must be in [0, 1), got {label_noise}")
    if label_noise and (not collection.labeled or len(collection.class_names) < 2):
        raise ValueError(
            "dataset.inject.label_noise needs a labeled collection with 2 or more classes"
        )
    if artefacts > len(collection):
        raise ValueError(f"dataset.inject.artefacts={artefacts} > {len(collection)} images")
    rng = np.random.default_rng(seed)
    images = collection.images.copy()
    injected = np.zeros(len(images), dtype=np.int8)
    for number, index in enumerate(rng.choice(len(images), size=artefacts, replace=False)):
        kind = ARTEFACT_KINDS[number % len(ARTEFACT_KINDS)]
        images[index] = paint_artefact(images[index], kind, rng)
        injected[index] = ARTEFACT
    labels, splits = collection.labels, collection.splits
    if duplicates:
        source = int(rng.integers(len(images)))
        copies = np.stack(
            [perturbed_copy(images[source], rng, **perturbation) for _ in range(duplicates)]
        )
        images = np.concatenate([images, copies])
        labels = np.concatenate([labels, np.full(duplicates, labels[source])])
        splits = np.concatenate([splits, np.full(duplicates, "injected")])
        injected = np.concatenate([injected, np.full(duplicates, DUPLICATE, dtype=np.int8)])
        ids = np.concatenate(
            [
                collection.ids,
                [f"planted/duplicate-{k}-of-{collection.ids[source]}" for k in range(duplicates)],
            ]  # fmt: skip
        )
        metadata = {
            key: np.concatenate([column, np.full(duplicates, column[source])])
            for key, column in collection.metadata.items()
        }
    else:
        ids, metadata = collection.ids, collection.metadata
    if label_noise:
        labels, flipped = flip_labels(
            labels, injected, label_noise, len(collection.class_names), rng
        )
        injected[flipped] = LABEL_FLIPPED
    return collection.replace(
        images=images, labels=labels, splits=splits, injected=injected, ids=ids, metadata=metadata
    )


def flip_labels(
    labels: np.ndarray, injected: np.ndarray, fraction: float, classes: int, rng
) -> tuple[np.ndarray, np.ndarray]:
    """``fraction`` of the untouched images (rounded) moved to another class, chosen uniformly
    among the others; returns the new labels and the indices flipped."""
    candidates = np.flatnonzero(injected == UNTOUCHED)
    chosen = np.sort(rng.choice(candidates, size=round(fraction * len(candidates)), replace=False))
    flipped = labels.copy()
    flipped[chosen] = (labels[chosen] + rng.integers(1, classes, size=len(chosen))) % classes
    return flipped, chosen
