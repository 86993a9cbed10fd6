"""A store job's tasks: the plan task's quote pass, and one task per input split.

A split task streams its byte range (or row group) from the artifact store, scores its rows
through the process's batcher a column batch at a time (a reader thread reads, parses and
tokenises the next batches while the model scores one; a bounded queue between), writes the
part to a local temporary file, uploads it under a temporary name and renames it to
``part-<split>.<ext>`` (the rejected rows to ``_rejected/part-<split>.jsonl``): memory stays
bounded whatever the split's size, and a reader never sees half a part. Only then is the
split recorded in Redis (spamq/jobs/store_jobs.py), once; the job's last split writes ``_SUCCESS``
(row counts, model version, the input's fingerprint) before the job reads ``done``. A task
that dies leaves no part; its redelivery (or the sweeper's re-send) scores the split again.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import queue
import re
import socket
import tempfile
import threading
import time
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from itertools import accumulate, compress, repeat
from json.encoder import encode_basestring
from operator import is_not, not_
from pathlib import Path, PurePosixPath
from typing import Any, cast

from spamq.jobs.schema import should_stop
from spamq.jobs.store import JobNotFound, JobStore
from spamq.jobs.store_jobs import REJECTED_DIR, SUCCESS, StoreJobs, part_name, success_record
from spamq.storage import splits as input_splits
from spamq.storage.artifacts import ArtifactStore
from worker import resilience
from worker.batcher import Scores

logger = logging.getLogger(__name__)

RESULT_FIELDS = ["label", "spam_probability", "truncated", "model_version"]
_BATCH_ROWS = 256  # rows handed to the batcher at a time (it packs them into passes)
_CHECK_EVERY_S = 0.5  # progress, cancellation and deadline checks while a split runs
_QUEUE_BATCHES = 2  # batches the reader thread may have read (and submitted) ahead


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
        self._pending_cols: dict[str, list[Any]] = {}  # write_columns' rows not yet written
        self._pending_n = 0
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

    def write_columns(self, data: dict[str, list[Any]]) -> None:
        """Rows given as columns (equal lengths), written exactly as :meth:`write` would
        write the rows ``dict(zip(data, values))``, but a column at a time: JSON values and CSV
        fields are made by C-level maps over each column (json's own string encoder,
        ``float.__repr__``) and joined into lines by one format per row, Parquet columns go
        to Arrow whole. A JSONL key whose value is None in :data:`SPARSE` is left out of
        that row (a failed row's ``error``)."""
        n = len(next(iter(data.values()), []))
        if not n:
            return
        self.rows += n
        if self.fmt == "parquet":
            for c in dict.fromkeys(self.columns):  # a writer takes rows or columns, not both
                self._pending_cols.setdefault(c, []).extend(data.get(c) or [None] * n)
            self._pending_n += n
            while self._pending_n >= 8192:
                self._flush_parquet()
            return
        if self.fmt == "jsonl":
            keys = [c for c in data if c not in SPARSE]
            template = "{" + ", ".join(f"{_percent(encode_basestring(c))}: %s"
                                       for c in keys) + "%s}\n"
            cells = [_json_cells(data[c]) for c in keys]
            cells.append(_sparse_tail(data, n))
        else:
            template = ",".join(["%s"] * len(self.columns)) + "\r\n"
            cells = [_csv_cells(data.get(c), n) for c in self.columns]
        self._fh.write("".join(map(template.__mod__, zip(*cells, strict=True))))

    def _flush_parquet(self) -> None:
        """The pending rows as a row group. The schema comes from the first batch: a column
        with no value there (or mixed types) is a string column, so a later value is kept,
        not refused."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._pending_n:  # columns: at most a row group (8192 rows) at a time
            k = min(self._pending_n, 8192)
            none = [None] * k
            cols = {c: v[:k] for c, v in self._pending_cols.items()}
            self._pending_cols = {c: v[k:] for c, v in self._pending_cols.items()}
            self._pending_n -= k
        else:
            rows, self._pending = self._pending, []
            if not rows:
                return
            none = [None] * len(rows)
            cols = {c: [r.get(c) for r in rows] for c in self.columns}
        if self._pq is None:
            fields = [pa.field(c, _PART_TYPES.get(c) or _infer(cols.get(c, none)))
                      for c in self.columns]
            self._pq = pq.ParquetWriter(self.path, pa.schema(fields))
        schema = self._pq.schema
        self._pq.write_table(pa.Table.from_arrays(
            [_column(cols.get(f.name, none), f.type) for f in schema], schema=schema))

    def close(self) -> None:
        if self.fmt == "parquet":
            self._flush_parquet()
            while self._pending_n:
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


SPARSE = ("error",)  # JSONL keys written only where the value is not None
_BOOL_JSON = {True: "true", False: "false", None: "null"}


def _percent(text: str) -> str:
    return text.replace("%", "%%")


def _json_cells(values: list[Any]) -> list[str]:
    """Each value as json.dumps(..., ensure_ascii=False) writes it inside a row: a column of
    strings, floats or ints in one C-level map; mixed or nested columns value by value."""
    if all(map(str.__instancecheck__, values)):
        return list(map(encode_basestring, values))
    if all(map(float.__instancecheck__, values)) and all(map(math.isfinite, values)):
        return list(map(float.__repr__, values))  # NaN and infinities: json's own words
    if all(map(int.__instancecheck__, values)):
        if not any(map(bool.__instancecheck__, values)):
            return list(map(int.__repr__, values))
        if all(map(bool.__instancecheck__, values)):  # a flag column (truncated)
            return list(map(_BOOL_JSON.__getitem__, values))
    return [_json_value(v) for v in values]


def _json_value(v: Any) -> str:
    if v is None or v is True or v is False:
        return _BOOL_JSON[v]
    if isinstance(v, str):
        return encode_basestring(v)
    return json.dumps(v, ensure_ascii=False)


def _sparse_tail(data: dict[str, list[Any]], n: int) -> list[str]:
    """Per row, the SPARSE keys that have a value, as ``, "key": value``."""
    tail = [""] * n
    for c in SPARSE:
        values = data.get(c)
        if values is None or not any(v is not None for v in values):
            continue
        key = f", {encode_basestring(c)}: "
        tail = [t if v is None else t + key + _json_value(v)
                for t, v in zip(tail, values, strict=True)]
    return tail


_CSV_SPECIAL = re.compile(r'[,"\r\n]')


def _csv_cells(values: list[Any] | None, n: int) -> list[str]:
    """Each value as csv's excel dialect writes it (QUOTE_MINIMAL): None empty, floats by
    repr, other values by str, quoted where they hold a comma, a quote or a line break."""
    if values is None:
        return [""] * n
    if all(map(str.__instancecheck__, values)):
        texts = values
    elif all(map(float.__instancecheck__, values)):
        return list(map(float.__repr__, values))  # never holds a special character
    elif all(map(int.__instancecheck__, values)):  # ints and bools: str, never special
        return list(map(str, values))
    else:
        texts = [_csv_text(v) for v in values]
    if not any(map(_CSV_SPECIAL.search, texts)):
        return texts
    return [_csv_quoted(t) for t in texts]


def _csv_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return float.__repr__(v)
    return str(v)


def _csv_quoted(t: str) -> str:
    return '"' + t.replace('"', '""') + '"' if _CSV_SPECIAL.search(t) else t


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
                 max_rejected: int = 100_000, shadow: Any = None) -> None:
        self.jobs, self.store_jobs, self.artifacts = jobs, StoreJobs(jobs), artifacts
        self.scorer, self.max_chars, self.holder = scorer, max_chars, holder
        self.lease_s, self.leases, self.send_next = lease_s, leases, send_next
        self.batch_bytes, self.max_attempts = batch_bytes, max_attempts
        self.max_rejected = max_rejected
        self.shadow = shadow  # worker/shadow.py's ShadowTap: the scored rows, once written

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
        job = self.jobs.jobs.get(job_id)
        if should_stop(job.status):
            return True
        return resilience.past_deadline(self.jobs, job_id, job.deadline)

    def _fail(self, job_id: str, reason: str) -> None:
        if self.jobs.jobs.fail(job_id, reason):
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
        # the job, the attempt count, the spec and the split's records: two round trips
        job, attempts, spec, file_rec, split_rec = self.store_jobs.split_start(job_id, index)
        if should_stop(job.status) or resilience.past_deadline(self.jobs, job_id,
                                                                job.deadline):
            self.store_jobs.undo_attempt(job_id, index)  # not an attempt: nothing was scored
            logger.info("job %s: split %d skipped (%s)", job_id, index,
                        self.jobs.jobs.status(job_id))
            return False
        if attempts > self.max_attempts:  # the earlier ones died with their worker (OOM?)
            self.store_jobs.forget_attempts(job_id, index)  # a resumed job tries afresh
            n = self.max_attempts
            self._fail(job_id, f"split {index} failed after {n} attempt{'s' * (n != 1)} "
                       "(the worker died while scoring it)")
            return False
        self.jobs.jobs.mark_running(job_id)
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
            output = job.output  # set when the job was created
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
        """Score ``records`` (a SplitRows: its column batches; any other iterable of Records:
        gathered into batches) into ``part`` and ``rejected``, a column batch at a time; the
        model version, or None if the job was cancelled, failed or its deadline passed.

        A pipeline: a reader thread reads, parses and tokenises (submits) batch N+1 while the
        model scores batch N; this thread writes the results. A queue of _QUEUE_BATCHES
        between them bounds what is read ahead."""
        batches = (records.batches() if isinstance(records, input_splits.SplitRows)
                   else _batched(records))
        items: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=_QUEUE_BATCHES)
        stop = threading.Event()
        reader = threading.Thread(target=self._read, args=(batches, file_index, items, stop),
                                  name="spamq-split-reader", daemon=True)
        reader.start()
        version = ""
        checked = time.monotonic()
        try:
            while True:
                try:
                    item = items.get(timeout=max(_CHECK_EVERY_S, 0.01))
                except queue.Empty:
                    item = (None,)
                kind = item[0]
                if kind == "end":
                    break
                if kind == "error":
                    raise item[1]
                if kind == "rejected":
                    rejected.write_columns(item[1])
                    if rejected.rows > self.max_rejected:
                        self._fail(job_id, f"split {index}: more than {self.max_rejected} "
                                   "rejected rows; is `column` right?")
                        return None
                elif kind == "rows":
                    cols, texts, future = item[1:]
                    results, v = self._results(texts, future)
                    version = version or v
                    part.write_columns({**cols, **results})
                    if self.shadow is not None:  # worker/shadow.py: queued, never waited on
                        self.shadow.offer_columns(texts, results)
                if time.monotonic() - checked > _CHECK_EVERY_S:  # also while rows are rejected
                    checked = time.monotonic()
                    if self._stopped(job_id):
                        return None
                    self.store_jobs.progress(job_id, index, part.rows + rejected.rows)
            return version  # "" when the split held no row to score
        finally:
            stop.set()
            while reader.is_alive():  # unblock its put; what it read is dropped
                with contextlib.suppress(queue.Empty):
                    items.get(timeout=0.05)

    def _read(self, batches: Iterator[input_splits.RowBatch], file_index: int,
              items: queue.Queue[tuple[Any, ...]], stop: threading.Event) -> None:
        """The reader thread: the split's batches, their rejected rows as they come and their
        rows to score cut into scorer batches (each submitted, so tokenised, before it is
        queued), then "end"; or the exception that stopped it (raised in the task)."""

        def put(item: tuple[Any, ...]) -> bool:
            while not stop.is_set():
                with contextlib.suppress(queue.Full):
                    items.put(item, timeout=0.05)
                    return True
            return False

        pending = _Pending()
        try:
            for batch in batches:
                if stop.is_set():
                    return
                bad = list(map(is_not, batch.problems, repeat(None)))
                if any(bad):
                    if not put(("rejected", {
                            **{c: list(compress(v, bad)) for c, v in batch.extra.items()},
                            "file": [file_index] * bad.count(True),
                            "ref": list(compress(batch.refs, bad)),
                            "reason": list(compress(batch.problems, bad))})):
                        return
                    good = list(map(not_, bad))
                    pending.add({c: list(compress(v, good)) for c, v in batch.extra.items()},
                                file_index, list(compress(batch.refs, good)),
                                list(compress(batch.texts, good)))
                elif len(batch):
                    pending.add(batch.extra, file_index, batch.refs, batch.texts)
                while (cut := pending.cut(_BATCH_ROWS, self.batch_bytes)) is not None:
                    if not put(("rows", *cut, self._submit(cut[1]))):
                        return
            if (rest := pending.rest()) is not None and not put(
                    ("rows", *rest, self._submit(rest[1]))):
                return
            put(("end",))
        except BaseException as exc:  # noqa: BLE001 - raised again in the task's thread
            put(("error", exc))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # the store's streams, in the thread that read them

    def _submit(self, texts: list[str]) -> Future:
        """Texts to the scorer: as columns where it can (the batcher's submit_scores)."""
        columns = getattr(self.scorer, "submit_scores", None)
        if columns is not None:
            return cast(Future, columns(texts, interactive=False))
        return cast(Future, self.scorer.submit(texts, interactive=False))

    def _results(self, texts: list[str], future: Future) -> tuple[dict[str, list[Any]], str]:
        """The result columns of a submitted batch and the model version. A failed pass is
        bisected (resilience.score_isolating_failures): its failing rows get an ``error``."""
        try:
            scores = future.result()
        except Exception:  # noqa: BLE001 - bisected below, the failing texts isolated
            scores = None
        if isinstance(scores, Scores):
            n = len(scores.probabilities)
            return {"label": scores.labels(), "spam_probability": scores.probabilities,
                    "truncated": scores.truncated, "model_version": [scores.version] * n
                    }, scores.version
        rows, version = resilience.score_isolating_failures(self.scorer, texts, future,
                                                            interactive=False)
        keys = [*RESULT_FIELDS, *(k for k in SPARSE if any(k in r for r in rows))]
        return {k: [r.get(k) for r in rows] for k in keys}, version

    def finish(self, job_id: str) -> None:
        """Every split committed: ``_SUCCESS`` with the counts and the input's fingerprint,
        then the job is done (so a client that sees ``done`` finds ``_SUCCESS``)."""
        job = self.jobs.jobs.get(job_id)
        self.artifacts.write_bytes_atomic(f"{job.output}/{SUCCESS}",
                                          success_record(job, self.store_jobs.files(job_id)))
        self.jobs.jobs.output_done(job_id)
        logger.info("output complete: %d rows, %d rejected", job.done, job.rejected,
                    extra={"job_id": job_id})


class _Pending:
    """Rows to score, as columns, until a batch is cut: at :data:`_BATCH_ROWS` rows or
    ``batch_bytes`` bytes of text (UTF-8), whichever comes first (as a row at a time would)."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {}
        self.refs: list[int] = []
        self.files: list[int] = []
        self.texts: list[str] = []
        self.ends: list[int] = []  # each text's end in the bytes of all texts added so far
        self.taken = 0  # the bytes of the texts already cut

    def add(self, extra: dict[str, list[Any]], file: int, refs: list[int],
            texts: list[str]) -> None:
        for c, v in extra.items():
            self.cols.setdefault(c, []).extend(v)
        self.refs.extend(refs)
        self.files.extend([file] * len(refs))
        self.texts.extend(texts)
        end = self.ends[-1] if self.ends else self.taken
        self.ends.extend(accumulate(map(len, map(str.encode, texts)), initial=end))
        del self.ends[len(self.ends) - len(texts) - 1]  # accumulate's initial value

    def cut(self, rows: int, nbytes: int) -> tuple[dict[str, list[Any]], list[str]] | None:
        k = min(rows, bisect_left(self.ends, self.taken + nbytes) + 1)
        return self._take(k) if k <= len(self.texts) else None

    def rest(self) -> tuple[dict[str, list[Any]], list[str]] | None:
        return self._take(len(self.texts)) if self.texts else None

    def _take(self, k: int) -> tuple[dict[str, list[Any]], list[str]]:
        cols = {c: v[:k] for c, v in self.cols.items()}
        cols["file"], cols["ref"] = self.files[:k], self.refs[:k]
        texts = self.texts[:k]
        self.taken = self.ends[k - 1]
        for v in self.cols.values():
            del v[:k]
        del self.refs[:k], self.files[:k], self.texts[:k], self.ends[:k]
        return cols, texts


def _batched(records: Iterable[Any]) -> Iterator[input_splits.RowBatch]:
    """Records (another reader's, or a test's) as column batches: cut at 256 rows, or when
    the check period has passed, so cancellation is seen as often as before."""
    batch: input_splits.RowBatch | None = None
    started = time.monotonic()
    for record in records:
        if batch is None:
            batch = input_splits.RowBatch(extra={c: [] for c in record.extra})
        batch.refs.append(record.ref)
        batch.texts.append(record.text)
        batch.problems.append(record.problem)
        for c, v in record.extra.items():
            batch.extra[c].append(v)
        if len(batch) >= _BATCH_ROWS or time.monotonic() - started >= _CHECK_EVERY_S:
            yield batch
            batch, started = None, time.monotonic()
    if batch is not None:
        yield batch


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
        jobs.jobs.mark_running(job_id)
        SplitScorer(jobs, artifacts, None, max_chars=0).finish(job_id)
    return True
