"""Map new images into a trained run's map without retraining (installed: ``medmap-embed``):

    python embed.py run=<run dir> dataset=bloodmnist dataset.splits=[test]

Any train.py dataset override selects the images. Writes embedding_new.npy, labels_new.npy,
embedding_new.png (new points over the faded map) and embedding_new.json into the run dir.
"""

from medmap.cli import embed

if __name__ == "__main__":
    embed()
