"""Contrastive losses as pure functions (docs/method.md §3).

Both are InfoNCE over the 2N views of a batch of N images: every view is an anchor, its
positive is the other view of the same image, and its denominator holds the positive and the
2N - 2 other views (only the anchor itself is left out). They differ only in the similarity
kernel, given here in log space so the loss is a stable logsumexp. An ``exaggeration`` ρ > 1
weighs the attraction to the positive ρ times (-ρ log q(anchor, positive) + log Σ q), as in
the t-SimCNE reference code and t-SNE's early exaggeration: tighter clusters. Under
multi-process training the batch is the global one: views are gathered from all processes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

LogSimilarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cauchy_log_similarity(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """log q(a, b) with q = 1 / (1 + |a - b|²) for every row a of x and b of y (default x)."""
    y = x if y is None else y
    # |a|² + |b|² - 2 a·b: one matrix product, and no sqrt whose gradient is undefined at 0.
    squared = x.square().sum(dim=1)[:, None] + y.square().sum(dim=1)[None, :] - 2 * x @ y.T
    return -torch.log1p(squared.clamp_min(0))


def cosine_log_similarity(
    x: torch.Tensor, y: torch.Tensor | None = None, temperature: float = 0.5
) -> torch.Tensor:
    """log of exp(cos(a, b) / τ): the SimCLR kernel, for every row a of x and b of y."""
    unit_x = torch.nn.functional.normalize(x, dim=1)
    unit_y = unit_x if y is None else torch.nn.functional.normalize(y, dim=1)
    return unit_x @ unit_y.T / temperature


def gather_with_gradients(tensor: torch.Tensor) -> torch.Tensor:
    """All processes' rows, concatenated in rank order, with gradients flowing back to each
    process's own rows (``torch.distributed.nn``: its backward is a reduce-scatter)."""
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor))


def process_group() -> tuple[Callable[[torch.Tensor], torch.Tensor] | None, int]:
    """(gather, rank) under multi-process training (DDP), else (None, 0)."""
    distributed = torch.distributed
    if (
        distributed.is_available()
        and distributed.is_initialized()
        and distributed.get_world_size() > 1
    ):
        return gather_with_gradients, distributed.get_rank()
    return None, 0


def info_nce_loss(
    view_a: torch.Tensor,
    view_b: torch.Tensor,
    log_similarity: LogSimilarity,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    rank: int = 0,
    exaggeration: float = 1.0,
) -> torch.Tensor:
    """Mean InfoNCE loss over this process's 2n anchors; row i of ``view_a`` and ``view_b``
    are the two views of image i. Computed in float32 whatever the input precision.

    With ``gather`` (multi-process training) the denominators hold the views of the *global*
    batch (2nW - 1 candidates), exactly as one process with the whole batch would: the mean of
    the processes' losses is the single-process loss, and so are its gradients once DDP
    averages them."""
    with torch.autocast(view_a.device.type, enabled=False):
        return _info_nce(view_a.float(), view_b.float(), log_similarity, gather, rank, exaggeration)


def _info_nce(local_a, local_b, log_similarity, gather, rank, exaggeration) -> torch.Tensor:
    # Under bf16 autocast the similarity matmul would run in bf16 (8 bits of mantissa): for
    # t-SimCNE's 2-D coordinates of size ~50, |a|² + |b|² - 2 a·b then loses the distances
    # between an image's two views entirely. Hence float32, autocast off, here.
    count = local_a.shape[0]
    if gather is None:
        all_a, all_b, offset = local_a, local_b, 0
    else:
        all_a, all_b, offset = gather(local_a), gather(local_b), rank * count
    total = all_a.shape[0]
    anchors = torch.cat((local_a, local_b))
    candidates = torch.cat((all_a, all_b))
    log_q = log_similarity(anchors, candidates)
    rows = torch.arange(2 * count, device=anchors.device)
    own = torch.cat((torch.arange(count), torch.arange(count) + total)).to(anchors.device) + offset
    partner = torch.cat((torch.arange(count) + total, torch.arange(count))).to(anchors.device)
    log_q = log_q.index_put((rows, own), torch.tensor(float("-inf"), device=anchors.device))
    attraction = log_q[rows, partner + offset]
    return (torch.logsumexp(log_q, dim=1) - exaggeration * attraction).mean()


def make_loss(
    kernel: str, temperature: float = 0.5, exaggeration: float = 1.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss a ``conf/loss`` option names: ``cauchy`` or ``cosine`` (with temperature),
    each with its ``exaggeration``.
    Under DDP it gathers the other processes' views as negatives (``process_group``)."""
    if kernel == "cauchy":
        similarity = cauchy_log_similarity
    elif kernel == "cosine":
        similarity = functools.partial(cosine_log_similarity, temperature=temperature)
    else:
        raise ValueError(f"Unknown loss kernel {kernel!r}: use 'cauchy' or 'cosine'")

    def loss(view_a: torch.Tensor, view_b: torch.Tensor) -> torch.Tensor:
        gather, rank = process_group()
        return info_nce_loss(view_a, view_b, similarity, gather, rank, exaggeration)

    return loss
