"""The Redis job store: jobs, their texts, their results, and who waits for them.

Keys (all expire after the configured retention):
  spamq:job:<id>           hash: status, timestamps, counts, model version, error
  spamq:job:<id>:texts     list: the submitted texts, in order
  spamq:job:<id>:results   hash: chunk index -> JSON list of that chunk's results
  spamq:job:<id>:finished  list: one element pushed when the job ends (BLPOP to wait)
  spamq:job:<id>:rejected  list: JSON {row, reason} of input rows refused before scoring
  spamq:job:<id>:rows      list: input row number of each scored text (only if rows were refused)
  spamq:job:<id>:parts     set: chunk indices whose output part file is written (bulk I/O)
  spamq:idem:<key>         the job id created for an Idempotency-Key

Results are written by a Lua script that stores a chunk only if it is not stored yet
(HSETNX), so a task that runs twice can neither duplicate nor corrupt results.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis

from spamq.settings import Settings

PREFIX = "spamq:job:"
WORKER_PREFIX = "spamq:worker:"
IDEM_PREFIX = "spamq:idem:"
BATCH_STATS_PREFIX = "spamq:batching:"
# Counts of job events (submitted, done, failed, cancelled) for /metrics. The Lua scripts
# name it literally: spamq runs on one Redis, not a cluster.
STATS_KEY = "spamq:stats:jobs"
# Jobs with chunks still to score, for the worker's stall sweeper (worker/sweeper.py).
ACTIVE_KEY = "spamq:jobs:active"
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
EXPIRED = "expired"  # its deadline passed before every chunk was scored
LEASE_PREFIX = "spamq:lease:"
_TEXT_SLICE = 1000
_WAIT_SLICE_S = 0.5

# The one way a job becomes done (both scripts below): status and time, the stats count,
# and the element that wakes whoever waits on the finished list.
_MARK_DONE = """
local function mark_done(job, finished, now, ttl)
  redis.call('HSET', job, 'status', 'done', 'finished_at', now)
  redis.call('HINCRBY', 'spamq:stats:jobs', 'done', 1)
  redis.call('RPUSH', finished, 'done')
  redis.call('EXPIRE', finished, ttl)
end
"""

# KEYS: job, results, finished. ARGV: chunk index, results json, n items, version, now, ttl
_STORE_CHUNK = _MARK_DONE + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('HINCRBY', KEYS[1], 'done', ARGV[3])
local chunks = redis.call('HINCRBY', KEYS[1], 'chunks_done', 1)
redis.call('HSET', KEYS[1], 'model_version', ARGV[4])
if redis.call('HGET', KEYS[1], 'started_at') == '' then
  redis.call('HSET', KEYS[1], 'started_at', ARGV[5])
end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' then redis.call('HSET', KEYS[1], 'status', 'running') end
local output = redis.call('HGET', KEYS[1], 'output')
-- a job with an output directory is done once its output is complete (_PART_WRITTEN, then
-- the markers, then _OUTPUT_DONE)
if chunks == tonumber(redis.call('HGET', KEYS[1], 'chunks_total'))
   and (output == false or output == '')
   and status ~= 'failed' and status ~= 'cancelled' and status ~= 'expired' then
  mark_done(KEYS[1], KEYS[3], ARGV[5], ARGV[6])
end
return 1
"""

# KEYS: job, finished. ARGV: error, now, ttl
_FAIL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' or status == 'failed' or status == 'cancelled' or
   status == 'expired' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[1], 'finished_at', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'chunks_failed', 1)
redis.call('HINCRBY', 'spamq:stats:jobs', 'failed', 1)
redis.call('RPUSH', KEYS[2], 'failed')
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""

# KEYS: job, finished. ARGV: now, ttl, final status (cancelled or expired)
_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' or status == 'failed' or status == 'cancelled' or
   status == 'expired' then return 0 end
local final = ARGV[3]
redis.call('HSET', KEYS[1], 'status', final, 'finished_at', ARGV[1])
if final == 'expired' then
  redis.call('HSET', KEYS[1], 'error', 'deadline passed before every chunk was scored')
end
redis.call('HINCRBY', 'spamq:stats:jobs', final, 1)
redis.call('RPUSH', KEYS[2], 'cancelled')
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""

# KEYS: job, finished. A failed job goes back to running (its missing chunks are re-sent).
_RESUME = """
if redis.call('HGET', KEYS[1], 'status') ~= 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'error', '', 'finished_at', '')
redis.call('DEL', KEYS[2])
return 1
"""

# KEYS: job. ARGV: now
_START = """
if redis.call('HGET', KEYS[1], 'status') == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1])
end
return 1
"""


# KEYS: job, parts. ARGV: chunk index, ttl.
# 1 when every chunk's part is written and every chunk's results are stored: the caller then
# writes the markers (_REJECTED.jsonl, _SUCCESS) and only then calls _OUTPUT_DONE, so a job
# seen as done always has its _SUCCESS. A resumed job whose chunks were all stored (only part
# files were missing) gets here too: no store_chunk will finish it.
_PART_WRITTEN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local total = tonumber(redis.call('HGET', KEYS[1], 'chunks_total'))
if redis.call('SCARD', KEYS[2]) < total then return 0 end
local status = redis.call('HGET', KEYS[1], 'status')
if (status == 'running' or status == 'done')
   and tonumber(redis.call('HGET', KEYS[1], 'chunks_done')) == total then return 1 end
return 0
"""

# KEYS: job, finished. ARGV: now, ttl. A running job whose output is complete becomes done.
_OUTPUT_DONE = _MARK_DONE + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
mark_done(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return 1
"""


# KEYS: lease. ARGV: token. Delete the lease only if this attempt still holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Claim(NamedTuple):
    """What a task reads when it takes a chunk (JobStore.claim)."""

    status: str | None  # before the claim; None: no such job
    texts: list[str]
    deadline: float | None  # unix time


class JobNotFound(KeyError):
    """No such job, or it expired."""


class DuplicateJob(Exception):
    """An Idempotency-Key already names a job: ``job_id``."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


@dataclass(frozen=True)
class Chunk:
    """A slice ``[start, stop)`` of a job's texts, scored by one task."""

    index: int
    start: int
    stop: int


@dataclass(frozen=True)
class Job:
    id: str
    status: str
    total: int
    done: int
    chunks_total: int
    chunks_done: int
    chunks_failed: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    model_version: str | None
    error: str | None
    queue: str
    chunk_size: int = 0
    rejected: int = 0
    owner: str | None = None  # the API key id that submitted it
    deadline: float | None = None  # epoch seconds; chunks not scored by then are skipped
    output: str = ""  # artifact-store directory the worker writes part files to ('' = none)

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Job:
        def ts(name: str) -> float | None:
            return float(raw[name]) if raw.get(name) else None

        return cls(
            id=raw["id"],
            status=raw["status"],
            total=int(raw["total"]),
            done=int(raw["done"]),
            chunks_total=int(raw["chunks_total"]),
            chunks_done=int(raw["chunks_done"]),
            chunks_failed=int(raw.get("chunks_failed") or 0),
            created_at=float(raw["created_at"]),
            started_at=ts("started_at"),
            finished_at=ts("finished_at"),
            model_version=raw.get("model_version") or None,
            error=raw.get("error") or None,
            queue=raw.get("queue", ""),
            chunk_size=int(raw.get("chunk_size") or 0),
            rejected=int(raw.get("rejected") or 0),
            owner=raw.get("owner") or None,
            deadline=ts("deadline"),
            output=raw.get("output") or "",
        )

    @property
    def finished(self) -> bool:
        return self.status in (DONE, FAILED, CANCELLED, EXPIRED)

    @property
    def input_rows(self) -> int:
        return self.total + self.rejected


def chunk_plan(total: int, chunk_size: int) -> list[Chunk]:
    """Split ``total`` items into consecutive chunks of at most ``chunk_size``."""
    return [
        Chunk(i, start, min(start + chunk_size, total))
        for i, start in enumerate(range(0, total, chunk_size))
    ]


class JobStore:
    """Jobs in Redis. The client is handed in; nothing connects until a method is called."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self._r = client
        self._ttl = ttl_s
        self._store_chunk = client.register_script(_STORE_CHUNK)
        self._fail = client.register_script(_FAIL)
        self._start = client.register_script(_START)
        self._cancel = client.register_script(_CANCEL)
        self._resume = client.register_script(_RESUME)
        self._release = client.register_script(_RELEASE)
        self._part_written = client.register_script(_PART_WRITTEN)
        self._output_done = client.register_script(_OUTPUT_DONE)

    @staticmethod
    def _keys(job_id: str) -> tuple[str, str, str, str]:
        base = PREFIX + job_id
        return base, base + ":texts", base + ":results", base + ":finished"

    @classmethod
    def from_settings(cls, settings: Settings) -> JobStore:
        """The store on the settings' Redis, with their timeouts. Connects to nothing yet."""
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
        )
        return cls(client, ttl_s=settings.job_ttl_s)

    @property
    def redis(self) -> redis.Redis:
        """The client: the broker's queues live in the same Redis (see api/metrics.py)."""
        return self._r

    def ping(self) -> bool:
        return bool(self._r.ping())

    def beat(self, worker: str, info: dict[str, Any], *, ttl_s: int) -> None:
        """A worker's heartbeat: ``info`` stays visible for ``ttl_s`` seconds."""
        self._r.set(WORKER_PREFIX + worker, json.dumps(info), ex=ttl_s)

    def set_batch_stats(self, worker: str, stats: dict[str, Any], *, ttl_s: int) -> None:
        """A worker's dynamic-batching counters (forward passes, rows per pass)."""
        self._r.set(BATCH_STATS_PREFIX + worker, json.dumps(stats), ex=ttl_s)

    def batch_stats(self) -> dict[str, dict[str, Any]]:
        keys = sorted(self._r.scan_iter(match=BATCH_STATS_PREFIX + "*", count=100))
        values = self._r.mget(keys) if keys else []
        return {
            _str(k)[len(BATCH_STATS_PREFIX):]: json.loads(v)
            for k, v in zip(keys, values, strict=True) if v is not None
        }

    def job_counts(self) -> dict[str, int]:
        """How many jobs were submitted, and how many ended done, failed or cancelled."""
        raw = _decode(self._r.hgetall(STATS_KEY))
        return {
            event: int(raw.get(event, 0)) for event in ("submitted", "done", "failed", "cancelled")
        }

    def forget_worker(self, worker: str) -> None:
        self._r.delete(WORKER_PREFIX + worker)

    def workers(self) -> list[dict[str, Any]]:
        """Heartbeats of the workers alive now."""
        keys = sorted(self._r.scan_iter(match=WORKER_PREFIX + "*", count=100))
        values = self._r.mget(keys) if keys else []
        return [json.loads(v) for v in values if v is not None]

    def create(
        self,
        texts: list[str],
        *,
        chunk_size: int,
        queue: str,
        rejected: list[dict[str, Any]] | None = None,
        rows: list[int] | None = None,
        idempotency_key: str | None = None,
        owner: str | None = None,
        deadline: float | None = None,
        output: str = "",
    ) -> tuple[Job, list[Chunk]]:
        """Store a new queued job with its texts; return it and its chunk plan.

        ``rejected`` lists input rows refused before scoring ({row, reason}); ``rows`` gives the
        input row number of each text. With ``idempotency_key`` already used: DuplicateJob.
        ``output``: a directory of the artifact store that workers write the results to.
        """
        job_id = secrets.token_hex(16)  # 128 random bits: unguessable
        job_key, texts_key, _, _ = self._keys(job_id)
        if idempotency_key is not None:
            if not self._r.set(IDEM_PREFIX + idempotency_key, job_id, nx=True, ex=self._ttl):
                raise DuplicateJob(self.job_for_key(idempotency_key) or "")
        plan = chunk_plan(len(texts), chunk_size)
        now = repr(time.time())
        fields = {
            "id": job_id,
            "status": QUEUED if plan else DONE,
            "total": len(texts),
            "done": 0,
            "chunks_total": len(plan),
            "chunks_done": 0,
            "chunks_failed": 0,
            "created_at": now,
            "started_at": "" if plan else now,
            "finished_at": "" if plan else now,
            "model_version": "",
            "error": "",
            "queue": queue,
            "chunk_size": chunk_size,
            "rejected": len(rejected or []),
            "owner": owner or "",
            "deadline": repr(deadline) if deadline is not None else "",
            "output": output,
        }
        pipe = self._r.pipeline(transaction=True)
        for i in range(0, len(texts), _TEXT_SLICE):
            pipe.rpush(texts_key, *texts[i : i + _TEXT_SLICE])
        pipe.expire(texts_key, self._ttl)
        for key, values in ((job_key + ":rejected", [json.dumps(r) for r in rejected or []]),
                            (job_key + ":rows", [str(r) for r in rows or []] if rejected else [])):
            for i in range(0, len(values), _TEXT_SLICE):
                pipe.rpush(key, *values[i : i + _TEXT_SLICE])
            if values:
                pipe.expire(key, self._ttl)
        pipe.hset(job_key, mapping=fields)
        pipe.expire(job_key, self._ttl)
        pipe.hincrby(STATS_KEY, "submitted", 1)
        if plan:
            pipe.sadd(ACTIVE_KEY, job_id)
        pipe.execute()
        return Job.from_hash({k: str(v) for k, v in fields.items()}), plan

    def get(self, job_id: str) -> Job:
        raw = self._r.hgetall(PREFIX + job_id)
        if not raw:
            raise JobNotFound(job_id)
        return Job.from_hash(_decode(raw))

    def texts(self, job_id: str, start: int, stop: int) -> list[str]:
        values = self._r.lrange(self._keys(job_id)[1], start, stop - 1)
        return [_str(v) for v in values]

    def job_for_key(self, idempotency_key: str) -> str | None:
        """The job id created for ``idempotency_key``, if any."""
        value = self._r.get(IDEM_PREFIX + idempotency_key)
        return _str(value)

    def status(self, job_id: str) -> str | None:
        value = self._r.hget(PREFIX + job_id, "status")
        return _str(value)

    def _end_early(self, job_id: str, status: str) -> int:
        job_key, _, _, finished_key = self._keys(job_id)
        return self._cancel(keys=[job_key, finished_key],
                            args=[repr(time.time()), self._ttl, status])

    def cancel(self, job_id: str) -> bool:
        """Mark the job cancelled (its remaining chunks are skipped); False if already over."""
        outcome = self._end_early(job_id, CANCELLED)
        if outcome == -1:
            raise JobNotFound(job_id)
        return outcome == 1

    def expire(self, job_id: str) -> bool:
        """Mark the job expired (its deadline passed); False if it had already ended."""
        return self._end_early(job_id, EXPIRED) == 1

    def owner(self, job_id: str) -> str | None:
        """The key id that submitted the job ('' if none; None if there is no such job)."""
        value = self._r.hget(PREFIX + job_id, "owner")
        return _str(value)

    def queue_depth(self, queues: list[str]) -> int:
        """Messages waiting in the broker's queues (the Redis transport keeps them as lists)."""
        pipe = self._r.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        return sum(pipe.execute())

    # Chunk leases: one attempt at a time scores a chunk (a message redelivered after the
    # visibility timeout while its first attempt still runs waits instead: celery#5935).
    def try_lease(self, job_id: str, chunk: int, token: str, *,
                  ttl_s: float) -> tuple[bool, bool]:
        """(acquired the chunk's lease, its results are stored already), in one round trip."""
        pipe = self._r.pipeline(transaction=False)
        pipe.set(f"{LEASE_PREFIX}{job_id}:{chunk}", token, nx=True, px=max(1, int(ttl_s * 1000)))
        pipe.hexists(self._keys(job_id)[2], chunk)
        acquired, stored = pipe.execute()
        return bool(acquired), bool(stored)

    def release_lease(self, job_id: str, chunk: int, token: str) -> None:
        self._release(keys=[f"{LEASE_PREFIX}{job_id}:{chunk}"], args=[token])

    def lease_held(self, job_id: str, chunk: int) -> bool:
        return bool(self._r.exists(f"{LEASE_PREFIX}{job_id}:{chunk}"))

    def chunk_stored(self, job_id: str, chunk: int) -> bool:
        return bool(self._r.hexists(self._keys(job_id)[2], chunk))

    def active_jobs(self) -> list[str]:
        return sorted(_str(v) for v in self._r.smembers(ACTIVE_KEY))

    def forget_active(self, job_id: str) -> None:
        self._r.srem(ACTIVE_KEY, job_id)

    def missing_chunks(self, job: Job) -> list[int]:
        """Chunk indices of ``job`` whose results are not stored yet."""
        stored = {int(k) for k in self._r.hkeys(self._keys(job.id)[2])}
        return [i for i in range(job.chunks_total) if i not in stored]

    def resume(self, job_id: str) -> list[Chunk]:
        """Put a failed job back to running; return the chunks still to score (re-send them)."""
        job = self.get(job_id)
        if job.status != FAILED:
            return []
        self._resume(keys=[PREFIX + job_id, self._keys(job_id)[3]])
        plan = chunk_plan(job.total, job.chunk_size)
        missing = set(self.missing_chunks(job))
        if job.output:  # stored, but its part file never written (an output write failed)
            written = {int(i) for i in self._r.smembers(PREFIX + job_id + ":parts")}
            missing |= {i for i in range(job.chunks_total) if i not in written}
        return [plan[i] for i in sorted(missing)]

    def output(self, job_id: str) -> str:
        """The job's output directory ('' when it has none, or there is no such job)."""
        value = self._r.hget(PREFIX + job_id, "output")
        return _str(value) or ""

    def part_written(self, job_id: str, chunk: int) -> bool:
        """Record chunk's part file as written; True when every part is written and every
        chunk stored: write the markers, then call :meth:`output_done`."""
        outcome = self._part_written(keys=[PREFIX + job_id, PREFIX + job_id + ":parts"],
                                     args=[chunk, self._ttl])
        return outcome == 1

    def output_done(self, job_id: str) -> bool:
        """Mark a running job with a complete output directory done (after its _SUCCESS)."""
        job_key, _, _, finished_key = self._keys(job_id)
        return self._output_done(keys=[job_key, finished_key],
                                 args=[repr(time.time()), self._ttl]) == 1

    def rejected(self, job_id: str) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self._r.lrange(PREFIX + job_id + ":rejected", 0, -1)]

    def rows(self, job_id: str, start: int, stop: int) -> list[int]:
        """Input row numbers of texts ``[start, stop)`` (identity when no row was refused)."""
        values = self._r.lrange(PREFIX + job_id + ":rows", start, stop - 1)
        return [int(v) for v in values] if values else list(range(start, stop))

    def results_range(self, job: Job, start: int, stop: int) -> list[tuple[int, dict[str, Any]]]:
        """(text position, result) for the stored results among positions ``[start, stop)``."""
        stop = min(stop, job.total)
        if start >= stop:
            return []
        size = job.chunk_size or max(job.total, 1)
        first, last = start // size, (stop - 1) // size
        raw = self._r.hmget(self._keys(job.id)[2], list(range(first, last + 1)))
        out: list[tuple[int, dict[str, Any]]] = []
        for index, value in zip(range(first, last + 1), raw, strict=True):
            if value is None:
                continue
            base = index * size
            for offset, result in enumerate(json.loads(value)):
                if start <= base + offset < stop:
                    out.append((base + offset, result))
        return out

    def result_rows(self, job: Job, start: int, stop: int) -> list[dict[str, Any]]:
        """The stored results among positions ``[start, stop)``, each with its input ``row``:
        the rows of the results API and of bulk output part files."""
        found = self.results_range(job, start, stop)
        if not found:
            return []
        first = found[0][0]
        rows = self.rows(job.id, first, found[-1][0] + 1)
        return [{"row": rows[pos - first], **result} for pos, result in found]

    def claim(self, job_id: str, start: int, stop: int) -> Claim:
        """One round trip for a task: the job's status and deadline, marking it running, its
        texts."""
        pipe = self._r.pipeline(transaction=False)
        pipe.hmget(PREFIX + job_id, ["status", "deadline"])
        self._start(keys=[PREFIX + job_id], args=[repr(time.time())], client=pipe)
        pipe.lrange(self._keys(job_id)[1], start, stop - 1)
        (status, deadline), _, values = pipe.execute()
        return Claim(_str(status), [_str(v) for v in values],
                     float(deadline) if deadline else None)

    def store_chunk(
        self, job_id: str, chunk: int, results: list[dict[str, Any]], *, model_version: str
    ) -> bool:
        """Store one chunk's results once. True if stored now, False if already stored."""
        job_key, _, results_key, finished_key = self._keys(job_id)
        outcome = self._store_chunk(
            keys=[job_key, results_key, finished_key],
            args=[
                chunk, json.dumps(results), len(results), model_version, repr(time.time()),
                self._ttl,
            ],
        )
        if outcome == -1:
            raise JobNotFound(job_id)
        return outcome == 1

    def fail(self, job_id: str, error: str) -> bool:
        job_key, _, _, finished_key = self._keys(job_id)
        outcome = self._fail(
            keys=[job_key, finished_key], args=[error, repr(time.time()), self._ttl]
        )
        return outcome == 1

    def results(
        self, job_id: str, offset: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The stored results in submission order (chunks not yet stored are absent)."""
        raw = _decode(self._r.hgetall(self._keys(job_id)[2]))
        ordered: list[dict[str, Any]] = []
        for index in sorted(raw, key=int):
            ordered.extend(json.loads(raw[index]))
        stop = None if limit is None else offset + limit
        return ordered[offset:stop]

    def wait(self, job_id: str, timeout_s: float) -> Job:
        """Block until the job has finished or ``timeout_s`` has passed; return its state."""
        finished_key = self._keys(job_id)[3]
        deadline = time.monotonic() + timeout_s
        job = self.get(job_id)
        while not job.finished and (left := deadline - time.monotonic()) > 0:
            # Short blocking slices stay below the client's socket timeout.
            popped = self._r.blpop([finished_key], timeout=min(left, _WAIT_SLICE_S))
            if popped is not None:  # put it back for any other waiter
                self._r.rpush(finished_key, popped[1])
            job = self.get(job_id)
        return job


def _str(value: Any) -> Any:
    """A Redis reply as text (the client may be set to return bytes or str)."""
    return value.decode() if isinstance(value, bytes) else value


def _decode(raw: dict[Any, Any]) -> dict[str, str]:
    return {_str(k): _str(v) for k, v in raw.items()}
