"""Feeding uint8 batches to the Trainer: index batches cut straight out of the image tensor."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class ImageTensor(Dataset):
    """uint8 images (N, H, W, 3) indexed by a whole list of indices at once (one gather per
    batch instead of N item calls and a collate)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, indices: list[int]) -> torch.Tensor:
        return self.images[torch.as_tensor(indices)]


class SeededBatchSampler(Sampler[list[int]]):
    """Shuffled full batches whose order depends only on (seed, epoch), so a resumed run sees
    the batches the uninterrupted run would have seen. Lightning calls ``set_epoch``."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        self.size, self.batch_size, self.seed, self.epoch = size, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size // self.batch_size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        order = torch.randperm(self.size, generator=generator)
        for batch in range(len(self)):
            yield order[batch * self.batch_size : (batch + 1) * self.batch_size].tolist()


def training_loader(images: torch.Tensor, batch_size: int, seed: int) -> DataLoader:
    return DataLoader(
        ImageTensor(images),
        sampler=SeededBatchSampler(len(images), batch_size, seed),
        batch_size=None,
        num_workers=0,
    )
