"""The Redis job store: jobs, their texts, their results, and who waits for them.

Keys (all expire after the configured retention):
  spamq:job:<id>           hash: status, timestamps, counts, model version, error
  spamq:job:<id>:texts     list: the submitted texts, in order
  spamq:job:<id>:results   hash: chunk index -> JSON list of that chunk's results
  spamq:job:<id>:finished  list: one element pushed when the job ends (BLPOP to wait)
  spamq:job:<id>:parts     set: a store job's committed splits (spamq/jobs/store_jobs.py)
  spamq:idem:<sha256>      the job id created for an Idempotency-Key (hash of owner + key)
  spamq:owner:<key id>:jobs  set: the key's jobs not known to have ended (fair share)
  spamq:output:<sha256>    the job id that reserved an output directory (hash of the path)

Every key is built from a checked job id (32 lowercase hex, :func:`check_job_id`), a key id
(16 hex, from its hash) or a sha256: never from a client's raw input.

Results are written by a Lua script that stores a chunk only if it is not stored yet
(HSETNX), so a task that runs twice can neither duplicate nor corrupt results.
"""

from __future__ import annotations

import hashlib
import json
import re
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
STORE = "store"  # a job over files of the artifact store, scored split by split (store_jobs.py)
LEASE_PREFIX = "spamq:lease:"
OWNER_PREFIX = "spamq:owner:"
OUTPUT_PREFIX = "spamq:output:"
SWEEP_TURN_KEY = "spamq:sweep:turn"
ENDED = (DONE, FAILED, CANCELLED, EXPIRED)
_JOB_ID = re.compile(r"[0-9a-f]{32}")
_TEXT_SLICE = 1000
_WAIT_SLICE_S = 0.5

# The statuses that end a job, for the Lua scripts (generated from ENDED).
_LUA_ENDED = ("local ENDED = {" + ", ".join(f"['{st}'] = true" for st in ENDED) + "}\n")

# The one way a job becomes done (both scripts below): status and time, the stats count,
# and the element that wakes whoever waits on the finished list.
_MARK_DONE = _LUA_ENDED + """
local function mark_done(job, finished, now, ttl)
  redis.call('HSET', job, 'status', 'done', 'finished_at', now)
  redis.call('HINCRBY', 'spamq:stats:jobs', 'done', 1)
  redis.call('RPUSH', finished, 'done')
  redis.call('EXPIRE', finished, ttl)
end
"""

# For the scripts that store a piece of work (a chunk; a store job's split), after
# _LUA_ENDED: count_piece records it; next_unsent marks the job's next unsent piece sent (-1:
# none is due). Each stored piece sends the next, so a bulk job keeps a window queued.
_LUA_NEXT = """
-- a piece of work was stored: count it, note the time and the model; queued -> running
local function count_piece(job, now, version)
  local pieces = redis.call('HINCRBY', job, 'chunks_done', 1)
  redis.call('HSET', job, 'progress_at', now)
  if version ~= '' then redis.call('HSET', job, 'model_version', version) end
  if redis.call('HGET', job, 'started_at') == '' then redis.call('HSET', job, 'started_at', now) end
  local status = redis.call('HGET', job, 'status')
  if status == 'queued' then redis.call('HSET', job, 'status', 'running') end
  local total = tonumber(redis.call('HGET', job, 'chunks_total'))
  return pieces, total, status
end

local function next_unsent(job, status)
  local total = tonumber(redis.call('HGET', job, 'chunks_total'))
  local sent = tonumber(redis.call('HGET', job, 'chunks_sent') or total)
  if sent < total and not ENDED[status] then
    redis.call('HINCRBY', job, 'chunks_sent', 1)
    return sent
  end
  return -1
end
"""

# KEYS: job, results, finished. ARGV: chunk index, results json, n items, version, now, ttl.
# Returns {outcome, next}: outcome -1 no such job, 0 already stored, 1 stored now; next is the
# index of the job's next unsent chunk, which the caller sends now (a bulk job keeps only a
# window of chunks queued, so jobs of many keys interleave in the queue), or -1.
_STORE_CHUNK = _MARK_DONE + _LUA_NEXT + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, -1} end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return {0, -1} end
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('HINCRBY', KEYS[1], 'done', ARGV[3])
local chunks, total, status = count_piece(KEYS[1], ARGV[5], ARGV[4])
if chunks == total and not ENDED[status] then
  mark_done(KEYS[1], KEYS[3], ARGV[5], ARGV[6])
end
return {1, next_unsent(KEYS[1], status)}
"""

# KEYS: job, finished. ARGV: error, now, ttl
_FAIL = _LUA_ENDED + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ENDED[redis.call('HGET', KEYS[1], 'status')] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[1], 'finished_at', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'chunks_failed', 1)
redis.call('HINCRBY', 'spamq:stats:jobs', 'failed', 1)
redis.call('RPUSH', KEYS[2], 'failed')
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""

# KEYS: job, finished. ARGV: now, ttl, final status (cancelled or expired)
_CANCEL = _LUA_ENDED + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ENDED[redis.call('HGET', KEYS[1], 'status')] then return 0 end
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

# KEYS: job, finished. ARGV: deadline ('' for none), now. A failed, cancelled or expired job
# goes back to running (its missing chunks are re-sent), with the resubmission's deadline.
_RESUME = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'failed' and status ~= 'cancelled' and status ~= 'expired' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'error', '', 'finished_at', '',
           'deadline', ARGV[1], 'progress_at', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
"""

# KEYS: job. ARGV: n. Mark up to n more chunks as sent; returns {first, stop} to send now.
_ADVANCE = """
local total = tonumber(redis.call('HGET', KEYS[1], 'chunks_total'))
local sent = tonumber(redis.call('HGET', KEYS[1], 'chunks_sent') or total)
local stop = math.min(total, sent + tonumber(ARGV[1]))
if stop > sent then redis.call('HSET', KEYS[1], 'chunks_sent', stop) end
return {sent, stop}
"""

# KEYS: job. ARGV: now
_START = """
if redis.call('HGET', KEYS[1], 'status') == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1], 'progress_at', ARGV[1])
end
return 1
"""

# KEYS: the owner's job set. ARGV: the job key prefix. Rows not yet scored in the owner's
# jobs that have not ended; ended or expired jobs leave the set on the way.
_PENDING_ROWS = _LUA_ENDED + """
local pending = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('HMGET', ARGV[1] .. id, 'status', 'total', 'done')
  if v[1] == false or ENDED[v[1]] then
    redis.call('SREM', KEYS[1], id)
  else
    pending = pending + tonumber(v[2]) - tonumber(v[3])
  end
end
return pending
"""


# KEYS: job, finished. ARGV: now, ttl. A running job whose output is complete becomes done.
_OUTPUT_DONE = _MARK_DONE + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
mark_done(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return 1
"""


# KEYS: lease. ARGV: token, ttl ms. Renew the lease only while this attempt holds it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS: key. ARGV: value. Delete the key only if it still holds this value (a lease held by
# this attempt, an Idempotency-Key or output reservation naming this job).
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


class OutputTaken(Exception):
    """Another job has reserved this output directory."""


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
    chunks_sent: int = 0  # chunks sent to the queue so far (a bulk job sends a window)
    progress_at: float | None = None  # when a chunk was last stored (or the job started)
    request_sha: str = ""  # the submission's fingerprint (an Idempotency-Key's body)
    kind: str = "texts"  # "texts": texts and results in Redis; "store": splits of store files
    bytes_total: int = 0  # store jobs: input bytes, and those of the splits scored so far
    bytes_done: int = 0

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
            chunks_sent=int(raw.get("chunks_sent") or raw["chunks_total"]),
            progress_at=ts("progress_at"),
            request_sha=raw.get("request_sha") or "",
            kind=raw.get("kind") or "texts",
            bytes_total=int(raw.get("bytes_total") or 0),
            bytes_done=int(raw.get("bytes_done") or 0),
        )

    @property
    def finished(self) -> bool:
        return self.status in ENDED

    @property
    def input_rows(self) -> int:
        return self.total + self.rejected


def check_job_id(job_id: object) -> str:
    """``job_id`` if it has the form of a job id (32 lowercase hex), else JobNotFound.

    Every Redis key naming a job goes through here, so no client string reaches a key.
    """
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise JobNotFound("")
    return job_id


def digest(*parts: str) -> str:
    """sha256 of ``parts`` (NUL-separated): how client strings become parts of Redis keys."""
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


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
        self._advance = client.register_script(_ADVANCE)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._pending_rows = client.register_script(_PENDING_ROWS)
        self._output_done = client.register_script(_OUTPUT_DONE)

    @staticmethod
    def _keys(job_id: str) -> tuple[str, str, str, str]:
        base = PREFIX + check_job_id(job_id)
        return base, base + ":texts", base + ":results", base + ":finished"

    @staticmethod
    def _key(job_id: str, part: str = "") -> str:
        """``spamq:job:<id>`` or ``spamq:job:<id>:<part>``, for a checked job id."""
        base = PREFIX + check_job_id(job_id)
        return f"{base}:{part}" if part else base

    @staticmethod
    def _lease_key(job_id: str, chunk: int) -> str:
        return f"{LEASE_PREFIX}{check_job_id(job_id)}:{int(chunk)}"

    @staticmethod
    def _idem_key(owner: str | None, idempotency_key: str) -> str:
        return IDEM_PREFIX + digest(owner or "", idempotency_key)

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

    def live_workers(self) -> set[str]:
        """Names of the workers whose heartbeat has not lapsed."""
        return {_str(k)[len(WORKER_PREFIX):]
                for k in self._r.scan_iter(match=WORKER_PREFIX + "*", count=100)}

    def create(
        self,
        texts: list[str],
        *,
        chunk_size: int,
        queue: str,
        idempotency_key: str | None = None,
        owner: str | None = None,
        deadline: float | None = None,
        window: int | None = None,
        request_sha: str = "",
    ) -> tuple[Job, list[Chunk]]:
        """Store a new queued job with its texts; return it and the chunks to send now.

        With ``idempotency_key`` (scoped to ``owner``) already used: DuplicateJob; if storing
        fails, the key is freed again. ``window``: how many chunks to send now (None: all);
        each stored chunk then sends the next one.
        """
        job_id = secrets.token_hex(16)  # 128 random bits: unguessable
        texts_key = self._keys(job_id)[1]
        taken = self._reserve(job_id, owner=owner, idempotency_key=idempotency_key, output="")
        plan = chunk_plan(len(texts), chunk_size)
        sent = len(plan) if window is None else min(len(plan), max(1, window))
        fields = self._new_fields(job_id, chunks=len(plan), sent=sent, queue=queue,
                                  owner=owner, deadline=deadline, output="",
                                  request_sha=request_sha)
        fields.update(total=len(texts), chunk_size=chunk_size)
        pipe = self._r.pipeline(transaction=True)
        for i in range(0, len(texts), _TEXT_SLICE):
            pipe.rpush(texts_key, *texts[i : i + _TEXT_SLICE])
        pipe.expire(texts_key, self._ttl)
        self._commit(pipe, fields, taken)
        return Job.from_hash({k: str(v) for k, v in fields.items()}), plan[:sent]

    def _reserve(self, job_id: str, *, owner: str | None, idempotency_key: str | None,
                 output: str) -> list[str]:
        """Take the new job's Idempotency-Key (DuplicateJob if used) and output directory
        (OutputTaken: of two concurrent submissions naming it, one gets it), each atomically;
        returns the keys taken, which :meth:`_commit` frees should storing the job fail."""
        taken: list[str] = []
        if idempotency_key is not None:
            idem = self._idem_key(owner, idempotency_key)
            if not self._r.set(idem, job_id, nx=True, ex=self._ttl):
                raise DuplicateJob(_str(self._r.get(idem)) or "")
            taken.append(idem)
        if output:
            reserved = OUTPUT_PREFIX + digest(output)
            if not self._r.set(reserved, job_id, nx=True, ex=self._ttl):
                self._free(taken, job_id)
                raise OutputTaken(output)
            taken.append(reserved)
        return taken

    def _free(self, taken: list[str], job_id: str) -> None:
        for key in taken:
            self._release(keys=[key], args=[job_id])

    def _new_fields(self, job_id: str, *, chunks: int, sent: int, queue: str,
                    owner: str | None, deadline: float | None, output: str,
                    request_sha: str) -> dict[str, Any]:
        """The hash of a new job with ``chunks`` chunks (or splits), ``sent`` of them sent."""
        now = repr(time.time())
        return {
            "id": job_id, "status": QUEUED if chunks else DONE, "total": 0, "done": 0,
            "chunks_total": chunks, "chunks_done": 0, "chunks_failed": 0, "chunks_sent": sent,
            "created_at": now, "started_at": "" if chunks else now,
            "finished_at": "" if chunks else now, "progress_at": now, "model_version": "",
            "error": "", "queue": queue, "chunk_size": 0, "rejected": 0, "owner": owner or "",
            "deadline": repr(deadline) if deadline is not None else "", "output": output,
            "request_sha": request_sha,
        }

    def _commit(self, pipe: Any, fields: dict[str, Any], taken: list[str]) -> None:
        """Add the job hash, its counters and sets to ``pipe`` and run it (MULTI/EXEC); if
        that fails nothing was stored, and the keys ``taken`` may be used again."""
        job_id, job_key = fields["id"], self._key(fields["id"])
        pipe.hset(job_key, mapping=fields)
        pipe.expire(job_key, self._ttl)
        pipe.hincrby(STATS_KEY, "submitted", 1)
        if fields["chunks_total"]:
            pipe.sadd(ACTIVE_KEY, job_id)
            owner_key = self._owner_key(fields["owner"] or None)
            pipe.sadd(owner_key, job_id)
            pipe.expire(owner_key, self._ttl)
        try:
            pipe.execute()
        except BaseException:
            self._free(taken, job_id)
            raise

    def forget_key(self, owner: str | None, idempotency_key: str, job_id: str) -> None:
        """Free an Idempotency-Key that still names ``job_id`` (its submission failed)."""
        self._release(keys=[self._idem_key(owner, idempotency_key)], args=[job_id])

    @staticmethod
    def _owner_key(owner: str | None) -> str:
        return f"{OWNER_PREFIX}{owner or '-'}:jobs"  # a key id: 16 hex digits, never raw input

    def load(self, queues: list[str], owner: str | None) -> tuple[int, int]:
        """(messages waiting in ``queues``, rows not yet scored in ``owner``'s jobs that have
        not ended), in one round trip: what a submission is admitted by."""
        pipe = self._r.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        self._pending_rows(keys=[self._owner_key(owner)], args=[PREFIX], client=pipe)
        *depths, pending = pipe.execute()
        return sum(depths), int(pending)

    def get(self, job_id: str) -> Job:
        raw = self._r.hgetall(self._key(job_id))
        if not raw:
            raise JobNotFound(job_id)
        return Job.from_hash(_decode(raw))

    def texts(self, job_id: str, start: int, stop: int) -> list[str]:
        values = self._r.lrange(self._keys(job_id)[1], start, stop - 1)
        return [_str(v) for v in values]

    def job_for_key(self, idempotency_key: str, owner: str | None = None) -> str | None:
        """The job id created for ``idempotency_key`` of ``owner``, if any."""
        return _str(self._r.get(self._idem_key(owner, idempotency_key)))

    def status(self, job_id: str) -> str | None:
        value = self._r.hget(self._key(job_id), "status")
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
        value = self._r.hget(self._key(job_id), "owner")
        return _str(value)

    def queue_depth(self, queues: list[str]) -> int:
        """Messages waiting in the broker's queues (the Redis transport keeps them as lists)."""
        pipe = self._r.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        return sum(pipe.execute())

    # Chunk leases: one attempt at a time scores a chunk (a message redelivered after the
    # visibility timeout while its first attempt still runs waits instead: celery#5935).
    # A lease's value starts with the holder's worker name: when that worker's heartbeat
    # lapses, the sweeper frees its leases and re-sends their chunks at once.
    def try_lease(self, job_id: str, chunk: int, token: str, *,
                  ttl_s: float) -> tuple[bool, bool]:
        """(acquired the chunk's lease, its results are stored already), in one round trip."""
        pipe = self._r.pipeline(transaction=False)
        pipe.set(self._lease_key(job_id, chunk), token, nx=True, px=max(1, int(ttl_s * 1000)))
        pipe.hexists(self._keys(job_id)[2], chunk)
        pipe.sismember(self._key(job_id, "parts"), chunk)  # a store job's split: its part
        acquired, stored, committed = pipe.execute()
        return bool(acquired), bool(stored or committed)

    def release_lease(self, job_id: str, chunk: int, token: str) -> None:
        self._release(keys=[self._lease_key(job_id, chunk)], args=[token])

    def renew_leases(self, held: list[tuple[str, int, str]], *, ttl_s: float) -> None:
        """Renew the leases (job id, chunk, token) still held by their attempts, in one trip."""
        if not held:
            return
        pipe = self._r.pipeline(transaction=False)
        for job_id, chunk, token in held:
            self._renew(keys=[self._lease_key(job_id, chunk)],
                        args=[token, max(1, int(ttl_s * 1000))], client=pipe)
        pipe.execute()

    def lease_held(self, job_id: str, chunk: int) -> bool:
        return bool(self._r.exists(self._lease_key(job_id, chunk)))

    def lease_holders(self, job_id: str, chunks: list[int]) -> list[str | None]:
        """The lease value (``<worker>|<token>``) of each chunk, None where none is held."""
        if not chunks:
            return []
        return [_str(v) for v in self._r.mget([self._lease_key(job_id, c) for c in chunks])]

    def chunk_stored(self, job_id: str, chunk: int) -> bool:
        return bool(self._r.hexists(self._keys(job_id)[2], chunk))

    def active_jobs(self) -> list[str]:
        return sorted(_str(v) for v in self._r.smembers(ACTIVE_KEY))

    def forget_active(self, job_id: str) -> None:
        self._r.srem(ACTIVE_KEY, job_id)

    def sweep_turn(self, holder: str, ttl_s: float) -> bool:
        """True for one caller per ``ttl_s`` cluster-wide: whose turn it is to sweep."""
        return bool(self._r.set(SWEEP_TURN_KEY, holder, nx=True, px=max(1, int(ttl_s * 1000))))

    def missing_chunks(self, job: Job) -> list[int]:
        """Indices of ``job``'s sent chunks whose results are not stored yet (a store job's
        splits whose part is not committed yet)."""
        if job.kind == STORE:
            stored = {int(k) for k in self._r.smembers(self._key(job.id, "parts"))}
        else:
            stored = {int(k) for k in self._r.hkeys(self._keys(job.id)[2])}
        return [i for i in range(job.chunks_sent) if i not in stored]

    def advance(self, job_id: str, n: int) -> list[int]:
        """Mark up to ``n`` more of the job's chunks as sent; their indices (send them now)."""
        first, stop = self._advance(keys=[self._key(job_id)], args=[max(0, n)])
        return list(range(int(first), int(stop)))

    def resume(self, job_id: str, *, deadline: float | None = None,
               window: int | None = None) -> list[int]:
        """Put a failed, cancelled or expired job back to running, with ``deadline``; return
        the chunks to send (those sent without stored results, then a window's worth more)."""
        job = self.get(job_id)
        if job.status not in (FAILED, CANCELLED, EXPIRED):
            return []
        self._resume(keys=[self._key(job_id), self._keys(job_id)[3]],
                     args=[repr(deadline) if deadline is not None else "", repr(time.time())])
        missing = self.missing_chunks(job)
        return missing + self.advance(job_id, (window or job.chunks_total) - len(missing))

    def output_done(self, job_id: str) -> bool:
        """Mark a running job with a complete output directory done (after its _SUCCESS)."""
        job_key, _, _, finished_key = self._keys(job_id)
        return self._output_done(keys=[job_key, finished_key],
                                 args=[repr(time.time()), self._ttl]) == 1

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
        """The stored results among positions ``[start, stop)``, each with its ``row``."""
        return [{"row": pos, **result} for pos, result in self.results_range(job, start, stop)]

    def mark_running(self, job_id: str) -> None:
        """A queued job whose first piece of work has started becomes running."""
        self._start(keys=[self._key(job_id)], args=[repr(time.time())])

    def claim(self, job_id: str, start: int, stop: int) -> Claim:
        """One round trip for a task: the job's status and deadline, marking it running, its
        texts."""
        job_key = self._key(job_id)
        pipe = self._r.pipeline(transaction=False)
        pipe.hmget(job_key, ["status", "deadline"])
        self._start(keys=[job_key], args=[repr(time.time())], client=pipe)
        pipe.lrange(self._keys(job_id)[1], start, stop - 1)
        (status, deadline), _, values = pipe.execute()
        return Claim(_str(status), [_str(v) for v in values],
                     float(deadline) if deadline else None)

    def store_chunk_next(
        self, job_id: str, chunk: int, results: list[dict[str, Any]], *, model_version: str
    ) -> tuple[bool, int | None]:
        """Store one chunk's results once: (stored now, the index of the job's next chunk to
        send now, or None)."""
        job_key, _, results_key, finished_key = self._keys(job_id)
        outcome, nxt = self._store_chunk(
            keys=[job_key, results_key, finished_key],
            args=[
                chunk, json.dumps(results), len(results), model_version, repr(time.time()),
                self._ttl,
            ],
        )
        if outcome == -1:
            raise JobNotFound(job_id)
        return outcome == 1, (int(nxt) if int(nxt) >= 0 else None)

    def store_chunk(
        self, job_id: str, chunk: int, results: list[dict[str, Any]], *, model_version: str
    ) -> bool:
        """Store one chunk's results once. True if stored now, False if already stored."""
        return self.store_chunk_next(job_id, chunk, results, model_version=model_version)[0]

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
