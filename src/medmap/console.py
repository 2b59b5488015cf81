"""A normal run's console shows progress and results: library advertisements and deprecation
notices that a user cannot act on are dropped (their own logs and warnings stay)."""

from __future__ import annotations

import logging
import warnings

# Lightning's advertisement for its cloud logger, shown at every Trainer start.
ADVERTISEMENTS = ("💡 Tip:",)


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERTISEMENTS)


_FILTER = _DropAdvertisements()


def quiet_library_noise() -> None:
    """Idempotent: safe to call before every Trainer."""
    # Lightning 2.6 builds torch's deprecated LeafSpec; nothing a user can change.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # A resumed run writes into its own checkpoint folder on purpose.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    for name in ("lightning_utilities.core.rank_zero", "pytorch_lightning.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
