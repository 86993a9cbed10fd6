"""A store job's rows before any of its splits is read: what the key's quota counts for it
(api/limits.py) until its scored splits measure rows per input byte (schema.ADMISSION).

Uncompressed text: its bytes over ``bytes_per_row``. Compressed files (.gz, .bz2, Parquet):
their bytes times ``expansion``; a .gz file also says its uncompressed size (mod 2^32) in its
last four bytes (RFC 1952 ISIZE), read for the first ``trailers_max`` of them, and the larger
of the two counts. A crafted file can understate its ISIZE (several members, or past 4 GiB),
so it only ever raises the estimate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from spamq.storage.artifacts import ArtifactError, ArtifactStore
from spamq.storage.splits import InputFile

logger = logging.getLogger(__name__)


def gz_size(store: ArtifactStore, file: InputFile) -> int:
    """The uncompressed size a .gz file states (0 if unreadable or too short)."""
    if file.size < 18:  # a gzip member has a 10-byte header and an 8-byte trailer
        return 0
    try:
        with store.open_range(file.path, file.size - 4, 4) as fh:
            tail = fh.read(4)
    except (ArtifactError, OSError) as exc:
        logger.warning("a .gz trailer not read for the estimate: %s", type(exc).__name__)
        return 0
    return int.from_bytes(tail, "little") if len(tail) == 4 else 0


def estimate_rows(store: ArtifactStore | None, files: Sequence[InputFile], *,
                  bytes_per_row: int, expansion: float, trailers_max: int = 32) -> int:
    """The rows of ``files``, estimated (see the module docstring); ``store`` None: no
    trailer is read."""
    total, trailers = 0.0, 0
    for f in files:
        size = float(f.size)
        if f.compression or f.fmt == "parquet":
            size *= expansion
            if f.compression == "gz" and store is not None and trailers < trailers_max:
                trailers += 1
                size = max(size, float(gz_size(store, f)))
        total += size
    return int(total // max(1, bytes_per_row))
