"""A normal run's console shows progress and results: library advertisements and deprecation
notices that a user cannot act on are dropped (their own logs and warnings stay)."""

from __future__ import annotations

import logging
import warnings

# Lightning's advertisement for its cloud logger, shown at every Trainer start, and its tip to
# use TF32 matmuls on a GPU: the float32 projection head is float32 on purpose (bf16 was too
# coarse for the Cauchy kernel), so "highest" stays.
ADVERTISEMENTS = ("💡 Tip:", "You are using a CUDA device")


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERTISEMENTS)


_FILTER = _DropAdvertisements()


def quiet_library_noise() -> None:
    """Idempotent: safe to call at every run and before every Trainer."""
    # Lightning 2.6 builds torch's deprecated LeafSpec; nothing a user can change.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # The loader only draws indices: images are augmented in batches on the device.
    warnings.filterwarnings("ignore", message=r".*does not have many workers")
    # A resumed run writes into its own checkpoint folder on purpose.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    # openTSNE's INFO lines (the gradient method it picked, init settings it ignores).
    logging.getLogger("openTSNE").setLevel(logging.WARNING)
    for name in ("lightning_utilities.core.rank_zero", "pytorch_lightning.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def unquoted_override_problem(arguments: list[str]) -> str | None:
    """What is wrong with a ``key=value`` override whose value holds a space or a non-ASCII
    letter without quotes (Hydra's grammar refuses it with ``LexerNoViableAltException``, a
    message that names neither cause nor fix); None when every override is fine."""
    for argument in arguments:
        key, sign, value = argument.partition("=")
        if not sign or key.startswith("-") or value[:1] in ("'", '"', "[", "{"):
            continue
        if any(character.isspace() or not character.isascii() for character in value):
            return (
                f"The override {argument!r} has a space or a non-ASCII letter in its value, "
                "which Hydra reads only inside quotes. Quote the value within the argument, "
                f"e.g. '{key}=\"{value}\"' (single quotes outside for the shell, double quotes "
                "inside for Hydra)."
            )
    return None
