"""(c) of `make bench`: one phase-1 epoch of the reference implementation, `tsimcne==0.3.12`.

Runs inside its own virtual environment (.venv-reference, made by `make bench`), so it imports
nothing from medmap: it reads the exact uint8 images scripts/bench.py saved and prints one JSON
line. The reference is used as published: per-image PIL augmentation in DataLoader workers,
its default Trainer (fp32) and gradient clipping. Its `trainer_kwargs` argument is broken in
0.3.12 (it becomes None), so it is left unset.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from importlib.metadata import version

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tsimcne import tsimcne as reference


class PILImages(Dataset):
    """(PIL image, label) pairs, the input the reference expects."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return Image.fromarray(self.images[index]), 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", required=True, help=".npy of uint8 images (N, H, W, 3)")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--num-workers", type=int, required=True)
    args = parser.parse_args()
    images = np.load(args.images)
    times: dict[str, float] = {}

    # The LightningModule's own epoch hooks time exactly the training epoch.
    def epoch_start(module) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times["start"] = time.perf_counter()

    def epoch_end(module) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times["end"] = time.perf_counter()

    reference.PLtSimCNE.on_train_epoch_start = epoch_start
    reference.PLtSimCNE.on_train_epoch_end = epoch_end
    estimator = reference.TSimCNE(
        total_epochs=[1], batch_size=args.batch_size, num_workers=args.num_workers
    )
    estimator.fit(PILImages(images))
    seconds = times["end"] - times["start"]
    cuda = torch.cuda.is_available()
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "images": len(images),
                "seconds": round(seconds, 3),
                "img_s": round(len(images) / seconds, 1),
                "peak_memory_mib": round(peak, 1),
                "precision": "32-true",
                "device": torch.cuda.get_device_name() if cuda else "cpu",
                "versions": {
                    name: version(name) for name in ("tsimcne", "lightning", "torch", "pillow")
                },
                "notes": (
                    f"num_workers={args.num_workers}, its default fp32 Trainer, gradient "
                    f"clipping at 4; the largest DataLoader worker peaked at "
                    f"{workers_peak:.0f} MiB resident"
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
