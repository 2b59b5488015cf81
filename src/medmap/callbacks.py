"""Callbacks that drive training inside the one Trainer."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl


class PhaseSchedule(pl.Callback):
    """Moves the module into the phase the epoch counter has reached: head surgery, freezing,
    and a fresh optimiser and LR schedule for the new phase (t-SimCNE's 3-phase schedule).

    With ``checkpoint_dir`` set it also keeps ``phase<k>_end.ckpt`` after the last epoch of
    each phase but the final one, so later phases can be re-run with other settings from a
    finished one (``ckpt_path=<run>/checkpoints/phase1_end.ckpt``).
    """

    def __init__(self, checkpoint_dir: str | Path | None = None) -> None:
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None

    def on_train_epoch_start(self, trainer: pl.Trainer, module) -> None:
        target = module.phase_at_epoch(trainer.current_epoch)
        if target != module.phase_index:
            module.enter_phase(target)
            trainer.strategy.setup_optimizers(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, module) -> None:
        if self.checkpoint_dir is None:
            return
        next_epoch = trainer.current_epoch + 1
        if (
            next_epoch < module.total_epochs
            and module.phase_at_epoch(next_epoch) != module.phase_index
        ):
            trainer.save_checkpoint(self.checkpoint_dir / f"phase{module.phase_index + 1}_end.ckpt")
