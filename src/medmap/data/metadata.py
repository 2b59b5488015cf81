"""Per-image metadata from a csv (e.g. HAM10000's ``image_id, dx, age, sex, localization``),
joined onto a collection by each image's id, and optionally its classes (``label_column``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from medmap.data.collection import ImageCollection
from medmap.errors import UserFacingError

log = logging.getLogger(__name__)
MISSING_LABEL = "(no label)"


def id_forms(image_id: str) -> tuple[str, ...]:
    """The ways a metadata file may name an image with this id: the relative path, the path
    without its extension, the file name, the file name without extension."""
    path = PurePosixPath(image_id)
    return (image_id, str(path.with_suffix("")), path.name, path.stem)


def read_metadata(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserFacingError(
            f"dataset.metadata={path} does not exist: give a csv file with one row per image."
        )
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        message = f"dataset.metadata={path} is not a readable csv ({error})."
        raise UserFacingError(message) from error
    if table.empty:
        raise UserFacingError(f"dataset.metadata={path} holds no rows.")
    return table


def key_column(table: pd.DataFrame, ids: np.ndarray, key: str | None) -> tuple[str, int]:
    """The column naming the images (``key``, or the one that matches the most ids in any of
    the ``id_forms``) and which form it uses."""
    forms = [np.array([id_forms(i)[form] for i in ids]) for form in range(4)]
    candidates = [key] if key else list(table.columns)
    missing = [c for c in candidates if c not in table.columns]
    if missing:
        raise UserFacingError(
            f"dataset.metadata_key={key!r} is not a column of the metadata; its columns are "
            f"{list(table.columns)}."
        )
    best = max(
        (
            (np.isin(forms[form], table[c].to_numpy()).sum(), c, form)
            for c in candidates
            for form in range(4)
        ),  # fmt: skip
    )
    matched, column, form = best
    if matched == 0:
        raise UserFacingError(
            f"No metadata row names any image: the images' ids look like {ids[0]!r} (the path "
            f"relative to dataset.root), but no column{' ' + repr(key) if key else ''} holds "
            "such paths, or those paths without extension, or the bare file names. Set "
            "dataset.metadata_key=<column> to the column that names the files."
        )
    return column, form


def join_metadata(
    collection: ImageCollection,
    path: str | os.PathLike,
    key: str | None = None,
    label_column: str | None = None,
) -> ImageCollection:
    """``collection`` with the csv's columns as metadata (images without a row get ''), and
    with its classes taken from ``label_column`` when given."""
    table = read_metadata(path)
    column, form = key_column(table, collection.ids, key)
    if table[column].duplicated().any():
        repeated = table[column][table[column].duplicated()].iloc[0]
        raise UserFacingError(
            f"dataset.metadata: the key column {column!r} names {repeated!r} more than once; "
            "each image needs one row."
        )
    rows = table.set_index(column)
    names = [id_forms(i)[form] for i in collection.ids]
    found = np.isin(names, rows.index.to_numpy())
    if not found.all():
        log.warning(
            "dataset.metadata: %d of %d images have no row in %s (e.g. %s); their values are empty",
            (~found).sum(),
            len(found),
            path,
            collection.ids[~found][0],
        )
    aligned = rows.reindex(names).fillna("")
    metadata = {**collection.metadata, **{c: aligned[c].to_numpy() for c in aligned.columns}}
    log.info("dataset.metadata: %d columns joined on %r", len(aligned.columns), column)
    if not label_column:
        return collection.replace(metadata=metadata)
    if label_column not in aligned.columns:
        raise UserFacingError(
            f"dataset.label_column={label_column!r} is not a column of {path}; its columns "
            f"are {[c for c in table.columns if c != column]}."
        )
    values = np.where(aligned[label_column].to_numpy() == "", MISSING_LABEL, aligned[label_column])
    class_names = sorted(set(values.tolist()))
    index = {name: i for i, name in enumerate(class_names)}
    log.info("Classes from the metadata column %r: %s", label_column, ", ".join(class_names))
    return collection.replace(
        labels=np.array([index[v] for v in values], dtype=np.int64),
        class_names=class_names,
        labeled=True,
        metadata=metadata,
    )
