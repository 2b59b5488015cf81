"""One LightningModule for every contrastive map method: backbone → head → InfoNCE loss,
trained through a list of phases. SimCLR is one phase; t-SimCNE is three."""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from medmap.augment import AugmentationSpec, BatchAugmenter, to_float_images
from medmap.errors import UserFacingError
from medmap.losses import make_loss
from medmap.methods.schedule import Phase, phase_at_epoch, warmup_cosine_factor
from medmap.models import ProjectionHead, SmallImageResNet18

log = logging.getLogger(__name__)

# Mapping a large collection (327,680 PCam images: 47 min on 2 cores) says how far it got.
PROGRESS_EVERY_S = 60.0


class ContrastiveMapModule(pl.LightningModule):
    """Contrastive training of ResNet18 + projection head on two augmented views per image.

    The phase currently trained decides the head's output dimension, which parameters train
    and the learning-rate schedule; ``enter_phase`` switches between them and the checkpoint
    records the phase so a run resumes with the right head.
    """

    def __init__(
        self,
        phases: list[dict[str, Any]],
        backbone_width: int,
        head_hidden: int,
        loss_kernel: str,
        temperature: float,
        base_lr: float,
        momentum: float,
        weight_decay: float,
        augmentation: dict[str, Any],
        fill_colour: list[float],
        steps_per_epoch: int,
        seed: int,
        channels_last: bool = False,
        compile_backbone: bool = False,
        new_output_init_std: float = 1.0,
        exaggeration: float = 1.0,
        map_options: dict[str, Any] | None = None,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.phases = [Phase(**phase) for phase in phases]
        self.backbone = SmallImageResNet18(backbone_width, stem_stride)
        self.head = ProjectionHead(self.backbone.out_features, head_hidden, self.phases[0].out_dim)
        self.loss_fn = make_loss(loss_kernel, temperature, exaggeration)
        self.augmenter = BatchAugmenter(AugmentationSpec.from_config(augmentation), fill_colour)
        self.phase_index = 0
        self._apply_trainable()
        if channels_last:
            self.to(memory_format=torch.channels_last)
        if compile_backbone:
            # In place (nn.Module.compile): parameter names, and so checkpoints, stay the same.
            self.backbone.compile()

    @property
    def phase(self) -> Phase:
        return self.phases[self.phase_index]

    @property
    def total_epochs(self) -> int:
        return sum(phase.epochs for phase in self.phases)

    def phase_at_epoch(self, epoch: int) -> int:
        return phase_at_epoch(self.phases, epoch)

    def enter_phase(self, index: int) -> None:
        """Head surgery and freezing for phase ``index``: a new output layer when the output
        dimension changes (weights ~ N(0, new_output_init_std²)), then set what trains."""
        if not 0 <= index < len(self.phases):
            raise UserFacingError(
                f"This model has {len(self.phases)} phases; a checkpoint asked for phase {index}. "
                "Was it written by a different method configuration?"
            )
        target = self.phases[index]
        if self.head.out_features != target.out_dim:
            # Seeded by (seed, phase): a resumed run draws the layer the uninterrupted one drew.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.hparams.seed * 1009 + index)
                self.head.replace_output(target.out_dim, self.hparams.new_output_init_std)
        self.phase_index = index
        self._apply_trainable()
        log.info("Phase %d: %s", index + 1, target)

    def _apply_trainable(self) -> None:
        trainable = {"all": self, "head": self.head, "output": self.head.output}
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        for parameter in trainable[self.phase.trainable].parameters():
            parameter.requires_grad_(True)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(self._prepare(images))
        # The head runs in float32 even under bf16 autocast: bf16 keeps 8 bits of mantissa,
        # so 2-D coordinates of size ~100 would move in steps of 0.5, coarser than the
        # distances between an image's two views that the Cauchy kernel must resolve.
        with torch.autocast(features.device.type, enabled=False):
            return self.head(features.float())

    def training_step(self, batch: torch.Tensor, batch_index: int) -> torch.Tensor:
        # The views depend only on (seed, global step): a resumed run draws what the
        # uninterrupted run would have drawn.
        generator = torch.Generator(device=batch.device)
        # ... and on the process: under DDP each rank draws its own views (rank 0 as alone)
        rank_offset = self.global_rank * 7_777_777
        generator.manual_seed(self.hparams.seed * 1_000_003 + self.global_step + rank_offset)
        loss = self.contrastive_loss(batch, generator)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"The training loss became {loss.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step} (phase {self.phase_index + 1}). The last good checkpoint is "
                "kept; lower method.lr_per_256 or check the input images for NaNs."
            )
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True)
        self.log("train/phase", float(self.phase_index + 1), on_step=False, on_epoch=True)
        return loss

    def contrastive_loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The loss of one uint8 batch: two augmented views of every image, contrasted."""
        view_a = self.augmenter(batch, generator)
        view_b = self.augmenter(batch, generator)
        outputs = self.loss_inputs(self(torch.cat((view_a, view_b))))
        return self.loss_fn(*outputs.chunk(2))

    def on_train_epoch_end(self) -> None:
        loss = self.trainer.callback_metrics.get("train/loss_epoch")
        log.info(
            "epoch %d/%d (phase %d): loss %.4f",
            self.current_epoch + 1,
            self.total_epochs,
            self.phase_index + 1,
            float("nan") if loss is None else float(loss),
        )

    def configure_optimizers(self):
        phase = self.phase
        parameters = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(
            parameters,
            lr=self.hparams.base_lr * phase.lr_factor,
            momentum=self.hparams.momentum,
            weight_decay=self.hparams.weight_decay,
        )
        steps = self.hparams.steps_per_epoch
        factor = functools.partial(
            warmup_cosine_factor,
            warmup_steps=phase.warmup_epochs * steps,
            total_steps=phase.epochs * steps,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["phase_index"] = self.phase_index

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Runs before the weights load: rebuild the head of the saved phase so shapes match.
        self.enter_phase(int(checkpoint.get("phase_index", 0)))

    @torch.no_grad()
    def _map_batches(self, images: np.ndarray, function, batch_size: int) -> np.ndarray:
        was_training = self.training
        self.eval()
        outputs = []
        started = reported = time.monotonic()
        for start in range(0, len(images), batch_size):
            chunk = torch.from_numpy(images[start : start + batch_size]).to(self.device)
            outputs.append(function(self._prepare(to_float_images(chunk))).float().cpu())
            if time.monotonic() - reported >= PROGRESS_EVERY_S:
                reported = time.monotonic()
                done = start + len(chunk)
                left = (reported - started) / done * (len(images) - done)
                log.info("mapped %d of %d images (%.0f%%), about %.0f min left",
                         done, len(images), 100 * done / len(images), left / 60)  # fmt: skip
        self.train(was_training)
        return torch.cat(outputs).numpy()

    def backbone_features(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """The backbone's (8 * width)-D features of un-augmented uint8 images, in eval mode."""
        return self._map_batches(images, self.backbone, batch_size)

    def project(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """The network's output (the head of the current phase) for un-augmented images."""
        return self._map_batches(images, self, batch_size)

    def loss_inputs(self, outputs: torch.Tensor) -> torch.Tensor:
        """What of the network's output the loss compares (all of it; an annealed schedule
        takes fewer dimensions as training goes on)."""
        return outputs

    def snapshot_map(self, images: np.ndarray) -> np.ndarray | None:
        """The 2-D map of ``images`` at this point of training; None while there is none."""
        return self.project(images) if self.head.out_features == 2 else None

    def embed_map(self, images: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """The final 2-D map of ``images`` (N, 2) float32; ``features`` are their
        ``backbone_features`` when the caller has them already."""
        raise NotImplementedError
