"""Store jobs: the input is files of the artifact store, scored split by split by the workers.

The API lists and plans the input and answers; workers read their split straight from the
store (spamq/storage/splits.py) and commit a part file each (worker/split_tasks.py). Redis holds
O(splits) small records per job, never a row's text or result:

  spamq:job:<id>             the job hash (kind=store; rows, rejected rows, bytes done)
  spamq:job:<id>:files       list: JSON of each input file (path, size, mtime, format)
  spamq:job:<id>:splits      list: JSON of each split (file, start, length, row group)
  spamq:job:<id>:spec        JSON: column, id_column, keep_columns, CSV header, output format,
                             and the quote parity at each split's start (the plan task's)
  spamq:job:<id>:parts       set: splits whose part file is committed
  spamq:job:<id>:split_rows  hash: split -> "rows,rejected" of its committed part
  spamq:job:<id>:split_workers  hash: split -> name of the worker that committed its part
                             (its heartbeat's name, ``<host>:<pid>``; for the operator)
  spamq:job:<id>:progress    hash: split -> rows a running attempt has scored so far, and
                             attempts:<split> -> attempts at it so far (the attempt limit)

A job whose CSV/TSV needs a quote pass (quoted fields may hold newlines) starts in status
``queued`` with no split sent: the plan task counts quotes, stores the parities, then sends
the first window of splits; every committed split sends the next one. A job whose Parquet
footers are too large to read in the request starts ``queued`` and marked ``planning`` (no
split yet): the plan task plans it (``spamq:job:<id>:plan-<token>``, renamed to ``:splits``
once complete) first. Plans are written in pipelines of PLAN_BATCH records, never one MULTI.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from spamq.jobs import schema
from spamq.jobs.model import Job
from spamq.jobs.part import decode, text
from spamq.jobs.records import new_job_fields
from spamq.jobs.schema import ACTIVE_KEY, QUEUED, RUNNING, STATS_KEY, STORE, JobNotFound
from spamq.jobs.store import JobStore

logger = logging.getLogger(__name__)

SUCCESS, REJECTED_DIR = "_SUCCESS", "_rejected"
PLAN_BATCH = 1000  # records per pipeline when a plan is written
# a store job's keys beside those of every job (schema.job_keys) and its webhook's
_STORE_PARTS = ("files", "splits", "spec", "parts", "split_rows", "split_workers", "progress")
ATTEMPTS = "attempts:"  # a field of the progress hash: attempts at a split so far


def part_name(index: int, fmt: str) -> str:
    """A split's part file: ``part-00007.jsonl`` (or .csv, .parquet)."""
    return f"part-{index:05d}.{fmt}"


def success_record(job: Job, files: Sequence[Any]) -> bytes:
    """A complete output's ``_SUCCESS``: its counts, model, splits and the input's fingerprint
    (each file's path, size and mtime). ``files``: InputFile records or their dicts."""
    inputs = [f if isinstance(f, dict) else {"path": f.path, "size": f.size, "mtime": f.mtime}
              for f in files]
    return json.dumps({
        "job_id": job.id, "input_rows": job.done + job.rejected, "output_rows": job.done,
        "rejected_rows": job.rejected, "model_version": job.model_version,
        "splits": job.chunks_total,
        "inputs": [{"path": f["path"], "size": f["size"], "mtime": f["mtime"]} for f in inputs],
    }, indent=1).encode()


class StoreJobs:
    """The Redis side of store jobs, over the same client and keys as :class:`JobStore`."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs.jobs
        self._r = jobs.redis
        self._ttl = jobs.ttl_s
        self._split_done = self._r.register_script(schema.SPLIT_DONE)

    def create(self, files: list[Any], splits: list[Any], spec: dict[str, Any], *,
               queue: str, owner: str | None, idempotency_key: str | None, output: str,
               deadline: float | None, window: int, quote_pass: bool,
               request_sha: str = "", est_rows: int = 0,
               planning: bool = False, park: bool = False) -> tuple[Job, list[int]]:
        """Store a new store job; return it and the splits to send now (none while the plan
        task's quote pass is to run: send it ``PLAN_STORE_JOB`` then). ``est_rows``: its
        rows as estimated (spamq/storage/estimate.py), counted against the key's quota.

        ``planning``: no split yet (``splits`` empty): the job is queued and marked planning,
        and the plan task plans it (:meth:`store_plan`). The files and splits are written in
        bounded pipelines, the job hash last, so the job is seen only once it is whole; if
        anything fails, what was written is deleted and the reservations freed.

        ``park``: no split is sent now; the job joins its key's parked list and
        ``Leases.refill`` sends its splits within the key's window (a job whose quote
        pass or plan is to run is parked by the plan task, once it is planned)."""

        job_id = secrets.token_hex(16)
        taken = self.jobs.reserve(job_id, owner=owner, idempotency_key=idempotency_key,
                                   output=output)
        park = park and not (quote_pass or planning)
        sent = 0 if quote_pass or park else min(len(splits), window)
        fields = new_job_fields(job_id, chunks=len(splits), sent=sent, queue=queue,
                                owner=owner, deadline=deadline, output=output,
                                request_sha=request_sha)
        fields.update(kind=STORE, bytes_total=sum(f.size for f in files), bytes_done=0,
                      est_rows=est_rows)
        if planning:
            fields.update(status=QUEUED, started_at="", finished_at="", planning=1)
        elif not splits:  # nothing to score: running until its _SUCCESS is written
            fields.update(status=RUNNING, finished_at="")
        try:
            self._push(schema.job_key(job_id, "files"), files)
            self._push(schema.job_key(job_id, "splits"), splits)
            self._r.set(schema.job_key(job_id, "spec"), json.dumps(spec), ex=self._ttl)
            self.jobs.commit(self._r.pipeline(transaction=True), fields, taken, park=park)
        except BaseException:
            self.discard_quietly(job_id, owner, idempotency_key, output)
            raise
        return Job.from_hash({k: str(v) for k, v in fields.items()}), list(range(sent))

    def _push(self, key: str, values: Sequence[Any]) -> None:
        """RPUSH the records ``values`` to ``key``, PLAN_BATCH per pipeline (no MULTI): one
        job's plan never holds Redis for long."""
        for i in range(0, len(values), PLAN_BATCH):
            pipe = self._r.pipeline(transaction=False)
            pipe.rpush(key, *(json.dumps(asdict(v)) for v in values[i:i + PLAN_BATCH]))
            pipe.expire(key, self._ttl)
            pipe.execute()

    def planning(self, job_id: str) -> bool:
        """Whether the job waits for the plan task to plan it."""
        return text(self._r.hget(schema.job_key(job_id), "planning")) == "1"

    def store_plan(self, job_id: str, plan: Sequence[Any]) -> bool:
        """The plan task's splits for a job marked planning: written to a key of this attempt
        in bounded pipelines, then renamed into place as the job stops planning, in one
        transaction. False (nothing changed) if the job is gone or was planned already."""
        tmp = schema.job_key(job_id, f"plan-{secrets.token_hex(8)}")
        job_key = schema.job_key(job_id)
        stored = False

        def swap(pipe: Any) -> None:
            nonlocal stored
            if text(pipe.hget(job_key, "planning")) != "1":
                return
            pipe.multi()
            if plan:
                pipe.rename(tmp, schema.job_key(job_id, "splits"))
            pipe.hset(job_key, mapping={"chunks_total": len(plan), "planning": ""})
            stored = True

        try:
            self._push(tmp, plan)
            self._r.transaction(swap, job_key)
        finally:
            self._r.delete(tmp)
        return stored

    def discard(self, job_id: str, *, owner: str | None, idempotency_key: str | None,
                output: str) -> None:
        """Delete a job whose submission failed, and free its Idempotency-Key and output
        reservation: the client was told it failed, so nothing of it may run."""
        k = schema.job_key
        keys = [*schema.job_keys(job_id), *(k(job_id, p) for p in _STORE_PARTS),
                *schema.webhook_keys(job_id)]
        if self._r.delete(k(job_id)):
            self._r.hincrby(STATS_KEY, "submitted", -1)
        pipe = self._r.pipeline(transaction=False)
        pipe.delete(*keys)
        pipe.srem(ACTIVE_KEY, job_id)
        pipe.srem(schema.owner_key(owner), job_id)
        pipe.srem(schema.WEBHOOK_WATCH_KEY, job_id)
        pipe.execute()
        taken = [schema.idem_key(owner, idempotency_key)] if idempotency_key is not None else []
        self.jobs.unreserve([*taken, *([schema.output_key(output)] if output else [])], job_id)

    def discard_quietly(self, job_id: str, owner: str | None, idempotency_key: str | None,
                         output: str) -> None:
        try:
            self.discard(job_id, owner=owner, idempotency_key=idempotency_key, output=output)
        except Exception:  # noqa: BLE001 - Redis down, say: the caller raises its own error
            logger.warning("a failed store job could not be cleaned up", exc_info=True,
                           extra={"job_id": job_id})

    def spec(self, job_id: str) -> dict[str, Any]:
        raw = self._r.get(schema.job_key(job_id, "spec"))
        return json.loads(raw) if raw else {}

    def set_parities(self, job_id: str, parities: list[bool]) -> None:
        """The quote parity at each split's start (from the plan task's quote pass)."""
        spec = {**self.spec(job_id), "parities": [int(p) for p in parities]}
        self._r.set(schema.job_key(job_id, "spec"), json.dumps(spec), ex=self._ttl)

    def files(self, job_id: str) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self._r.lrange(schema.job_key(job_id, "files"), 0, -1)]

    def splits(self, job_id: str) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self._r.lrange(schema.job_key(job_id, "splits"), 0, -1)]

    def split(self, job_id: str, index: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(file, split) records of split ``index``; None if the job is gone."""
        raw = self._r.lindex(schema.job_key(job_id, "splits"), index)
        if raw is None:
            return None
        split = json.loads(raw)
        file = self._r.lindex(schema.job_key(job_id, "files"), split["file"])
        return (json.loads(file), split) if file is not None else None

    def split_start(self, job_id: str, index: int
                    ) -> tuple[Job, int, dict[str, Any], dict[str, Any], dict[str, Any]]:
        """What a split task reads before it scores, in two round trips: the job, its
        attempts at split ``index`` (this one counted), the spec and the
        split's file and split records. JobNotFound if the job or its plan is gone."""
        progress = schema.job_key(job_id, "progress")
        pipe = self._r.pipeline(transaction=False)
        pipe.hgetall(schema.job_key(job_id))
        pipe.hincrby(progress, f"{ATTEMPTS}{int(index)}", 1)
        pipe.expire(progress, self._ttl)
        pipe.lindex(schema.job_key(job_id, "splits"), index)
        pipe.get(schema.job_key(job_id, "spec"))
        raw, attempts, _, split_raw, spec = pipe.execute()
        if not raw or split_raw is None:
            raise JobNotFound(job_id)
        split = json.loads(split_raw)
        file = self._r.lindex(schema.job_key(job_id, "files"), split["file"])
        if file is None:
            raise JobNotFound(job_id)
        return (Job.from_hash(decode(raw)), int(attempts), json.loads(spec) if spec else {},
                json.loads(file), split)

    def undo_attempt(self, job_id: str, index: int) -> None:
        """Take back the attempt :meth:`split_start` counted (the split was not scored)."""
        self._r.hincrby(schema.job_key(job_id, "progress"), f"{ATTEMPTS}{int(index)}", -1)

    def progress(self, job_id: str, index: int, rows: int) -> None:
        """Rows a running attempt has scored in split ``index`` (overwritten, not added)."""
        key = schema.job_key(job_id, "progress")
        pipe = self._r.pipeline(transaction=False)
        pipe.hset(key, index, rows)
        pipe.expire(key, self._ttl)
        pipe.execute()

    def rows_in_progress(self, job_id: str) -> int:
        raw = self._r.hgetall(schema.job_key(job_id, "progress"))
        return sum(int(v) for k, v in raw.items() if not text(k).startswith(ATTEMPTS))

    def forget_attempts(self, job_id: str, index: int) -> None:
        """Split ``index`` starts again from no attempt (a resumed job's)."""
        self._r.hdel(schema.job_key(job_id, "progress"), f"{ATTEMPTS}{int(index)}")

    def split_done(self, job_id: str, index: int, *, rows: int, rejected: int, nbytes: int,
                   model_version: str, worker: str = "") -> tuple[int, int | None]:
        """Record split ``index``'s committed part once: (outcome, next split to send or
        None); outcome 0 already recorded, 1 recorded, 2 recorded and the job's last.
        ``worker``: the committing worker's name, recorded with it (:meth:`split_workers`)."""
        k = schema.job_key
        outcome, nxt = self._split_done(
            keys=[k(job_id), k(job_id, "parts"), k(job_id, "split_rows"), k(job_id, "progress"),
                  k(job_id, "split_workers")],
            args=[int(index), rows, rejected, nbytes, model_version, repr(time.time()),
                  self._ttl, worker])
        return int(outcome), (int(nxt) if int(nxt) >= 0 else None)

    def split_workers(self, job_id: str) -> dict[int, str]:
        """Split -> the worker that committed its part (splits committed with a name)."""
        raw = self._r.hgetall(schema.job_key(job_id, "split_workers"))
        return {int(text(i)): text(w) for i, w in raw.items()}

    def worker_counts(self, job_id: str) -> dict[str, int]:
        """Committed splits per worker name."""
        return dict(Counter(self.split_workers(job_id).values()))

    def rework(self, job_id: str) -> dict[int, int]:
        """Split -> attempts at it beyond the first (splits scored more than once: their
        worker died mid-split), from the ``attempts:<split>`` counts of the progress hash."""
        raw = self._r.hgetall(schema.job_key(job_id, "progress"))
        out = {}
        for field, value in raw.items():
            name = text(field)
            if name.startswith(ATTEMPTS) and int(value) > 1:
                out[int(name[len(ATTEMPTS):])] = int(value) - 1
        return out

    def committed(self, job_id: str) -> list[tuple[int, int, int]]:
        """(split, rows, rejected rows) of every committed part, in split order."""
        raw = self._r.hgetall(schema.job_key(job_id, "split_rows"))
        out = []
        for index, value in raw.items():
            rows, rejected = text(value).split(",")
            out.append((int(text(index)), int(rows), int(rejected)))
        return sorted(out)
