"""Feeding uint8 batches to the Trainer: index batches cut straight out of the image tensor."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

log = logging.getLogger(__name__)


class ImageTensor(Dataset):
    """uint8 images (N, H, W, 3) indexed by a whole list of indices at once (one gather per
    batch instead of N item calls and a collate)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, indices: list[int]) -> torch.Tensor:
        return self.images[torch.as_tensor(indices, device=self.images.device)]


def batches_per_epoch(size: int, batch_size: int, drop_last: bool) -> int:
    """Full batches of ``batch_size``, plus the last partial one unless ``drop_last`` (the
    reference's DataLoader keeps it) or it holds a single image (no negatives)."""
    full, rest = divmod(size, batch_size)
    return full + int(not drop_last and rest >= 2)


class SeededBatchSampler(Sampler[list[int]]):
    """Shuffled batches whose order depends only on (seed, epoch), so a resumed run sees the
    batches the uninterrupted run would have seen. Lightning calls ``set_epoch``.

    Under DDP each of the ``num_replicas`` processes takes its ``rank``'s slice of every
    global batch of ``batch_size`` images: the processes together see exactly the batches one
    process would, and the loss gathers the slices back into the global batch's negatives.
    A last partial batch that does not split evenly is filled up with the epoch's first
    images, as torch's DistributedSampler pads."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size % num_replicas:
            raise ValueError(
                f"method.batch_size={batch_size} must be divisible by the number of training "
                f"processes ({num_replicas})"
            )
        self.size, self.batch_size, self.seed, self.epoch = size, batch_size, seed, 0
        self.num_replicas, self.rank, self.drop_last = num_replicas, rank, drop_last

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return batches_per_epoch(self.size, self.batch_size, self.drop_last)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        order = torch.randperm(self.size, generator=generator)
        order = torch.cat([order, order[: -self.size % self.num_replicas]])  # DDP padding
        for batch in range(len(self)):
            first = batch * self.batch_size
            share = -(-min(self.batch_size, self.size - first) // self.num_replicas)
            start = first + self.rank * share
            yield order[start : start + share].tolist()


def resident_images(
    images: np.ndarray, device: torch.device, on_device: bool, spare_bytes: float | None = None
) -> torch.Tensor:
    """The uint8 images as a tensor, moved to a GPU once when ``on_device`` and they fit in
    ``spare_bytes`` (the free GPU memory a training step leaves; default: a quarter of the
    free memory): batches are then cut on the GPU and no step waits for a host-to-device
    copy. On the CPU (or when too big) they stay in host memory (memory-mapped when cached)."""
    tensor = torch.from_numpy(images)
    if on_device and device.type == "cuda":
        if spare_bytes is None:
            spare_bytes = torch.cuda.mem_get_info(device)[0] / 4
        if tensor.nbytes < 0.9 * spare_bytes:
            return tensor.to(device)
        log.info(
            "The images (%.1f GiB) and a training step do not fit on %s together: they stay "
            "in host memory and each batch is copied over",
            tensor.nbytes / 2**30,
            device,
        )
    return tensor


def training_loader(
    images: torch.Tensor,
    batch_size: int,
    seed: int,
    num_replicas: int = 1,
    rank: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """Batches of uint8 images for the Trainer (its own distributed sampler must be off:
    ``use_distributed_sampler=False``; the sampler splits global batches itself)."""
    return DataLoader(
        ImageTensor(images),
        sampler=SeededBatchSampler(len(images), batch_size, seed, num_replicas, rank, drop_last),
        batch_size=None,
        num_workers=0,
    )
