"""How well a run's data-quality finders recover planted problems, beside cleanlab's Datalab on
the same backbone features (a benchmark, not part of a run).

    python scripts/quality_comparison.py <run dir> [--label-noise 0.05] [--out results/quality.md]

The run's images are reloaded through its own dataset config (set DATA_DIR as for training)
and its backbone features recomputed from its last checkpoint (for a run still training, its
map too). Labels flipped in the run
(``dataset.inject.label_noise``) are used as they are; otherwise ``--label-noise`` flips a
share now, with data/inject.py's function: t-SimCNE never sees labels, so training on the
flipped labels would give the same network. Planted duplicates come from the run itself
(``dataset.inject.duplicates``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from medmap.api import TSimCNE
from medmap.data import load_dataset
from medmap.data.inject import DUPLICATE, LABEL_FLIPPED, flip_labels
from medmap.quality import (
    duplicate_scores,
    feature_graph,
    label_noise_scores,
    label_suspects,
    near_duplicates,
    nearest_neighbours,
    neighbour_votes,
    out_of_fold_probabilities,
    planted_source,
)
from medmap.runtime.checkpoints import load_checkpoint


def support_score(votes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return 1.0 - votes[np.arange(len(labels)), labels]


def cleanlab_label_scores(labels, features=None, pred_probs=None) -> tuple[np.ndarray, float]:
    """cleanlab's label-issue score (1 - label quality), from features or from probabilities."""
    from cleanlab import Datalab

    started = time.perf_counter()
    lab = Datalab(data={"label": labels}, label_name="label", verbosity=0)
    lab.find_issues(features=features, pred_probs=pred_probs, issue_types={"label": {}})
    score = 1.0 - lab.get_issues("label")["label_score"].to_numpy()
    return score, time.perf_counter() - started


def cleanlab_duplicate_pairs(features: np.ndarray) -> tuple[np.ndarray, float]:
    """Pairs within cleanlab's near-duplicate sets (its default threshold)."""
    from cleanlab import Datalab

    started = time.perf_counter()
    lab = Datalab(data={"label": np.zeros(len(features), int)}, label_name="label", verbosity=0)
    lab.find_issues(features=features, issue_types={"near_duplicate": {}})
    sets = lab.get_issues("near_duplicate")["near_duplicate_sets"]
    pairs = {(min(i, int(j)), max(i, int(j))) for i, group in enumerate(sets) for j in group}
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--label-noise", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=15)
    parser.add_argument("--thresholds", default="0.1,0.2,0.3,0.4")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    saved = OmegaConf.load(args.run / ".hydra" / "config.yaml")
    collection = load_dataset(saved.dataset, saved.seed)
    network = TSimCNE.load(args.run).module
    features = network.backbone_features(collection.images)
    if (args.run / "embedding.npy").is_file():
        embedding, source_of_map = np.load(args.run / "embedding.npy"), "the run's final map"
    else:  # a run still training: its newest checkpoint's map (a 2-D phase)
        epoch = load_checkpoint(args.run / "checkpoints" / "last.ckpt")["epoch"]
        embedding = network.embed_map(collection.images, features)
        source_of_map = f"the map and features of checkpoints/last.ckpt after epoch {epoch + 1}"
    labels, injected = collection.labels, collection.injected.copy()
    classes = len(collection.class_names)
    if not (injected == LABEL_FLIPPED).any():
        rng = np.random.default_rng(args.seed)
        labels, flipped = flip_labels(labels, injected, args.label_noise, classes, rng)
        injected[flipped] = LABEL_FLIPPED
    lines = [
        f"# Data-quality finders on {args.run.name}",
        "",
        f"{collection.describe()}; {int((injected == LABEL_FLIPPED).sum())} labels flipped, "
        f"{int((injected == DUPLICATE).sum())} planted duplicates; backbone features "
        f"{features.shape[1]}-D; k = {args.k}; {source_of_map}.",
        "",
        "## Label errors (AUROC / precision at k = number flipped)",
        "",
        "| finder | AUROC | precision at k | seconds |",
        "|---|---|---|---|",
    ]

    def report(name: str, score: np.ndarray, seconds: float) -> None:
        result = label_noise_scores(score, injected)
        lines.append(
            f"| {name} | {result['auroc']:.4f} | {result['precision_at_k']:.3f} | {seconds:.0f} |"
        )
        print(lines[-1], flush=True)

    started = time.perf_counter()
    distances, feature_neighbours = feature_graph(features, args.k)
    _, map_neighbours = nearest_neighbours(embedding, args.k)
    graph_seconds = time.perf_counter() - started
    for name, neighbours in (
        ("share of map neighbours (the naive score)", map_neighbours),
        ("share of feature neighbours", feature_neighbours),
    ):
        report(name, support_score(neighbour_votes(labels, neighbours, classes), labels), 0)
    started = time.perf_counter()
    probabilities = out_of_fold_probabilities(features, labels, classes, 5, args.seed, 100)
    classifier_seconds = time.perf_counter() - started
    report("cross-validated linear classifier", support_score(probabilities, labels),
           classifier_seconds)  # fmt: skip
    started = time.perf_counter()
    ours = label_suspects(labels, classes, map_neighbours, features, feature_neighbours,
                          seed=args.seed)  # fmt: skip
    report("**medmap (mean of the three; suspects.csv)**", ours.score,
           time.perf_counter() - started + graph_seconds)  # fmt: skip
    report("cleanlab Datalab, features (its kNN)", *cleanlab_label_scores(labels, features))
    score, seconds = cleanlab_label_scores(labels, pred_probs=probabilities)
    report("cleanlab Datalab, our classifier's probabilities", score, seconds + classifier_seconds)

    source = planted_source(collection)
    lines += [
        "",
        "## Near duplicates (recall of the planted copies / precision of the pairs)",
        "",
        "Precision counts a pair as right when it joins two planted copies or a copy and its "
        "source; pairs of other images (the data's own near duplicates) count as wrong.",
        "",
        "| finder | pairs | recall | precision | pairs outside the planted group |",
        "|---|---|---|---|---|",
    ]

    def report_pairs(name: str, pairs: np.ndarray) -> None:
        result = duplicate_scores(pairs, injected, source)
        group = injected == DUPLICATE
        if source is not None:
            group[source] = True
        outside = int((~group[pairs[:, 0]] & ~group[pairs[:, 1]]).sum()) if len(pairs) else 0
        lines.append(f"| {name} | {result['pairs']} | {result['recall']:.3f} | "
                     f"{result['precision']:.3f} | {outside} |")  # fmt: skip
        print(lines[-1], flush=True)

    for threshold in (float(t) for t in args.thresholds.split(",")):
        pairs, _ = near_duplicates(distances, feature_neighbours, threshold)
        report_pairs(f"medmap, threshold {threshold} x median NN distance", pairs)
    report_pairs("cleanlab Datalab near_duplicate (default)", cleanlab_duplicate_pairs(features)[0])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
