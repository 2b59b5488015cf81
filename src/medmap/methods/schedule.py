"""Training phases as data, and the learning-rate shape within a phase."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TRAINABLE_CHOICES = ("all", "head", "output")


@dataclass(frozen=True)
class Phase:
    """One stage of training: how long, the head's output dimension, what trains, how fast.

    ``trainable="output"`` trains only the head's last layer (t-SimCNE phase 2), ``"head"``
    the whole projection head on the frozen backbone (a cheap phase: no backward pass through
    the backbone);
    ``lr_factor`` multiplies the method's base learning rate.
    """

    epochs: int
    out_dim: int
    trainable: str = "all"
    lr_factor: float = 1.0
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"each phase needs at least 1 epoch, got {self.epochs}")
        if self.out_dim < 1:
            raise ValueError(f"a phase's output dimension must be >= 1, got {self.out_dim}")
        if self.trainable not in TRAINABLE_CHOICES:
            raise ValueError(
                f"trainable must be one of {TRAINABLE_CHOICES}, got {self.trainable!r}"
            )
        if self.lr_factor <= 0:
            raise ValueError(f"a phase's lr factor must be > 0, got {self.lr_factor}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(
                f"warm-up epochs must lie in [0, epochs={self.epochs}], got {self.warmup_epochs}"
            )


def build_phases(
    epochs: Sequence[int],
    out_dims: Sequence[int],
    trainable: Sequence[str],
    lr_factors: Sequence[float],
    warmup_epochs: Sequence[int],
) -> list[Phase]:
    """Phases from the per-phase lists of a ``conf/method`` file (all the same length)."""
    columns = {
        "epochs": list(epochs),
        "out_dims": list(out_dims),
        "trainable": list(trainable),
        "lr_factors": list(lr_factors),
        "warmup_epochs": list(warmup_epochs),
    }
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            f"method.epochs, out_dims, trainable, lr_factors and warmup_epochs need one entry per "
            f"phase; got lengths {lengths}"
        )
    return [
        Phase(int(e), int(d), str(t), float(f), int(w)) for e, d, t, f, w in zip(*columns.values())
    ]


def phase_at_epoch(phases: Sequence[Phase], epoch: int) -> int:
    """Index of the phase that epoch ``epoch`` (0-based, counted over all phases) belongs to."""
    end = 0
    for index, phase in enumerate(phases):
        end += phase.epochs
        if epoch < end:
            return index
    return len(phases) - 1


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier at optimiser step ``step`` of a phase: linear warm-up from 0 over
    ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


ANNEAL_SHAPES = ("cos", "linear", "piecewise-linear", "piecewise-cos")


def annealed_dims(shape: str, epochs: int, start: int = 128, end: int = 2) -> list[int]:
    """How many output dimensions the loss sees in each epoch when they are annealed from
    ``start`` to ``end`` (the one-phase schedule of the authors' tsimcne 0.4.24, whose own
    ``fit`` fails): ``cos`` falls along a half cosine over all epochs; ``linear`` straight;
    ``piecewise-linear`` and ``piecewise-cos`` hold ``start`` for 2/3 of the epochs, fall over
    the next 1/8 and hold ``end`` for the rest. Every shape ends at ``end``."""
    if shape not in ANNEAL_SHAPES:
        raise ValueError(f"method.anneal.shape must be one of {ANNEAL_SHAPES}, got {shape!r}")
    if not 1 <= end <= start:
        raise ValueError(f"method.anneal needs 1 <= to_dim <= out_dim, got {end} and {start}")

    def cosine_fall(count: int) -> list[int]:  # count values, the last one exactly `end`
        return [
            math.floor(end + 0.5 * (start + 1 - end) * (1 + math.cos(math.pi * e / count)))
            for e in range(1, count + 1)
        ]

    if shape == "cos":
        dims = cosine_fall(epochs)
    elif shape == "linear":
        dims = [math.floor(start + (end - start) * e / max(1, epochs - 1)) for e in range(epochs)]
    else:
        held, falling = epochs * 2 // 3, epochs // 8
        if shape == "piecewise-linear":
            fall = [math.floor(start + (end - start) * e / falling) for e in range(falling)]
        else:
            fall = cosine_fall(falling)
        dims = [start] * held + fall + [end] * (epochs - held - falling)
    return [min(start, max(end, dim)) for dim in dims]
