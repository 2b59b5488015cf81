"""Throughput of one t-SimCNE phase-1 epoch: this project's pipeline against the model alone
(the upper bound) and against the reference ``tsimcne`` package (scripts/bench_reference.py).

Each part runs in its own process (scripts/bench.py) so that its peak memory is its own.
Images/s counts images, each seen as two augmented views, as the study's throughput figures do.
"""

from __future__ import annotations

import datetime as dt
import platform
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from medmap.augment import AugmentationSpec, BatchAugmenter, to_float_images
from medmap.data import ImageCollection
from medmap.data.loading import resident_images, training_loader
from medmap.runtime.console import quiet_library_noise
from medmap.runtime.devices import trainer_arguments, training_device, trains_in_bf16


class EpochTimer(pl.Callback):
    """Wall time of each training epoch and the images it trained on."""

    def __init__(self) -> None:
        self.started = None
        self.seconds: list[float] = []
        self.images: list[int] = []

    def on_train_epoch_start(self, trainer, module) -> None:
        _synchronize(module.device)
        self.images.append(0)
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
        self.images[-1] += len(batch)

    def on_train_epoch_end(self, trainer, module) -> None:
        _synchronize(module.device)
        self.seconds.append(time.perf_counter() - self.started)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mib(device: torch.device) -> float:
    """Peak GPU memory allocated on a CUDA device, else the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _part(images: int, seconds: float, device: torch.device, **extra: Any) -> dict[str, Any]:
    return {
        "images": images,
        "seconds": round(seconds, 3),
        "img_s": round(images / seconds, 1),
        "peak_memory_mib": round(peak_memory_mib(device), 1),
        "device": describe_device(device),
        **extra,
    }


def time_pipeline(cfg: DictConfig, collection: ImageCollection, module) -> dict[str, Any]:
    """(a) This project: the Trainer, loader and batched augmentation that train.py uses, for
    ``bench.epochs`` epochs of phase 1; the last epoch is reported (with ``model.compile=true``
    the first one also compiles)."""
    timer = EpochTimer()
    quiet_library_noise()
    trainer = pl.Trainer(
        **trainer_arguments(cfg.trainer),
        max_epochs=cfg.bench.epochs,
        logger=False,
        enable_checkpointing=False,
        callbacks=[timer],
    )
    images = resident_images(collection.images, trainer.strategy.root_device, cfg.data_on_device)
    # Full batches only: the same steps as the model-alone bound below.
    trainer.fit(module, training_loader(images, cfg.method.batch_size, cfg.seed, drop_last=True))
    first_epoch = round(timer.seconds[0], 3)
    return _part(timer.images[-1], timer.seconds[-1], trainer.strategy.root_device,
                 first_epoch_seconds=first_epoch)  # fmt: skip


def time_model_only(cfg: DictConfig, collection: ImageCollection, module) -> dict[str, Any]:
    """(b) The upper bound: the same network, loss, optimiser and precision on one batch of
    pre-made, un-augmented tensors already on the device, stepped as often as an epoch has
    batches. No loader, no augmentation, no Trainer."""
    device = training_device(cfg.trainer)
    batch_size = cfg.method.batch_size
    steps = len(collection) // batch_size
    images = torch.from_numpy(collection.images[:batch_size]).to(device)
    views = module._prepare(to_float_images(images).repeat(2, 1, 1, 1))
    module.to(device).train()
    optimizer = module.configure_optimizers()["optimizer"]
    bf16 = trains_in_bf16(cfg.trainer)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step() -> None:
        with autocast:
            loss = module.loss_fn(*module(views).chunk(2))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    flops = step_flops(step)
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    seconds = time.perf_counter() - started
    ceiling = matmul_ceiling_gflop_s(device, bf16)
    achieved = flops * steps / seconds / 1e9
    return _part(steps * batch_size, seconds, device, step_gflop=round(flops / 1e9, 3),
                 achieved_gflop_s=round(achieved, 1), matmul_ceiling_gflop_s=round(ceiling, 1),
                 share_of_ceiling=round(achieved / ceiling, 3))  # fmt: skip


def step_flops(step) -> int:
    """Floating-point operations of one training step (forward, loss, backward; a multiply-add
    counts 2), as torch.utils.flop_counter counts them: convolutions and matrix products, the
    bulk of the work; element-wise layers (BatchNorm, ReLU, the optimiser) are not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def matmul_ceiling_gflop_s(device: torch.device, bf16: bool, size: int = 4096) -> float:
    """What this device's cores reach on a large matrix product in the training precision
    (best of 5 after a warm-up): the practical ceiling for a network made of convolutions."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(6):
        _synchronize(device)
        started = time.perf_counter()
        a @ b
        _synchronize(device)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads, {cpu_model()})"


def cpu_model() -> str:
    """The processor's name (Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def summarise(
    parts: dict[str, dict[str, Any]], cfg: DictConfig, versions: dict[str, str], n_images: int
) -> dict[str, Any]:
    """One record of a benchmark: the three parts, their ratios and what they ran on."""
    ours, bound = parts["ours"], parts["model_only"]
    reference_img_s = (parts.get("reference") or {}).get("img_s")  # None: not run
    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "device": ours["device"],
        "dataset": cfg.dataset.name,
        "n_images": n_images,
        "batch_size": cfg.method.batch_size,
        "width": cfg.model.width,
        "precision": str(trainer_arguments(cfg.trainer)["precision"]),
        "channels_last": bool(cfg.model.channels_last),
        "compile": bool(cfg.model.compile),
        "ours_img_s": ours["img_s"],
        "model_only_img_s": bound["img_s"],
        "reference_img_s": reference_img_s,
        "ours_vs_reference": round(ours["img_s"] / reference_img_s, 2) if reference_img_s else None,
        "ours_vs_model_only": round(ours["img_s"] / bound["img_s"], 3),
        "step_gflop": bound.get("step_gflop"),
        "matmul_ceiling_gflop_s": bound.get("matmul_ceiling_gflop_s"),
        "model_only_share_of_ceiling": bound.get("share_of_ceiling"),
        # medmap's pipeline does the same steps (full batches) in its own time
        "ours_share_of_ceiling": round(
            bound["share_of_ceiling"] * ours["img_s"] / bound["img_s"], 3
        )
        if bound.get("share_of_ceiling")
        else None,
        "parts": parts,
        "versions": versions,
    }


def render_markdown(result: dict[str, Any]) -> str:
    """The benchmark as a markdown table with its setting and ratios."""
    names = {
        "ours": "(a) medmap: loader + batched augmentation + Trainer",
        "model_only": "(b) model alone on pre-made tensors (upper bound)",
        "reference": "(c) reference tsimcne==0.3.12 (PIL augmentation in DataLoader workers)",
    }
    lines = [
        f"# t-SimCNE phase-1 epoch on {result['dataset']} ({result['n_images']} images)",
        "",
        f"Device: {result['device']}. Batch {result['batch_size']}, ResNet18 width "
        f"{result['width']}, two views per image. Date {result['date']}.",
        "",
        "| | images/s | s/epoch | peak memory (MiB) | precision |",
        "|---|---|---|---|---|",
    ]
    for key, name in names.items():
        part = result["parts"].get(key)
        if not part:
            lines.append(f"| {name} | not run | | | |")
            continue
        lines.append(
            f"| {name} | {part['img_s']:.0f} | {part['seconds']:.1f} | "
            f"{part['peak_memory_mib']:.0f} | {part.get('precision', result['precision'])} |"
        )
    versus_reference = result["ours_vs_reference"]
    lines += [
        "",
        f"- (a)/(c) = **{versus_reference:.2f}x** the reference's images/s."
        if versus_reference
        else "- (a)/(c): the reference was not run (see `make bench`).",
        f"- (a)/(b) = **{result['ours_vs_model_only']:.3f}** of the model-only bound.",
        *_flop_lines(result),
        f"- channels_last {result['channels_last']}, torch.compile {result['compile']}.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
    ]
    notes = (result["parts"].get("reference") or {}).get("notes")
    if notes:
        lines.append(f"- Reference: {notes}")
    augment = result["parts"].get("augment")
    if augment:
        settings = list(augment)
        lines += [
            "",
            f"## Augmentation alone: one view of a batch of {result['batch_size']} images, "
            "views/s (best of repeats)",
            "",
            "| implementation | " + " | ".join(f"aug={s}" for s in settings) + " |",
            "|---|" + "---|" * len(settings),
        ]
        for name in augment[settings[0]]:
            rates = " | ".join(f"{augment[s][name]:.0f}" for s in settings)
            lines.append(f"| {name} | {rates} |")
    return "\n".join(lines) + "\n"


def augmentation_pipelines(spec: AugmentationSpec, fill_colour, size: int) -> dict[str, Any]:
    """The same augmentation (docs/method.md §2; rot90's quarter turns left out) written four
    ways, each a function from a uint8 batch (B, H, W, 3) on the device to one float view per image:
    our batched augmenter; kornia's batched per-sample augmentations; torchvision.transforms.v2
    on tensors (one parameter draw per call, so one call per image); torchvision on PIL images,
    per image, as the reference package does in its DataLoader workers. kornia (a dev extra)
    is left out where it is not installed."""
    from importlib.metadata import version

    from PIL import Image
    from torchvision import transforms as pil_transforms
    from torchvision.transforms import v2

    ours = BatchAugmenter(spec, fill_colour)

    def medmap_batched(images: torch.Tensor) -> torch.Tensor:
        return ours(images, torch.Generator(device=images.device).manual_seed(0))

    jitter = (spec.brightness, spec.contrast, spec.saturation, spec.hue)
    tensor_steps = [v2.RandomResizedCrop(size, scale=spec.crop_scale, antialias=False)]
    pil_steps = [pil_transforms.RandomResizedCrop(size, scale=spec.crop_scale)]
    if spec.rotation_degrees:
        tensor_steps.append(v2.RandomRotation(spec.rotation_degrees))
        pil_steps.append(pil_transforms.RandomRotation(spec.rotation_degrees))
    if spec.vflip_p:
        tensor_steps.append(v2.RandomVerticalFlip(spec.vflip_p))
        pil_steps.append(pil_transforms.RandomVerticalFlip(spec.vflip_p))
    tensor_steps += [
        v2.RandomHorizontalFlip(spec.hflip_p),
        v2.RandomApply([v2.ColorJitter(*jitter)], p=spec.jitter_p),
        v2.RandomGrayscale(spec.grayscale_p),
    ]
    pil_steps += [
        pil_transforms.RandomHorizontalFlip(spec.hflip_p),
        pil_transforms.RandomApply([pil_transforms.ColorJitter(*jitter)], p=spec.jitter_p),
        pil_transforms.RandomGrayscale(spec.grayscale_p),
        pil_transforms.ToTensor(),
    ]
    tensor_pipeline = v2.Compose([*tensor_steps, v2.ToDtype(torch.float32, scale=True)])
    pil_pipeline = pil_transforms.Compose(pil_steps)

    def torchvision_v2_per_image(images: torch.Tensor) -> torch.Tensor:
        return torch.stack([tensor_pipeline(image) for image in images.permute(0, 3, 1, 2)])

    def pil_per_image(images: torch.Tensor) -> torch.Tensor:
        pictures = [Image.fromarray(image) for image in images.cpu().numpy()]
        return torch.stack([pil_pipeline(picture) for picture in pictures])

    pipelines = {"medmap batched (hand-written, one grid_sample per view)": medmap_batched}
    kornia_batched = kornia_pipeline(spec, size)
    if kornia_batched is not None:
        pipelines[f"kornia {version('kornia')} batched"] = kornia_batched
    pipelines["torchvision.transforms.v2 per image"] = torchvision_v2_per_image
    pipelines["torchvision on PIL per image (the reference's way)"] = pil_per_image
    return pipelines


def kornia_pipeline(spec: AugmentationSpec, size: int):
    """The augmentation as kornia's batched per-sample pipeline; None without kornia."""
    try:
        import kornia.augmentation as kornia_aug
    except ImportError:
        return None
    steps = [kornia_aug.RandomResizedCrop((size, size), scale=spec.crop_scale)]
    if spec.rotation_degrees:
        steps.append(kornia_aug.RandomRotation(spec.rotation_degrees, p=1.0))
    if spec.vflip_p:
        steps.append(kornia_aug.RandomVerticalFlip(p=spec.vflip_p))
    jitter = (spec.brightness, spec.contrast, spec.saturation, spec.hue)
    steps += [
        kornia_aug.RandomHorizontalFlip(p=spec.hflip_p),
        kornia_aug.ColorJitter(*jitter, p=spec.jitter_p),
        kornia_aug.RandomGrayscale(p=spec.grayscale_p),
    ]
    pipeline = kornia_aug.AugmentationSequential(*steps)

    def kornia_batched(images: torch.Tensor) -> torch.Tensor:
        return pipeline(to_float_images(images))

    return kornia_batched


def time_augmentations(
    images: np.ndarray, spec: AugmentationSpec, fill_colour, device: torch.device, repeats: int
) -> dict[str, float]:
    """Views per second of each way to augment ``images`` (one batch), best of ``repeats``."""
    batch = torch.from_numpy(images).to(device)
    rates = {}
    for name, pipeline in augmentation_pipelines(spec, fill_colour, images.shape[1]).items():
        pipeline(batch)  # warm-up: kernels, caches
        best = float("inf")
        for _ in range(repeats):
            _synchronize(device)
            started = time.perf_counter()
            pipeline(batch)
            _synchronize(device)
            best = min(best, time.perf_counter() - started)
        rates[name] = round(len(images) / best, 1)
    return rates


def _flop_lines(result: dict[str, Any]) -> list[str]:
    """How far from the hardware's limit a step runs: FLOPs of a step against the device's
    large-matmul rate."""
    if not result.get("step_gflop"):
        return []
    return [
        f"- One training step ({2 * result['batch_size']} views, forward + backward): "
        f"**{result['step_gflop']:.1f} GFLOP** (torch.utils.flop_counter: convolutions and "
        "matrix products). A 4096x4096 matrix product in the same precision runs at "
        f"{result['matmul_ceiling_gflop_s']:.0f} GFLOP/s here (the practical ceiling): the model "
        f"alone reaches **{100 * result['model_only_share_of_ceiling']:.0f}%** of it, medmap's "
        f"pipeline **{100 * result['ours_share_of_ceiling']:.0f}%**.",
    ]
