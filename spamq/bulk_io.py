"""Jobs whose input and output are files in the artifact store (HDFS, or the local store).

Input: the API reads ``hdfs_input`` and parses it like an upload. Output: every stored chunk
becomes ``<output>/part-<index:05d>.jsonl`` (written to a temporary name, then renamed: a
reader never sees half a part); when the last part is written, ``_REJECTED.jsonl`` and then
``_SUCCESS`` (JSON counts) are written. Input rows = rows in the parts + rejected rows.
Such a job becomes ``done`` only after every part and then ``_SUCCESS`` are written, so a
client that sees ``done`` finds ``_SUCCESS`` (spamq/jobs.py _PART_WRITTEN, _OUTPUT_DONE; a job
with no row left to score is done at once, its markers follow). A part write that fails after
its retries fails the job, and a resubmission with the same Idempotency-Key re-sends the
chunks whose part is missing.

Paths are store paths: a leading "/" is dropped, so "/data/in.csv" is ``data/in.csv`` under
the store's root (``hdfs_root`` for HDFS); ".." is refused.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from spamq.artifacts import ArtifactError, ArtifactStore, _clean
from spamq.jobs import Job, JobStore
from spamq.retry import retry

logger = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
REJECTED = "_REJECTED.jsonl"


def store_path(path: str) -> str:
    """A user-given path as a store path (ValueError if it is unusable or escapes the root).

    The ValueError messages never quote the path: it may be huge or hold control characters.
    """
    path = path if isinstance(path, str) else ""
    try:
        size = len(path.encode())
    except UnicodeEncodeError:
        raise ValueError("a path that is not valid Unicode (a lone surrogate)") from None
    if size > 1024:
        raise ValueError("a path longer than 1024 bytes")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in path):
        raise ValueError("a path with a NUL or other control character")
    if any(len(part.encode()) > 255 for part in path.split("/")):
        raise ValueError("a path with a component longer than 255 bytes")
    if ".." in path.split("/"):
        raise ValueError("a path with a '..' part (paths stay under the store root)")
    rel = _clean(path.lstrip("/"))
    if not rel:
        raise ValueError("an empty path or the store root itself")
    return rel


def part_name(index: int) -> str:
    return f"part-{index:05d}.jsonl"


def part_path(output: str, index: int) -> str:
    return str(PurePosixPath(output) / part_name(index))


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def write_retrying(artifacts: ArtifactStore, path: str, data: bytes, *, attempts: int,
                   backoff_s: float, backoff_max_s: float,
                   sleep: Callable[[float], None] = time.sleep) -> None:
    """Atomic write (temp + rename), retried with bounded exponential backoff on store errors."""
    retry(lambda: artifacts.write_bytes_atomic(path, data), retry_on=ArtifactError,
          attempts=attempts, first_delay_s=backoff_s, max_delay_s=backoff_max_s,
          what=f"write {path}", sleep=sleep)


def write_part(artifacts: ArtifactStore, store: JobStore, job_id: str, index: int, start: int,
               stop: int, *, retry: dict[str, float]) -> None:
    """Write chunk ``index``'s part file; the last part of a done job also writes the markers."""
    job = store.get(job_id)
    if not job.output:
        return
    rows = store.result_rows(job, start, stop)
    write_retrying(artifacts, part_path(job.output, index), _jsonl(rows), **retry)
    if store.part_written(job_id, index):
        finish_output(artifacts, store, job_id, retry=retry)


def finish_output(artifacts: ArtifactStore, store: JobStore, job_id: str, *,
                  retry: dict[str, float]) -> None:
    """Every part is written: the markers (unless already there), then the job is done.

    A crash in between leaves the job running and the chunk's message unacked; its
    redelivery finds the parts written and comes back here.
    """
    job = store.get(job_id)
    if not artifacts.exists(str(PurePosixPath(job.output) / SUCCESS)):
        write_markers(artifacts, store, job, retry=retry)
    store.output_done(job_id)


def write_markers(artifacts: ArtifactStore, store: JobStore, job: Job, *,
                  retry: dict[str, float]) -> None:
    """``_REJECTED.jsonl``, then ``_SUCCESS``: its presence means the output is complete."""
    write_retrying(artifacts, str(PurePosixPath(job.output) / REJECTED),
                   _jsonl(store.rejected(job.id)), **retry)
    success = {"job_id": job.id, "input_rows": job.input_rows, "output_rows": job.total,
               "rejected_rows": job.rejected}
    write_retrying(artifacts, str(PurePosixPath(job.output) / SUCCESS),
                   json.dumps(success).encode(), **retry)
    logger.info("job %s: output complete in %s/%s", job.id, artifacts.describe(), job.output)


def retry_options(settings: Any) -> dict[str, float]:
    return {"attempts": settings.output_write_attempts,
            "backoff_s": settings.output_write_backoff_s,
            "backoff_max_s": settings.output_write_backoff_max_s}
