"""Augmentation settings as data: one flat, typed spec per option of ``conf/aug``
(docs/method.md §2)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class AugmentationSpec:
    """Every knob of the two-view augmentation, with the SimCLR ``default`` as defaults.

    The yaml files in ``conf/aug`` set exactly these fields, so a setting reads the same in
    config, code and tables.
    """

    name: str = "default"
    crop: bool = True
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip_p: float = 0.5
    vflip_p: float = 0.0
    rot90_p: float = 0.0
    rotation_degrees: float = 0.0  # uniform angle in [-d, d], corners filled with border colour
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2

    def __post_init__(self) -> None:
        for name in ("hflip_p", "vflip_p", "rot90_p", "jitter_p", "grayscale_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"aug.{name} is a probability in [0, 1], got {value}")
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"aug.crop_scale must satisfy 0 < low <= high <= 1, got {low, high}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"aug.hue must be in [0, 0.5], got {self.hue}")
        for name in ("brightness", "contrast", "saturation", "rotation_degrees"):
            if getattr(self, name) < 0:
                raise ValueError(f"aug.{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_config(cls, config: Any) -> AugmentationSpec:
        """Build from a mapping (e.g. the ``aug`` config node); unknown keys are an error."""
        values = dict(config)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown augmentation options {unknown}; known: {sorted(known)}")
        for key in ("crop_scale", "crop_ratio"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)
