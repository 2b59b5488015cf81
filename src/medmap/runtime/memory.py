"""Will a training step fit? Checked before the first step, so a batch that is too large stops
with the batch size that fits instead of an out-of-memory trace an hour into a run.

The estimate comes from the real network: one forward pass of a few augmented views records
every tensor autograd keeps for the backward pass (its activations, which grow with the batch),
and the parameters count three times (weights, gradients, SGD momentum).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch

from medmap.errors import UserFacingError

log = logging.getLogger(__name__)

# What a step holds beyond the saved activations at its peak (the backward pass's gradient
# buffers, the augmenter's temporaries, the allocator's slack), as a share of them.
HEADROOM = 1.3
PROBE_IMAGES = (2, 6)  # two batch sizes: the difference is the per-image part


@dataclass
class StepMemory:
    fixed_bytes: int  # weights, gradients and momentum
    bytes_per_image: int  # activations of one image's two views

    def step_bytes(self, batch_size: int) -> int:
        return int(self.fixed_bytes + HEADROOM * self.bytes_per_image * batch_size)

    def largest_batch(self, available: float) -> int:
        """The largest power of two whose step fits in ``available`` bytes (0 if none)."""
        batch = 1
        while self.step_bytes(batch * 2) <= available:
            batch *= 2
        return batch if self.step_bytes(batch) <= available else 0


def measure_step_memory(module, image_size: int) -> StepMemory:
    """Bytes one training step of ``module`` needs, measured on the CPU in float32 (an upper
    bound for bf16 autocast): the tensors autograd saves in forward passes of two probe
    batches; their difference is what each further image adds (weights that autograd also
    saves, e.g. in channels-last copies, do not grow with the batch and cancel out)."""
    probe = copy.deepcopy(module).cpu().train()  # batch norm statistics of the real one stay
    small, large = (_saved_bytes(probe, images, image_size) for images in PROBE_IMAGES)
    per_image = max(0, (large - small) // (PROBE_IMAGES[1] - PROBE_IMAGES[0]))
    parameters = sum(p.numel() * p.element_size() for p in module.parameters())
    constant = max(0, small - per_image * PROBE_IMAGES[0])
    return StepMemory(3 * parameters + constant, per_image)


def _saved_bytes(module, images: int, image_size: int) -> int:
    """Bytes of the distinct storages autograd keeps for the backward pass of one step on
    ``images`` images (two views each)."""
    saved: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    generator = torch.Generator().manual_seed(0)  # leaves the global random state alone
    views = torch.rand(2 * images, 3, image_size, image_size, generator=generator)
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        module.loss_fn(*module(views).chunk(2))
    return sum(saved.values())


def available_bytes(device: torch.device, limit_gib: float | None) -> float:
    """Free memory on ``device`` (GPU: free device memory; CPU: the kernel's MemAvailable),
    or ``limit_gib`` when that is set and smaller."""
    free = float(torch.cuda.mem_get_info(device)[0]) if device.type == "cuda" else _mem_available()
    if limit_gib is not None:
        free = min(free, limit_gib * 2**30)
    return free


def _mem_available() -> float:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float("inf")  # unknown: do not block


def check_step_fits(
    memory: StepMemory, batch_size: int, image_size: int, device: torch.device, available: float
) -> None:
    """Stop with one paragraph, naming the batch size that fits, when a step cannot fit."""
    needed = memory.step_bytes(batch_size)
    log.info(
        "One training step at batch %d of %d px images needs about %.2f GiB; %.2f GiB free on %s",
        batch_size,
        image_size,
        needed / 2**30,
        available / 2**30,
        device,
    )
    if needed <= available:
        return
    fits = memory.largest_batch(available)
    advice = (
        f"method.batch_size={fits} fits"
        if fits >= 2
        else "even batch 2 does not fit: use a smaller model.width or dataset.size"
    )
    where = "GPU memory" if device.type == "cuda" else "RAM (MemAvailable)"
    raise UserFacingError(
        f"One training step at method.batch_size={batch_size} on {image_size} px images needs "
        f"about {needed / 2**30:.1f} GiB ({memory.bytes_per_image / 2**20:.1f} MiB of "
        f"activations per image, with headroom), but only {available / 2**30:.1f} GiB of "
        f"{where} is free on {device}. {advice} (the learning rate follows the batch size); "
        "or free memory, or run on a larger device. memory_limit_gib= caps what the check "
        "assumes is free."
    )
