"""Callbacks that drive training inside the one Trainer."""

from __future__ import annotations

import pytorch_lightning as pl


class PhaseSchedule(pl.Callback):
    """Moves the module into the phase the epoch counter has reached: head surgery, freezing,
    and a fresh optimiser and LR schedule for the new phase (t-SimCNE's 3-phase schedule)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, module) -> None:
        target = module.phase_at_epoch(trainer.current_epoch)
        if target != module.phase_index:
            module.enter_phase(target)
            trainer.strategy.setup_optimizers(trainer)
