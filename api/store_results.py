"""A store job's results and rejected rows, streamed from its committed part files.

Redis knows only which parts are committed and how many rows each holds
(spamq/jobs/store_jobs.py), so a page at ``offset`` opens just the parts it spans, and a
download streams the parts in split order, one at a time. Parts committed so far are
readable while the job runs; rows of parts not committed yet are absent.

A part is the key's own file in the store, so it may have been changed after the worker wrote
it. It is read defensively: a line that is not UTF-8, not a JSON object, nested too deep or
longer than ``MAX_LINE_BYTES``, a part that is missing, or one holding more or fewer rows than
Redis recorded at its commit, is :class:`OutputChanged` (a 409): the answer never holds rows
the worker did not write, and skipping the bad ones would hand back a page that silently
lacks rows. A download already under way when it meets such a part stops there, cut short
(no final chunk), so the client cannot take it for whole.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any

from spamq.errors import SpamqError
from spamq.jobs.store_jobs import REJECTED_DIR, StoreJobs, part_name
from spamq.storage.artifacts import ArtifactNotFound, ArtifactStore

logger = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024 * 1024  # a row of a part: the longest an output line may be


class OutputChanged(SpamqError):
    """A committed part does not read as the worker wrote it."""

    http_status = 409
    code = "output_changed"
    public_message = ("the job's output was changed after it was written (a part file is "
                      "missing, unreadable or holds other rows); its results cannot be read")


def _json_lines(fh: Any) -> Iterator[dict[str, Any]]:
    while line := fh.readline(MAX_LINE_BYTES + 1):
        if len(line) > MAX_LINE_BYTES:
            raise OutputChanged("a part line is longer than MAX_LINE_BYTES")
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise OutputChanged(f"a part line is not UTF-8 JSON: {type(exc).__name__}") from exc
        if not isinstance(row, dict):
            raise OutputChanged("a part line is not a JSON object")
        yield row


def _read(artifacts: ArtifactStore, path: str, fmt: str) -> Iterator[dict[str, Any]]:
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        with artifacts.open_range(path, 0) as fh:
            try:  # one part: at most a split's rows
                table = pq.read_table(io.BytesIO(fh.read()))
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise OutputChanged(f"a part is not Parquet: {type(exc).__name__}") from exc
        yield from table.to_pylist()
        return
    with artifacts.open_range(path, 0) as fh:
        if fmt != "csv":
            yield from _json_lines(fh)
            return
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        try:
            for row in csv.DictReader(text):
                if None in row:  # more fields than the header names
                    raise OutputChanged("a part row has more fields than its header")
                yield row
        except (UnicodeDecodeError, csv.Error) as exc:
            raise OutputChanged(f"a part is not UTF-8 CSV: {type(exc).__name__}") from exc


def _rows(artifacts: ArtifactStore, path: str, fmt: str, count: int) -> Iterator[dict[str, Any]]:
    """The part's rows: exactly ``count`` of them (its committed row count), else
    OutputChanged before a row past the count is given."""
    seen = 0
    try:
        for row in _read(artifacts, path, fmt):
            seen += 1
            if seen > count:
                raise OutputChanged(f"a part holds more than its {count} committed rows")
            yield row
    except ArtifactNotFound as exc:
        raise OutputChanged("a committed part is missing") from exc
    if seen != count:
        raise OutputChanged(f"a part holds {seen} of its {count} committed rows")


def parts(store_jobs: StoreJobs, job_id: str, fmt: str) -> list[dict[str, Any]]:
    """The committed parts: split, file name, rows, rejected rows."""
    return [{"split": i, "name": part_name(i, fmt), "rows": rows, "rejected": rejected}
            for i, rows, rejected in store_jobs.committed(job_id)]


def primed(chunks: Iterator[str]) -> Iterator[str]:
    """``chunks`` with its first one read now: a download whose first part is unreadable is
    answered 409 before its 200 is sent (a later one cuts the download short)."""
    first = next(chunks, None)
    return chunks if first is None else itertools.chain([first], chunks)


def results(artifacts: ArtifactStore, store_jobs: StoreJobs, job_id: str, output: str, *,
            offset: int, limit: int | None) -> Iterator[dict[str, Any]]:
    """Rows ``[offset, offset + limit)`` of the committed parts, in split order."""
    fmt = store_jobs.spec(job_id).get("output_format", "jsonl")
    skip, left = offset, limit
    for index, rows, _ in store_jobs.committed(job_id):
        if skip >= rows:
            skip -= rows
            continue
        for row in _rows(artifacts, f"{output}/{part_name(index, fmt)}", fmt, rows):
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
                             "jsonl", count)
