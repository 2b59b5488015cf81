"""A native crash (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL in torch or oneDNN) kills the process
without a Python traceback and without Python's logging. ``faulthandler`` writes the Python stack
of every thread into the run's log file at that moment, so the run directory says where it died.
"""

from __future__ import annotations

import faulthandler
import logging
from pathlib import Path
from typing import IO

_trace_file: IO[str] | None = None  # kept open: faulthandler writes to its descriptor


def run_log_path(output_dir: Path) -> Path:
    """The file the root logger writes (Hydra's ``<run dir>/train.log``), else ``train.log``
    in ``output_dir`` (a run started from Python without Hydra's logging)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return Path(handler.baseFilename)
    return output_dir / "train.log"


def trace_native_crashes(output_dir: Path) -> Path:
    """Send the Python stacks of a native crash to the run's log; returns that file."""
    global _trace_file
    path = run_log_path(output_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _trace_file is not None:
        _trace_file.close()
    _trace_file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the process's life)
    faulthandler.enable(file=_trace_file, all_threads=True)
    return path
