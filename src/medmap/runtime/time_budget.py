"""Fit a run's epochs into a wall-time budget (``time_budget_minutes``), so a demo finishes
in the same minutes on a slower machine.

Before training, a few real training steps (two augmented views, forward, loss, backward,
SGD) on a throwaway copy of the network time one step on this machine. When the configured
schedule would take longer than the budget, every phase's epochs are scaled by the same factor
(at least one epoch each) and the chosen schedule is returned, logged and written to
``<run>/time_budget.json``. The seed still fixes everything given that schedule: passing its
epochs *and* warm-up epochs explicitly (the log line and the record name both) reproduces the
run. A resumed run in the same directory keeps the schedule it started with instead of
measuring again.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from medmap.errors import UserFacingError
from medmap.runtime.devices import trainer_arguments, training_device

log = logging.getLogger(__name__)

PROBE_STEPS = 4  # the first one warms up (allocations, kernel choice) and is not counted
RECORD = "time_budget.json"


def measure_step_seconds(module, images, batch_size: int, device: torch.device, bf16: bool):
    """Median seconds of one training step of ``module`` (a copy: its weights change) on
    ``batch_size`` of the uint8 ``images`` (N, H, W, 3), on ``device``."""
    module.to(device).train()
    batch = torch.from_numpy(images[:batch_size]).to(device)
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=1e-6)
    generator = torch.Generator(device=device).manual_seed(0)
    seconds = []
    for _ in range(PROBE_STEPS):
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = module.contrastive_loss(batch, generator)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
    return sorted(seconds[1:])[len(seconds[1:]) // 2]


def scaled_schedule(
    epochs: list[int], warmup_epochs: list[int], affordable: float
) -> tuple[list[int], list[int]]:
    """Every phase's epochs scaled by one factor so that their sum fits in ``affordable``
    epochs (rounded down, at least 1 each; the longest phase gives up more while one epoch
    each still overshoots); warm-up kept but capped so each phase of 2+ epochs keeps an epoch
    after it. Never more than the configured epochs."""
    factor = min(1.0, affordable / sum(epochs))
    scaled = [max(1, math.floor(count * factor)) for count in epochs]
    while sum(scaled) > affordable and max(scaled) > 1:
        scaled[scaled.index(max(scaled))] -= 1
    warmups = [min(warm, max(0, count - 1)) for warm, count in zip(warmup_epochs, scaled)]
    return scaled, warmups


def fit_to_time_budget(
    cfg: DictConfig,
    build_probe: Callable[[], Any],
    images,
    batch_size: int,
    steps_per_epoch: int,
    output_dir: Path,
) -> dict[str, Any] | None:
    """The schedule that trains within ``cfg.time_budget_minutes``: a record whose ``epochs``
    and ``warmup_epochs`` replace the configured ones (None: no budget). ``cfg`` is left as it
    is; the record is also written to ``<output_dir>/time_budget.json``. ``build_probe`` makes
    the network to time; it is built and stepped with the global random state put back
    afterwards, so the run's own network is the one an explicit schedule would give."""
    minutes = cfg.get("time_budget_minutes")
    if minutes is None:
        return None
    if minutes <= 0:
        raise UserFacingError(f"time_budget_minutes must be > 0 (or null), got {minutes}.")
    arguments = trainer_arguments(cfg.trainer)
    if arguments.get("strategy") not in (None, "auto") or arguments.get("num_nodes", 1) > 1:
        raise UserFacingError(
            "time_budget_minutes sizes the schedule of a single-process run; with "
            f"trainer.strategy={arguments.get('strategy')} set method.epochs instead."
        )
    record_file = output_dir / RECORD
    if record_file.is_file():
        record = json.loads(record_file.read_text())
        log.info("Keeping the time-boxed schedule this run started with (%s): epochs %s",
                 record_file, record["epochs"])  # fmt: skip
    else:
        device, bf16 = training_device(cfg.trainer), str(arguments["precision"]).startswith("bf16")
        with torch.random.fork_rng(devices=[]):
            step = measure_step_seconds(build_probe(), images, batch_size, device, bf16)
        planned = list(cfg.method.epochs)
        epoch_seconds = step * steps_per_epoch
        projected = epoch_seconds * sum(planned)
        epochs, warmups = scaled_schedule(
            planned, list(cfg.method.warmup_epochs), minutes * 60 / epoch_seconds
        )
        record = {
            "minutes": minutes,
            "step_seconds": round(step, 4),
            "steps_per_epoch": steps_per_epoch,
            "configured_epochs": planned,
            "configured_seconds": round(projected, 1),
            "epochs": epochs,
            "warmup_epochs": warmups,
            "projected_seconds": round(epoch_seconds * sum(epochs), 1),
        }
        record_file.write_text(json.dumps(record, indent=2) + "\n")
        if epochs != planned:
            log.info(
                "Time budget %s min: the configured %d epochs %s would train for about %.0f min "
                "here (%.3f s a step); training epochs %s instead (about %.0f min). "
                "method.epochs=%s method.warmup_epochs=%s time_budget_minutes=null repeats "
                "this schedule; time_budget_minutes=null alone trains the configured one.",
                minutes, sum(planned), planned, projected / 60, step, epochs,
                record["projected_seconds"] / 60, hydra_list(epochs), hydra_list(warmups),
            )  # fmt: skip
        else:
            log.info("Time budget %s min: the configured epochs %s fit (about %.0f min here)",
                     minutes, planned, projected / 60)  # fmt: skip
    return record


def hydra_list(values: list[int]) -> str:
    """A list as a Hydra override writes it: [1,1,3]."""
    return "[" + ",".join(str(value) for value in values) + "]"
