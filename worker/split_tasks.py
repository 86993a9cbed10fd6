"""A store job's tasks: the plan task's quote pass, and one task per input split.

A split task streams its byte range (or row group) from the artifact store, scores its rows
through the process's batcher a batch at a time (at most two batches in flight), writes the
part to a local temporary file, uploads it under a temporary name and renames it to
``part-<split>.<ext>`` (the rejected rows to ``_rejected/part-<split>.jsonl``): memory stays
bounded whatever the split's size, and a reader never sees half a part. Only then is the
split recorded in Redis (spamq/jobs/store_jobs.py), once; the job's last split writes ``_SUCCESS``
(row counts, model version, the input's fingerprint) before the job reads ``done``. A task
that dies leaves no part; its redelivery (or the sweeper's re-send) scores the split again.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import socket
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from spamq.jobs.schema import CANCELLED, EXPIRED, FAILED
from spamq.jobs.store import JobNotFound, JobStore
from spamq.jobs.store_jobs import REJECTED_DIR, SUCCESS, StoreJobs, part_name
from spamq.storage import splits as input_splits
from spamq.storage.artifacts import ArtifactStore
from worker import resilience

logger = logging.getLogger(__name__)

RESULT_FIELDS = ["label", "spam_probability", "truncated", "model_version"]
_BATCH_ROWS = 256  # rows handed to the batcher at a time (it packs them into passes)
_CHECK_EVERY_S = 0.5  # progress, cancellation and deadline checks while a split runs


# Parquet types of the columns every part has (the id and kept columns take their values').
_PART_TYPES = {"file": "int64", "ref": "int64", "label": "string", "spam_probability": "double",
               "truncated": "bool", "model_version": "string"}
_TEMP_NAME = re.compile(r"part-(?P<host>[A-Za-z0-9.-]+)-(?P<pid>[0-9]+)-")


def temp_dir() -> str:
    """Where parts are written before their upload: ``$TMPDIR/spamq-parts``, named
    ``part-<host>-<pid>-...`` so that a worker starting on the same host can tell a dead
    process's leftovers (:func:`clean_stale_parts`)."""
    path = os.path.join(tempfile.gettempdir(), "spamq-parts")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"


def clean_stale_parts(directory: str | None = None) -> int:
    """Delete the temporary parts that processes of this host no longer running left
    behind (a worker killed mid-split); another host's, or a live process's, are kept.
    Returns how many were deleted."""
    directory = directory or temp_dir()
    host, removed = _host(), 0
    for name in os.listdir(directory):
        m = _TEMP_NAME.match(name)
        if m is None or m["host"] != host or _alive(int(m["pid"])):
            continue
        try:
            os.unlink(os.path.join(directory, name))
            removed += 1
        except FileNotFoundError:
            pass
    if removed:
        logger.info("deleted %d temporary part file(s) of dead processes", removed)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class PartWriter:
    """Rows to a local temporary file as JSONL, CSV or Parquet (in row batches)."""

    def __init__(self, fmt: str, columns: list[str], tmpdir: str | None = None) -> None:
        self.fmt, self.columns, self.rows = fmt, columns, 0
        fd, self.path = tempfile.mkstemp(prefix=f"part-{_host()}-{os.getpid()}-",
                                         dir=tmpdir or temp_dir())
        os.close(fd)
        self._fh: Any = None
        self._pending: list[dict[str, Any]] = []
        self._pq: Any = None
        if fmt == "parquet":
            return
        self._fh = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        if fmt == "csv":
            self._csv = csv.DictWriter(self._fh, fieldnames=columns, extrasaction="ignore")
            self._csv.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        self.rows += 1
        if self.fmt == "jsonl":
            self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif self.fmt == "csv":
            self._csv.writerow(row)
        else:
            self._pending.append(row)
            if len(self._pending) >= 8192:
                self._flush_parquet()

    def _flush_parquet(self) -> None:
        """The pending rows as a row group. The schema comes from the first batch: a column
        with no value there (or mixed types) is a string column, so a later value is kept,
        not refused."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows, self._pending = self._pending, []
        if not rows:
            return
        if self._pq is None:
            fields = [pa.field(c, _PART_TYPES.get(c) or _infer([r.get(c) for r in rows]))
                      for c in self.columns]
            self._pq = pq.ParquetWriter(self.path, pa.schema(fields))
        schema = self._pq.schema
        self._pq.write_table(pa.Table.from_arrays(
            [_column([r.get(f.name) for r in rows], f.type) for f in schema], schema=schema))

    def close(self) -> None:
        if self.fmt == "parquet":
            self._flush_parquet()
            if self._pq is not None:
                self._pq.close()
        else:
            self._fh.close()

    def discard(self) -> None:
        try:
            self.close()
        finally:
            if os.path.exists(self.path):
                os.unlink(self.path)


def _infer(values: list[Any]) -> Any:
    import pyarrow as pa

    try:
        found = pa.array(values).type
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.string()
    return pa.string() if pa.types.is_null(found) else found


def _column(values: list[Any], type_: Any) -> Any:
    import pyarrow as pa

    try:
        return pa.array(values, type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if not pa.types.is_string(type_):
            raise
        return pa.array([v if v is None or isinstance(v, str) else json.dumps(v)
                         for v in values], type=type_)


def commit(artifacts: ArtifactStore, local: str, path: str) -> None:
    """Upload ``local`` under a temporary sibling name, then rename it over ``path``."""
    tmp = f"{PurePosixPath(path).parent}/.tmp-{uuid.uuid4().hex}"
    artifacts.upload_file(Path(local), tmp)
    try:
        artifacts.rename(tmp, path, overwrite=True)
    except BaseException:
        artifacts.delete(tmp)
        raise


class SplitScorer:
    """Scores one split of a store job; the task in worker/tasks.py wires it up."""

    def __init__(self, jobs: JobStore, artifacts: ArtifactStore, scorer: Any, *,
                 max_chars: int, holder: str = "", lease_s: float = 10.0,
                 leases: resilience.LeaseBook | None = None,
                 send_next: Callable[[int], None] | None = None,
                 batch_bytes: int = input_splits.BATCH_BYTES, max_attempts: int = 3,
                 max_rejected: int = 100_000) -> None:
        self.jobs, self.store_jobs, self.artifacts = jobs, StoreJobs(jobs), artifacts
        self.scorer, self.max_chars, self.holder = scorer, max_chars, holder
        self.lease_s, self.leases, self.send_next = lease_s, leases, send_next
        self.batch_bytes, self.max_attempts = batch_bytes, max_attempts
        self.max_rejected = max_rejected

    def run(self, job_id: str, index: int) -> bool:
        """Score split ``index`` and commit its part once; False if there was nothing to do."""
        try:
            with resilience.chunk_lease(self.jobs, job_id, index, ttl_s=self.lease_s,
                                        holder=self.holder, book=self.leases) as fresh:
                if not fresh:
                    return False
                return self._run(job_id, index)
        except JobNotFound:
            logger.warning("job %s: gone (expired or deleted); split %d dropped", job_id, index)
            return False

    def _stopped(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        if job.status in (CANCELLED, EXPIRED, FAILED):
            return True
        return resilience.past_deadline(self.jobs, job_id, job.deadline)

    def _fail(self, job_id: str, reason: str) -> None:
        if self.jobs.fail(job_id, reason):
            logger.warning("job failed: %s", reason, extra={"job_id": job_id})

    def _changed(self, job_id: str, file: input_splits.InputFile, file_index: int) -> bool:
        """True (and the job failed) if ``file`` is no longer the size and mtime it had when
        the job was planned: its splits' byte ranges would miss or cut rows."""
        st = self.artifacts.stat(file.path)
        if st is not None and st.type == "file" and (st.size, st.mtime) == (file.size,
                                                                             file.mtime):
            return False
        self._fail(job_id, f"input changed: file {file_index} is not the size and time it "
                   "had at submission; submit a new job (to a new hdfs_output) to score it "
                   "as it is now")
        return True

    def _run(self, job_id: str, index: int) -> bool:
        if self._stopped(job_id):
            logger.info("job %s: split %d skipped (%s)", job_id, index,
                        self.jobs.get(job_id).status)
            return False
        attempts = self.store_jobs.attempt(job_id, index)
        if attempts > self.max_attempts:  # the earlier ones died with their worker (OOM?)
            self.store_jobs.forget_attempts(job_id, index)  # a resumed job tries afresh
            n = self.max_attempts
            self._fail(job_id, f"split {index} failed after {n} attempt{'s' * (n != 1)} "
                       "(the worker died while scoring it)")
            return False
        self.jobs.mark_running(job_id)
        found = self.store_jobs.split(job_id, index)
        if found is None:
            raise JobNotFound(job_id)
        file_rec, split_rec = found
        spec = self.store_jobs.spec(job_id)
        file, split = input_splits.InputFile(**file_rec), input_splits.Split(**split_rec)
        if self._changed(job_id, file, split.file):
            return False
        parities = spec.get("parities") or []
        records = input_splits.read_split(
            self.artifacts, file, split, header=spec.get("header"), column=spec["column"],
            id_column=spec.get("id_column"), keep_columns=tuple(spec.get("keep_columns") or ()),
            in_quotes=bool(parities[index]) if index < len(parities) else False,
            max_chars=self.max_chars, batch_bytes=self.batch_bytes)
        out_fmt = spec.get("output_format", "jsonl")
        extra_cols = ([spec["id_column"]] if spec.get("id_column") else []) + list(
            spec.get("keep_columns") or [])
        part = PartWriter(out_fmt, [*extra_cols, "file", "ref", *RESULT_FIELDS])
        rejected = PartWriter("jsonl", [])
        try:
            version = self._score(job_id, index, split.file, records, part, rejected)
            if version is None:  # cancelled, past its deadline or failed meanwhile
                return False
            if self._changed(job_id, file, split.file):  # while it was read
                return False
            part.close()
            rejected.close()
            output = self.jobs.get(job_id).output
            commit(self.artifacts, part.path, f"{output}/{part_name(index, out_fmt)}")
            if rejected.rows:
                commit(self.artifacts, rejected.path,
                       f"{output}/{REJECTED_DIR}/{part_name(index, 'jsonl')}")
        finally:
            part.discard()
            rejected.discard()
        outcome, nxt = self.store_jobs.split_done(
            job_id, index, rows=part.rows, rejected=rejected.rows, nbytes=split.length,
            model_version=version, worker=self.holder)
        if nxt is not None and self.send_next is not None:
            self.send_next(nxt)
        if outcome == 2:
            self.finish(job_id)
        logger.info("split %d: %d rows, %d rejected", index, part.rows, rejected.rows,
                    extra={"job_id": job_id})
        return outcome > 0

    def _score(self, job_id: str, index: int, file_index: int,
               records: Iterable[Any], part: PartWriter, rejected: PartWriter) -> str | None:
        """Score ``records`` into ``part`` and ``rejected``; the model version, or None if the
        job was cancelled or its deadline passed meanwhile."""
        in_flight: deque[tuple[list[Any], Any]] = deque()
        batch: list[Any] = []
        batch_bytes = 0
        version = ""
        checked = time.monotonic()

        def drain(limit: int) -> None:
            nonlocal version
            while len(in_flight) > limit:
                rows, future = in_flight.popleft()
                results, v = resilience.score_isolating_failures(
                    self.scorer, [r.text for r in rows], future, interactive=False)
                version = version or v
                for record, result in zip(rows, results, strict=True):
                    part.write({**record.extra, "file": file_index, "ref": record.ref, **result})

        for record in records:
            if record.problem is not None:
                rejected.write({**record.extra, "file": file_index, "ref": record.ref,
                                "reason": record.problem})
                if rejected.rows > self.max_rejected:
                    drain(0)
                    self._fail(job_id, f"split {index}: more than {self.max_rejected} "
                               "rejected rows; is `column` right?")
                    return None
            else:
                batch.append(record)
                batch_bytes += len(record.text.encode("utf-8", "surrogatepass"))
            if len(batch) >= _BATCH_ROWS or (batch and batch_bytes >= self.batch_bytes):
                in_flight.append((batch, self.scorer.submit([r.text for r in batch],
                                                            interactive=False)))
                batch, batch_bytes = [], 0
                drain(1)  # two batches in flight: the next is parsed while one is scored
            if time.monotonic() - checked > _CHECK_EVERY_S:  # also while rows are rejected
                checked = time.monotonic()
                if self._stopped(job_id):
                    drain(0)
                    return None
                self.store_jobs.progress(job_id, index, part.rows + rejected.rows)
        if batch:
            in_flight.append((batch, self.scorer.submit([r.text for r in batch],
                                                        interactive=False)))
        drain(0)
        return version  # "" when the split held no row to score

    def finish(self, job_id: str) -> None:
        """Every split committed: ``_SUCCESS`` with the counts and the input's fingerprint,
        then the job is done (so a client that sees ``done`` finds ``_SUCCESS``)."""
        job = self.jobs.get(job_id)
        files = self.store_jobs.files(job_id)
        success = {
            "job_id": job.id, "input_rows": job.done + job.rejected, "output_rows": job.done,
            "rejected_rows": job.rejected, "model_version": job.model_version,
            "splits": job.chunks_total,
            "inputs": [{"path": f["path"], "size": f["size"], "mtime": f["mtime"]}
                       for f in files],
        }
        self.artifacts.write_bytes_atomic(f"{job.output}/{SUCCESS}",
                                          json.dumps(success, indent=1).encode())
        self.jobs.output_done(job_id)
        logger.info("output complete: %d rows, %d rejected", job.done, job.rejected,
                    extra={"job_id": job_id})


def plan_quotes(jobs: JobStore, artifacts: ArtifactStore, job_id: str) -> list[bool]:
    """The quote pass: the parity of ``"`` bytes before each split's start, within its file
    (streamed, one split at a time; only uncompressed CSV/TSV files are read)."""
    store_jobs = StoreJobs(jobs)
    files = [input_splits.InputFile(**f) for f in store_jobs.files(job_id)]
    plan = [input_splits.Split(**rec) for rec in store_jobs.splits(job_id)]
    counts = [input_splits.quote_count(artifacts, files[s.file], s)
              if input_splits.needs_quote_count(files[s.file]) else 0 for s in plan]
    parities = input_splits.quote_parity(plan, counts)
    store_jobs.set_parities(job_id, parities)
    return parities


def plan_job(jobs: JobStore, artifacts: ArtifactStore, job_id: str, *, split_bytes: int,
             max_splits: int, footers_max_files: int) -> bool:
    """Plan a job marked planning (its Parquet footers were too large for the request): check
    its columns, read the footers, store at most ``max_splits`` splits. False if it was
    planned already (or is gone). An unreadable input raises InputError: the job fails."""
    store_jobs = StoreJobs(jobs)
    if not store_jobs.planning(job_id):
        return False
    files = [input_splits.InputFile(**f) for f in store_jobs.files(job_id)]
    spec = store_jobs.spec(job_id)
    input_splits.sniff(artifacts, files[0], column=spec["column"],
                       id_column=spec.get("id_column"),
                       keep_columns=tuple(spec.get("keep_columns") or ()))
    plan = input_splits.plan_job_input(artifacts, files, split_bytes=split_bytes,
                                       max_splits=max_splits,
                                       footers_max_files=footers_max_files)
    if not store_jobs.store_plan(job_id, plan):
        return False
    logger.info("planned: %d file(s), %d split(s)", len(files), len(plan),
                extra={"job_id": job_id})
    if not plan:  # nothing to score: the job is done, its _SUCCESS says so
        jobs.mark_running(job_id)
        SplitScorer(jobs, artifacts, None, max_chars=0).finish(job_id)
    return True
