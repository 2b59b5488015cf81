"""Contrastive losses as pure functions (SPEC §3).

Both are InfoNCE over the 2N views of a batch of N images: every view is an anchor, its
positive is the other view of the same image, and its denominator holds the positive and the
2N - 2 other views (only the anchor itself is left out). They differ only in the similarity
kernel, given here in log space so the loss is a stable logsumexp.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

LogSimilarity = Callable[[torch.Tensor], torch.Tensor]


def cauchy_log_similarity(z: torch.Tensor) -> torch.Tensor:
    """log q(x, y) with q = 1 / (1 + |x - y|²), for all pairs of rows of z: (M, M)."""
    # |x|² + |y|² - 2 x·y: one matrix product, and no sqrt whose gradient is undefined at 0.
    squared_norms = z.square().sum(dim=1)
    squared_distances = (squared_norms[:, None] + squared_norms[None, :] - 2 * z @ z.T).clamp_min(0)
    return -torch.log1p(squared_distances)


def cosine_log_similarity(z: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """log of exp(cos(x, y) / τ): the SimCLR kernel on L2-normalised rows of z, (M, M)."""
    unit = torch.nn.functional.normalize(z, dim=1)
    return unit @ unit.T / temperature


def info_nce_loss(
    view_a: torch.Tensor, view_b: torch.Tensor, log_similarity: LogSimilarity
) -> torch.Tensor:
    """Mean InfoNCE loss over all 2N anchors; row i of ``view_a`` and ``view_b`` are the two
    views of image i. Computed in float32 whatever the input precision."""
    z = torch.cat((view_a, view_b)).float()
    count = view_a.shape[0]
    log_q = log_similarity(z)
    self_mask = torch.eye(2 * count, dtype=torch.bool, device=z.device)
    log_q = log_q.masked_fill(self_mask, float("-inf"))
    positives = torch.cat((torch.arange(count, 2 * count), torch.arange(count))).to(z.device)
    return (torch.logsumexp(log_q, dim=1) - log_q[torch.arange(2 * count), positives]).mean()


def make_loss(
    kernel: str, temperature: float = 0.5
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss a ``conf/loss`` option names: ``cauchy`` or ``cosine`` (with temperature)."""
    if kernel == "cauchy":
        return lambda a, b: info_nce_loss(a, b, cauchy_log_similarity)
    if kernel == "cosine":
        return lambda a, b: info_nce_loss(a, b, lambda z: cosine_log_similarity(z, temperature))
    raise ValueError(f"Unknown loss kernel {kernel!r}: use 'cauchy' or 'cosine'")
