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
  spamq:job:<id>:progress    hash: split -> rows a running attempt has scored so far

A job whose CSV/TSV needs a quote pass (quoted fields may hold newlines) starts in status
``queued`` with no split sent: the plan task counts quotes, stores the parities, then sends
the first window of splits; every committed split sends the next one.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from spamq.jobs import schema
from spamq.jobs.schema import STORE
from spamq.jobs.store import Job, JobStore, _str

SUCCESS, REJECTED_DIR = "_SUCCESS", "_rejected"


def part_name(index: int, fmt: str) -> str:
    """A split's part file: ``part-00007.jsonl`` (or .csv, .parquet)."""
    return f"part-{index:05d}.{fmt}"

class StoreJobs:
    """The Redis side of store jobs, over the same client and keys as :class:`JobStore`."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        self._r = jobs.redis
        self._ttl = jobs._ttl
        self._split_done = self._r.register_script(schema.SPLIT_DONE)

    def create(self, files: list[Any], splits: list[Any], spec: dict[str, Any], *,
               queue: str, owner: str | None, idempotency_key: str | None, output: str,
               deadline: float | None, window: int, quote_pass: bool,
               request_sha: str = "") -> tuple[Job, list[int]]:
        """Store a new store job; return it and the splits to send now (none while the plan
        task's quote pass is to run: send it ``PLAN_STORE_JOB`` then)."""
        import secrets

        job_id = secrets.token_hex(16)
        taken = self.jobs._reserve(job_id, owner=owner, idempotency_key=idempotency_key,
                                   output=output)
        sent = 0 if quote_pass else min(len(splits), window)
        fields = self.jobs._new_fields(job_id, chunks=len(splits), sent=sent, queue=queue,
                                       owner=owner, deadline=deadline, output=output,
                                       request_sha=request_sha)
        fields.update(kind=STORE, bytes_total=sum(f.size for f in files), bytes_done=0)
        pipe = self._r.pipeline(transaction=True)
        for key, values in (("files", files), ("splits", splits)):
            if values:
                pipe.rpush(schema.job_key(job_id, key), *(json.dumps(asdict(v)) for v in values))
                pipe.expire(schema.job_key(job_id, key), self._ttl)
        pipe.set(schema.job_key(job_id, "spec"), json.dumps(spec), ex=self._ttl)
        self.jobs._commit(pipe, fields, taken)
        return Job.from_hash({k: str(v) for k, v in fields.items()}), list(range(sent))

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

    def progress(self, job_id: str, index: int, rows: int) -> None:
        """Rows a running attempt has scored in split ``index`` (overwritten, not added)."""
        key = schema.job_key(job_id, "progress")
        pipe = self._r.pipeline(transaction=False)
        pipe.hset(key, index, rows)
        pipe.expire(key, self._ttl)
        pipe.execute()

    def rows_in_progress(self, job_id: str) -> int:
        return sum(int(v) for v in self._r.hvals(schema.job_key(job_id, "progress")))

    def split_done(self, job_id: str, index: int, *, rows: int, rejected: int, nbytes: int,
                   model_version: str) -> tuple[int, int | None]:
        """Record split ``index``'s committed part once: (outcome, next split to send or
        None); outcome 0 already recorded, 1 recorded, 2 recorded and the job's last."""
        k = schema.job_key
        outcome, nxt = self._split_done(
            keys=[k(job_id), k(job_id, "parts"), k(job_id, "split_rows"), k(job_id, "progress")],
            args=[index, rows, rejected, nbytes, model_version, repr(time.time()), self._ttl])
        return int(outcome), (int(nxt) if int(nxt) >= 0 else None)

    def committed(self, job_id: str) -> list[tuple[int, int, int]]:
        """(split, rows, rejected rows) of every committed part, in split order."""
        raw = self._r.hgetall(schema.job_key(job_id, "split_rows"))
        out = []
        for index, value in raw.items():
            rows, rejected = _str(value).split(",")
            out.append((int(_str(index)), int(rows), int(rejected)))
        return sorted(out)
