"""How many points the explorer's default view hides, for two draw orders (class after class,
the explorer before session 12; shuffled, as now), by redrawing its squares offline:

    python scripts/explorer_occlusion.py <run dir> [--width 780] [--height 800] [--side N]

780x800 px is the map beside the 420-px panel in a 1200x800 window. A point is *hidden* when
none of its pixels is its own (later points cover it); its *colour is hidden* when none of its
pixels shows its class's colour (points of other classes cover it). The page itself reports the
first for any view: ``window.explorer.hiddenShare()``.
"""

from __future__ import annotations

import argparse

import numpy as np


def square_corners(embedding: np.ndarray, width: int, height: int, side: int | None):
    """Each point's square on the canvas as the explorer's default view places it."""
    xs, ys = embedding[:, 0].astype(np.float64), embedding[:, 1].astype(np.float64)
    scale = 0.9 * min(width / (np.ptp(xs) or 1), height / (np.ptp(ys) or 1))
    offset_x = width / 2 - scale * (xs.min() + xs.max()) / 2
    offset_y = height / 2 + scale * (ys.min() + ys.max()) / 2
    radius = max(1.2, min(4, 100 / np.sqrt(len(xs))))
    side = side or max(1, round(2 * radius))
    left = np.round(offset_x - side / 2 + scale * xs).astype(int)
    top = np.round(offset_y - side / 2 - scale * ys).astype(int)
    return left, top, side


def owners(order, left, top, side, width, height) -> np.ndarray:
    """The index of the point each pixel shows last (-1: none)."""
    owner = -np.ones((height, width), int)
    for i in order:
        owner[max(0, top[i]) : max(0, top[i] + side), max(0, left[i]) : max(0, left[i] + side)] = i
    return owner


def occlusion(labels, order, left, top, side, width, height) -> dict:
    owner = owners(order, left, top, side, width, height)
    seen = np.zeros(len(labels), bool)
    seen[owner[owner >= 0]] = True
    colour_hidden = 0
    for i in range(len(labels)):
        patch = owner[
            max(0, top[i]) : max(0, top[i] + side), max(0, left[i]) : max(0, left[i] + side)
        ]
        colour_hidden += not (labels[patch[patch >= 0]] == labels[i]).any()
    return {
        "hidden_pct": round(float(100 * (1 - seen.mean())), 2),
        "colour_hidden_pct": round(100 * colour_hidden / len(labels), 2),
        "hidden_pct_by_class": [
            round(float(100 * (1 - seen[labels == c].mean())), 2) for c in np.unique(labels)
        ],  # fmt: skip
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run")
    parser.add_argument("--width", type=int, default=780)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument(
        "--side", type=int, default=None, help="square side in px (default: the page's)"
    )
    args = parser.parse_args()
    embedding = np.load(f"{args.run}/embedding.npy")
    labels = np.load(f"{args.run}/labels.npy")
    left, top, side = square_corners(embedding, args.width, args.height, args.side)
    by_class = np.concatenate([np.flatnonzero(labels == c) for c in np.unique(labels)])
    shuffled = np.random.default_rng(0).permutation(len(labels))
    print(f"{len(labels)} points, squares of {side} px in {args.width}x{args.height}")
    for name, order in (("class after class", by_class), ("shuffled", shuffled)):
        print(name, occlusion(labels, order, left, top, side, args.width, args.height))


if __name__ == "__main__":
    main()
