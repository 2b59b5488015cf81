"""Callbacks that drive training inside the one Trainer."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import SIGTERMException

from medmap.reporting.plotting import plot_map

log = logging.getLogger(__name__)


def ends_a_phase(module, epoch: int) -> bool:
    """Whether the epoch with (0-based) index ``epoch`` is the last one of its phase."""
    following = epoch + 1
    return following >= module.total_epochs or module.phase_at_epoch(
        following
    ) != module.phase_at_epoch(epoch)


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
            strategy = trainer.strategy
            if isinstance(strategy, pl.strategies.DDPStrategy):
                # DDP registered the previous phase's trainable parameters: wrap the module
                # again, so the new output layer's gradients are averaged across processes
                # and the frozen ones are not waited for.
                strategy.model = module
                strategy.configure_ddp()
            strategy.setup_optimizers(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, module) -> None:
        if self.checkpoint_dir is None:
            return
        epoch = trainer.current_epoch
        if epoch + 1 < module.total_epochs and ends_a_phase(module, epoch):
            path = self.checkpoint_dir / f"phase{module.phase_index + 1}_end.ckpt"
            trainer.save_checkpoint(path, weights_only=False)  # whole state: phases resume


class MapSnapshots(pl.Callback):
    """Plots the current 2-D map of a fixed sample of images every ``every_n_epochs`` epochs
    and at the end of each phase, as PNGs in ``directory``; a wandb logger also receives them
    as images (the dashboard's view of the map taking shape) unless ``send_to_logger`` is
    off. Phases whose head is not 2-D have no map to show and are skipped."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        class_names: list[str],
        directory: str | Path,
        every_n_epochs: int,
        send_to_logger: bool = True,
    ) -> None:
        self.send_to_logger = send_to_logger
        self.images = images
        self.labels = labels
        self.class_names = class_names
        self.directory = Path(directory)
        self.every_n_epochs = every_n_epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, module) -> None:
        if not trainer.is_global_zero:  # under DDP one process draws
            return
        epoch = trainer.current_epoch
        due = self.every_n_epochs > 0 and (epoch + 1) % self.every_n_epochs == 0
        if not (due or ends_a_phase(module, epoch)):
            return
        embedding = module.snapshot_map(self.images)
        if embedding is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"map_epoch{epoch + 1:04d}.png"
        title = f"epoch {epoch + 1}/{module.total_epochs} (phase {module.phase_index + 1})"
        plot_map(embedding, self.labels, self.class_names, path, title)
        if self.send_to_logger and isinstance(trainer.logger, pl.loggers.WandbLogger):
            trainer.logger.log_image("map/snapshot", [str(path)], step=trainer.global_step)


class RunRecord(pl.Callback):
    """Writes what the run is (method, dataset, network shape) into every checkpoint, so that
    resuming can refuse a checkpoint from another run before any weights are loaded."""

    KEY = "medmap_run"

    def __init__(self, identity: dict) -> None:
        self.identity = dict(identity)

    def on_save_checkpoint(self, trainer: pl.Trainer, module, checkpoint: dict) -> None:
        checkpoint[self.KEY] = self.identity


class SaveOnStop(pl.Callback):
    """A stop from outside saves ``interrupted.ckpt`` (the partial epoch) and says how to go
    on, so no training is lost; ``last.ckpt`` stays the end of the last full epoch.

    - Ctrl-C (SIGINT): Lightning exits with status 1 after this callback has saved.
    - SIGTERM (what SLURM sends at a time limit or on preemption) and SIGUSR1 (the warning
      ``sbatch --signal=USR1@<seconds>`` asks for): the step in progress finishes, this
      callback saves, and ``trainer.fit`` raises :class:`TrainingStopped`, which the
      command line turns into a non-zero exit, so a scheduler never counts the run as done.
    """

    def __init__(self, checkpoint_dir: str | Path) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.warning_received = False
        self._previous_usr1 = None

    def on_fit_start(self, trainer: pl.Trainer, module) -> None:
        # Lightning has set up its own SIGTERM handling by now; SIGUSR1 is chained to any
        # handler already there (Lightning's SLURM auto-requeue, when it is on).
        if threading.current_thread() is threading.main_thread():
            self._previous_usr1 = signal.getsignal(signal.SIGUSR1)
            signal.signal(signal.SIGUSR1, self._on_warning)

    def _on_warning(self, signum, frame) -> None:
        self.warning_received = True
        if callable(self._previous_usr1):
            self._previous_usr1(signum, frame)

    def on_train_batch_end(self, trainer: pl.Trainer, module, *args) -> None:
        if self.warning_received:
            raise SIGTERMException

    def teardown(self, trainer: pl.Trainer, module, stage: str) -> None:
        if self._previous_usr1 is not None:  # installed (in the main thread) by on_fit_start
            signal.signal(signal.SIGUSR1, self._previous_usr1)
            self._previous_usr1 = None

    def on_exception(self, trainer: pl.Trainer, module, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt | SIGTERMException):
            return  # e.g. a NaN loss: the last good checkpoint is the one to keep
        path = self.checkpoint_dir / "interrupted.ckpt"
        trainer.save_checkpoint(path, weights_only=False)
        what = "Interrupted" if isinstance(exception, KeyboardInterrupt) else "Stopped by signal"
        log.error(
            "%s at epoch %d, step %d: saved %s. Resume with ckpt_path=%s (the partial epoch) "
            "or ckpt_path=%s (the end of the last full epoch), or run the same command with "
            "hydra.run.dir=%s to resume from its newest checkpoint automatically.",
            what,
            trainer.current_epoch + 1,
            trainer.global_step,
            path,
            path,
            self.checkpoint_dir / "last.ckpt",
            self.checkpoint_dir.parent,
        )
