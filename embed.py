"""Map new images into a trained run's map without retraining:

    python embed.py run=<run dir> dataset=bloodmnist dataset.splits=[test]

Any train.py dataset override selects the images. Writes embedding_new.npy, labels_new.npy,
embedding_new.png (new points over the faded map) and embedding_new.json into the run dir.
"""

import logging
import sys

from hydra.errors import HydraException

from medmap.console import unquoted_override_problem
from medmap.errors import UserFacingError
from medmap.out_of_sample import embed_into_run

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("run=")]
    if len(runs) != 1:
        sys.exit("Usage: python embed.py run=<run dir> dataset=<name> [dataset overrides]")
    overrides = [a for a in sys.argv[1:] if not a.startswith("run=")]
    if problem := unquoted_override_problem(overrides):
        sys.exit(f"ERROR: {problem}")
    try:
        result = embed_into_run(runs[0], overrides)
    except (UserFacingError, HydraException) as error:
        sys.exit(f"ERROR: {error}")
    score = result["knn_acc_against_map"]
    print(
        f"Embedded {result['n_new']} images into {result['run']}"
        + (f"; kNN acc. against the map: {score:.1f}%" if score is not None else "")
    )
