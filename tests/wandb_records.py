"""Reads the records of an offline wandb run file (``run-<id>.wandb``) for the tests.

The file is a LevelDB-style log: a 7-byte header, then 32 KiB blocks of chunks, each chunk
a (crc32, length, type) header and a piece of a serialised ``wandb_internal_pb2.Record``.
wandb ships no reader for it any more, so the tests carry this one.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

from google.protobuf.message import DecodeError
from wandb.proto import wandb_internal_pb2

FILE_HEADER = struct.Struct("<4sHB")  # b":W&B", magic 0xBEE1, version
CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type
BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list[wandb_internal_pb2.Record]:
    data = Path(path).read_bytes()
    ident, _, _ = FILE_HEADER.unpack_from(data)
    assert ident == b":W&B", f"{path} is not a wandb run file"
    records, pending, offset = [], b"", FILE_HEADER.size
    while offset + CHUNK_HEADER.size <= len(data):
        room = BLOCK - offset % BLOCK
        if room < CHUNK_HEADER.size:  # the block's tail is padding
            offset += room
            continue
        _, length, kind = CHUNK_HEADER.unpack_from(data, offset)
        offset += CHUNK_HEADER.size
        piece = data[offset : offset + length]
        offset += length
        if (kind == 0 and length == 0) or len(piece) < length:  # the end, or a chunk half written
            break
        pending = piece if kind in (FULL, FIRST) else pending + piece
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def finished_records(path: Path, timeout: float = 60.0) -> list[wandb_internal_pb2.Record]:
    """The records once the run's ``exit`` record is on disk: wandb's service writes the file
    in the background and may still be flushing when ``finish()`` has returned (seen once in
    CI: a file read right after the run held no history yet; another time a record was read
    half written)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = read_records(path)
        except (DecodeError, struct.error):  # read while being written (seen in CI): again
            records = []
        if any(record.WhichOneof("record_type") == "exit" for record in records):
            return records
        assert time.monotonic() < deadline, f"{path} has no exit record after {timeout} s"
        time.sleep(0.5)


def history_keys(records) -> set[str]:
    return {
        item.key or "/".join(item.nested_key)
        for record in records
        if record.WhichOneof("record_type") == "history"
        for item in record.history.item
    }
