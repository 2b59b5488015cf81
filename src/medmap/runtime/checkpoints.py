"""Checkpoint files that survive crashes and never run code when read."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from medmap.errors import UserFacingError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside the target, flushes it to disk, then
    renames it over the target: a crash or a full disk mid-write leaves the previous
    checkpoint whole (a rename within one folder is atomic)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        try:
            with open(partial, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's contents, read with ``weights_only=True``: tensors and plain containers
    only, so a crafted file cannot run code. Any problem becomes one clear message."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserFacingError(
            f"The checkpoint {path} does not exist. Point ckpt_path at <run dir>/checkpoints/"
            "last.ckpt of the run to resume."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
        if isinstance(error, pickle.UnpicklingError):
            reason = "it holds Python objects other than tensors and plain containers"
        else:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise UserFacingError(
            f"{path} cannot be loaded safely as a checkpoint ({reason}). Checkpoints are "
            "read with weights_only=True, which refuses truncated files and files that would "
            "run code when unpickled; use a checkpoint written by this project's train.py."
        ) from error


def newest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint a run directory would resume from: the newest of the partial epoch
    saved on a stop (``interrupted.ckpt``), the end of the last full epoch (``last.ckpt``)
    and Lightning's SLURM requeue checkpoints; None in a fresh directory."""
    run_dir = Path(run_dir)
    candidates = [
        run_dir / "checkpoints" / "interrupted.ckpt",
        run_dir / "checkpoints" / "last.ckpt",
        *run_dir.glob("hpc_ckpt_*.ckpt"),
    ]
    existing = [path for path in candidates if path.is_file()]
    return max(existing, key=lambda path: path.stat().st_mtime) if existing else None
