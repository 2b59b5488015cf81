"""Train t-SimCNE or SimCLR on an image collection: ``python train.py [-m] key=value ...``
(installed: ``medmap-train``)."""

from medmap.cli import train

if __name__ == "__main__":
    train()
