"""Augmentation settings (typed specs) and their batched application on the training device."""

from medmap.augment.batched import BatchAugmenter, to_float_images
from medmap.augment.spec import AugmentationSpec

__all__ = ["AugmentationSpec", "BatchAugmenter", "to_float_images"]
