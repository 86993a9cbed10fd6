"""A store job's results and rejected rows, streamed from its committed part files.

Redis knows only which parts are committed and how many rows each holds
(spamq/jobs/store_jobs.py), so a page at ``offset`` opens just the parts it spans, and a
download streams the parts in split order, one at a time. Parts committed so far are
readable while the job runs; rows of parts not committed yet are absent.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from spamq.jobs.store_jobs import REJECTED_DIR, StoreJobs, part_name
from spamq.storage.artifacts import ArtifactStore


def _rows(artifacts: ArtifactStore, path: str, fmt: str) -> Iterator[dict[str, Any]]:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        with artifacts.open_range(path, 0) as fh:
            table = pq.read_table(io.BytesIO(fh.read()))  # one part: at most a split's rows
        yield from table.to_pylist()
        return
    with artifacts.open_range(path, 0) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        if fmt == "csv":
            yield from csv.DictReader(text)
        else:
            for line in text:
                if line.strip():
                    yield json.loads(line)


def parts(store_jobs: StoreJobs, job_id: str, fmt: str) -> list[dict[str, Any]]:
    """The committed parts: split, file name, rows, rejected rows."""
    return [{"split": i, "name": part_name(i, fmt), "rows": rows, "rejected": rejected}
            for i, rows, rejected in store_jobs.committed(job_id)]


def results(artifacts: ArtifactStore, store_jobs: StoreJobs, job_id: str, output: str, *,
            offset: int, limit: int | None) -> Iterator[dict[str, Any]]:
    """Rows ``[offset, offset + limit)`` of the committed parts, in split order."""
    fmt = store_jobs.spec(job_id).get("output_format", "jsonl")
    skip, left = offset, limit
    for index, rows, _ in store_jobs.committed(job_id):
        if skip >= rows:
            skip -= rows
            continue
        for row in _rows(artifacts, f"{output}/{part_name(index, fmt)}", fmt):
            if skip:
                skip -= 1
                continue
            if left is not None:
                if left == 0:
                    return
                left -= 1
            yield row
        if left == 0:
            return


def rejected(artifacts: ArtifactStore, store_jobs: StoreJobs, job_id: str,
             output: str) -> Iterator[dict[str, Any]]:
    for index, _, count in store_jobs.committed(job_id):
        if count:
            yield from _rows(artifacts, f"{output}/{REJECTED_DIR}/{part_name(index, 'jsonl')}",
                             "jsonl")
