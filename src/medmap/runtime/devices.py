"""The Trainer's arguments for this machine: ``trainer.precision=auto`` trains in bf16 autocast
where the hardware computes bf16 natively, and in float32 elsewhere.

bf16 autocast doubled training speed on a CPU with AVX512-BF16, but made it about 9x *slower*
on a CPU with only AVX2 (emulated bf16; results/precision-cpu.md): one setting cannot suit both.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux's /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def uses_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def training_device(trainer: DictConfig) -> torch.device:
    """The device Lightning's ``accelerator`` setting picks (the CPU when no GPU is there)."""
    wants_gpu = uses_gpu(str(trainer.get("accelerator", "auto")))
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def trains_in_bf16(trainer: DictConfig) -> bool:
    """Whether the Trainer will run in bf16 autocast (``precision: auto`` resolved)."""
    return str(trainer_arguments(trainer).get("precision", "")).startswith("bf16")


def native_bf16(accelerator: str) -> bool:
    """Whether the device the Trainer will use computes bf16 natively."""
    if uses_gpu(accelerator):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(BF16_CPU_FLAGS & cpu_flags())


def trainer_arguments(trainer: DictConfig) -> dict[str, Any]:
    """``conf/trainer`` as ``pl.Trainer`` keyword arguments, ``precision: auto`` resolved."""
    arguments = OmegaConf.to_container(trainer, resolve=True)
    if arguments.get("precision") == "auto":
        native = native_bf16(str(arguments.get("accelerator", "auto")))
        arguments["precision"] = "bf16-mixed" if native else "32-true"
        log.info(
            "trainer.precision=auto: %s (%s)",
            arguments["precision"],
            "native bf16" if native else "no native bf16 on this device: float32 is faster",
        )
    return arguments
