"""Train t-SimCNE or SimCLR on an image collection: ``python train.py [-m] key=value ...``."""

import sys

import hydra

from medmap.console import unquoted_override_problem
from medmap.train import main as run


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg):
    return run(cfg)


if __name__ == "__main__":
    if problem := unquoted_override_problem(sys.argv[1:]):
        sys.exit(f"ERROR: {problem}")
    main()
