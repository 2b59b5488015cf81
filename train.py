"""Train t-SimCNE or SimCLR on an image collection: ``python train.py [-m] key=value ...``."""

import hydra

from medmap.train import main as run


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg):
    return run(cfg)


if __name__ == "__main__":
    main()
