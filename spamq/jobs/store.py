"""The Redis job store: jobs, their texts, their results, and who waits for them.

Keys, statuses and the Lua scripts are defined in spamq/jobs/schema.py. Results are written
by a script that stores a chunk only if it is not stored yet (HSETNX), so a task that runs
twice can neither duplicate nor corrupt results.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis

from spamq.errors import InvalidRequest, SpamqError
from spamq.jobs import schema
from spamq.jobs.schema import (
    ACTIVE_KEY,
    BATCH_STATS_PREFIX,
    BUSY_OWNERS_KEY,
    CANCELLED,
    DONE,
    ENDED,
    EXPIRED,
    FAILED,
    PREFIX,
    QUEUED,
    STATS_KEY,
    STORE,
    SWEEP_TURN_KEY,
    WORKER_PREFIX,
    JobNotFound,
)
from spamq.redis_client import redis_client
from spamq.settings import Settings

_TEXT_SLICE = 1000
_WAIT_SLICE_S = 0.5


class Load(NamedTuple):
    """What a submission is admitted by (api/limits.py; schema.ADMISSION)."""

    depth: int  # messages waiting in the queues asked about
    pieces: int  # the key's chunks and splits sent and not yet stored: its share of the queue
    pending_rows: int  # the key's rows not yet scored (a store job's: estimated, then measured)
    interactive_rows: int  # those of them in jobs on the interactive queue
    active_keys: int  # keys that submitted lately, the caller included


class Claim(NamedTuple):
    """What a task reads when it takes a chunk (JobStore.claim)."""

    status: str | None  # before the claim; None: no such job
    texts: list[str]
    deadline: float | None  # unix time
    owner: str = ""  # the API key id that submitted the job (the batcher serves keys in turn)


class DuplicateJob(SpamqError):
    """An Idempotency-Key already names a job: ``job_id`` (the API answers with that job)."""

    http_status = 409
    code = "conflict"
    public_message = "this Idempotency-Key already names a job"

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class OutputTaken(InvalidRequest):
    """Another job has reserved this output directory (``output``: for the log only)."""

    def __init__(self, output: str) -> None:
        super().__init__("hdfs_output", "'hdfs_output' is reserved by another job (running, or "
                         "written within the retention); name a new directory", status=409)
        self.output = output


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
        self._store_chunk = client.register_script(schema.STORE_CHUNK)
        self._fail = client.register_script(schema.FAIL)
        self._start = client.register_script(schema.START)
        self._cancel = client.register_script(schema.CANCEL)
        self._resume = client.register_script(schema.RESUME)
        self._advance = client.register_script(schema.ADVANCE)
        self._release = client.register_script(schema.RELEASE)
        self._renew = client.register_script(schema.RENEW)
        self._admission = client.register_script(schema.ADMISSION)
        self._output_done = client.register_script(schema.OUTPUT_DONE)
        self._fill = client.register_script(schema.FILL)

    def _pipelined(self, build: Callable[[Any], object]) -> list[Any]:
        """Run the commands ``build(pipe)`` adds in one round trip (no MULTI). Scripts go as
        plain EVALSHA (:meth:`_eval`): redis-py's pipelines would ask SCRIPT EXISTS first, a
        round trip more on every call. If Redis lost its script cache (a restart), the scripts
        are loaded and the pipeline runs again: only for pipelines safe to run twice (reads,
        and scripts that fail as a whole when not loaded)."""
        for attempt in range(2):
            pipe = self._r.pipeline(transaction=False)
            build(pipe)
            try:
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                for script in self._scripts():
                    self._r.script_load(script.script)
        raise AssertionError("unreachable")

    def _scripts(self) -> list[Any]:
        return [v for v in vars(self).values() if isinstance(v, redis.commands.core.Script)]

    @staticmethod
    def _eval(pipe: Any, script: Any, keys: list[str], args: list[Any]) -> None:
        """Add ``script`` to ``pipe`` as EVALSHA (see :meth:`_pipelined`)."""
        pipe.evalsha(script.sha, len(keys), *keys, *args)

    @classmethod
    def from_settings(cls, settings: Settings) -> JobStore:
        """The store on the settings' Redis (or Sentinel master), with their timeouts. Connects
        to nothing yet."""
        return cls(redis_client(settings), ttl_s=settings.job_ttl_s)

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

    def leases_by_worker(self) -> dict[str, int]:
        """Chunks and splits each worker is scoring now: the leases naming it (a lease's
        value is ``<worker>|<token>``). A worker listed here without a heartbeat died holding
        them; the sweeper frees and re-sends them."""
        keys = list(self._r.scan_iter(match=schema.LEASE_PREFIX + "*", count=500))
        counts: dict[str, int] = {}
        for value in self._r.mget(keys) if keys else []:
            if value is not None:
                holder = _str(value).split("|", 1)[0]
                counts[holder] = counts.get(holder, 0) + 1
        return counts

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
        park: bool = False,
    ) -> tuple[Job, list[Chunk]]:
        """Store a new queued job with its texts; return it and the chunks to send now.

        With ``idempotency_key`` (scoped to ``owner``) already used: DuplicateJob; if storing
        fails, the key is freed again. ``window``: how many chunks to send now (None: all);
        each stored chunk then sends the next one. ``park``: none now; the job waits in its
        key's parked list, and :meth:`refill` sends its chunks within the key's window.
        """
        job_id = secrets.token_hex(16)  # 128 random bits: unguessable
        texts_key = schema.job_keys(job_id)[1]
        taken = self._reserve(job_id, owner=owner, idempotency_key=idempotency_key, output="")
        plan = chunk_plan(len(texts), chunk_size)
        sent = len(plan) if window is None else min(len(plan), max(1, window))
        sent = 0 if park else sent
        fields = self._new_fields(job_id, chunks=len(plan), sent=sent, queue=queue,
                                  owner=owner, deadline=deadline, output="",
                                  request_sha=request_sha)
        fields.update(total=len(texts), chunk_size=chunk_size)
        pipe = self._r.pipeline(transaction=True)
        for i in range(0, len(texts), _TEXT_SLICE):
            pipe.rpush(texts_key, *texts[i : i + _TEXT_SLICE])
        pipe.expire(texts_key, self._ttl)
        self._commit(pipe, fields, taken, park=park)
        return Job.from_hash({k: str(v) for k, v in fields.items()}), plan[:sent]

    def _reserve(self, job_id: str, *, owner: str | None, idempotency_key: str | None,
                 output: str) -> list[str]:
        """Take the new job's Idempotency-Key (DuplicateJob if used) and output directory
        (OutputTaken: of two concurrent submissions naming it, one gets it), each atomically;
        returns the keys taken, which :meth:`_commit` frees should storing the job fail."""
        taken: list[str] = []
        if idempotency_key is not None:
            idem = schema.idem_key(owner, idempotency_key)
            if not self._r.set(idem, job_id, nx=True, ex=self._ttl):
                raise DuplicateJob(_str(self._r.get(idem)) or "")
            taken.append(idem)
        if output:
            reserved = schema.output_key(output)
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

    def _commit(self, pipe: Any, fields: dict[str, Any], taken: list[str], *,
                park: bool = False) -> None:
        """Add the job hash, its counters and sets to ``pipe`` and run it (MULTI/EXEC); if
        that fails nothing was stored, and the keys ``taken`` may be used again. ``park``:
        the job joins its key's parked list too (:meth:`refill` sends its pieces)."""
        job_id, job_key = fields["id"], schema.job_key(fields["id"])
        pipe.hset(job_key, mapping=fields)
        pipe.expire(job_key, self._ttl)
        pipe.hincrby(STATS_KEY, "submitted", 1)
        if fields["chunks_total"] or fields.get("planning"):  # planning: splits to come
            pipe.sadd(ACTIVE_KEY, job_id)
            owner_key = schema.owner_key(fields["owner"] or None)
            pipe.sadd(owner_key, job_id)
            pipe.expire(owner_key, self._ttl)
            if park and fields["chunks_total"]:
                self._park(pipe, job_id, fields["owner"] or None)
        try:
            pipe.execute()
        except BaseException:
            self._free(taken, job_id)
            raise

    def forget_key(self, owner: str | None, idempotency_key: str, job_id: str) -> None:
        """Free an Idempotency-Key that still names ``job_id`` (its submission failed)."""
        self._release(keys=[schema.idem_key(owner, idempotency_key)], args=[job_id])

    def load(self, queues: list[str], owner: str | None, *, active_s: float = 60.0,
             interactive_queue: str = "", window: int = 0) -> Load:
        """What a submission of ``owner`` is admitted by (:class:`Load`), in one script call;
        ``owner`` counts as an active key for ``active_s`` seconds from now. ``window``: each
        of the key's bulk jobs with pieces not yet sent (parked) counts that many as queued."""
        keys = [schema.owner_key(owner), BUSY_OWNERS_KEY, *queues]
        args = [PREFIX, owner or "-", repr(time.time()), active_s, interactive_queue, window]
        reply = self._pipelined(lambda pipe: self._eval(pipe, self._admission, keys, args))[0]
        return Load(*(int(v) for v in reply))

    def get(self, job_id: str) -> Job:
        raw = self._r.hgetall(schema.job_key(job_id))
        if not raw:
            raise JobNotFound(job_id)
        return Job.from_hash(_decode(raw))

    def texts(self, job_id: str, start: int, stop: int) -> list[str]:
        values = self._r.lrange(schema.job_keys(job_id)[1], start, stop - 1)
        return [_str(v) for v in values]

    def job_for_key(self, idempotency_key: str, owner: str | None = None) -> str | None:
        """The job id created for ``idempotency_key`` of ``owner``, if any."""
        return _str(self._r.get(schema.idem_key(owner, idempotency_key)))

    def status(self, job_id: str) -> str | None:
        value = self._r.hget(schema.job_key(job_id), "status")
        return _str(value)

    def _end_early(self, job_id: str, status: str) -> int:
        job_key, _, _, finished_key = schema.job_keys(job_id)
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
        value = self._r.hget(schema.job_key(job_id), "owner")
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
        return self.try_leases([(job_id, chunk, token)], ttl_s=ttl_s)[0]

    def try_leases(self, leases: list[tuple[str, int, str]], *,
                   ttl_s: float) -> list[tuple[bool, bool]]:
        """:meth:`try_lease` for several (job id, chunk, token), in one round trip."""
        pipe = self._r.pipeline(transaction=False)
        for job_id, chunk, token in leases:
            pipe.set(schema.lease_key(job_id, chunk), token, nx=True,
                     px=max(1, int(ttl_s * 1000)))
            pipe.hexists(schema.job_keys(job_id)[2], chunk)
            pipe.sismember(schema.job_key(job_id, "parts"), str(chunk))  # a store job's part
        replies = pipe.execute()
        return [(bool(replies[i]), bool(replies[i + 1] or replies[i + 2]))
                for i in range(0, len(replies), 3)]

    def release_lease(self, job_id: str, chunk: int, token: str) -> None:
        self.release_leases([(job_id, chunk, token)])

    def release_leases(self, leases: list[tuple[str, int, str]]) -> None:
        """Free the leases (job id, chunk, token) that still hold ``token``, in one trip."""
        if leases:
            self._pipelined(lambda pipe: [
                self._eval(pipe, self._release, [schema.lease_key(job_id, chunk)], [token])
                for job_id, chunk, token in leases])

    def renew_leases(self, held: list[tuple[str, int, str]], *, ttl_s: float) -> None:
        """Renew the leases (job id, chunk, token) still held by their attempts, in one trip."""
        if not held:
            return
        self._pipelined(lambda pipe: [
            self._eval(pipe, self._renew, [schema.lease_key(job_id, chunk)],
                       [token, max(1, int(ttl_s * 1000))]) for job_id, chunk, token in held])

    def lease_held(self, job_id: str, chunk: int) -> bool:
        return bool(self._r.exists(schema.lease_key(job_id, chunk)))

    def lease_holders(self, job_id: str, chunks: list[int]) -> list[str | None]:
        """The lease value (``<worker>|<token>``) of each chunk, None where none is held."""
        if not chunks:
            return []
        return [_str(v) for v in self._r.mget([schema.lease_key(job_id, c) for c in chunks])]

    def chunk_stored(self, job_id: str, chunk: int) -> bool:
        return bool(self._r.hexists(schema.job_keys(job_id)[2], chunk))

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
            stored = {int(k) for k in self._r.smembers(schema.job_key(job.id, "parts"))}
        else:
            stored = {int(k) for k in self._r.hkeys(schema.job_keys(job.id)[2])}
        return [i for i in range(job.chunks_sent) if i not in stored]

    def _park(self, pipe: Any, job_id: str, owner: str | None) -> None:
        parked = schema.parked_key(owner)
        pipe.rpush(parked, job_id)
        pipe.expire(parked, self._ttl)

    def park(self, job_id: str, owner: str | None) -> None:
        """Put the job at the end of its key's parked list: :meth:`refill` sends its unsent
        pieces within the key's window (a job listed twice costs nothing)."""
        pipe = self._r.pipeline(transaction=False)
        self._park(pipe, job_id, owner)
        pipe.execute()

    def refill(self, owner: str | None, *, bulk_queue: str,
               window: int) -> list[tuple[str, int, int]]:
        """Unpark the key's bulk work up to its ``window`` of pieces sent and not yet stored
        (schema.FILL): (job id, first, stop) of the pieces to send now."""
        flat = self._fill(keys=[schema.owner_key(owner), schema.parked_key(owner)],
                          args=[PREFIX, bulk_queue, max(1, window), repr(time.time())])
        return [(_str(flat[i]), int(flat[i + 1]), int(flat[i + 2]))
                for i in range(0, len(flat), 3)]

    def parked_position(self, job_id: str, owner: str | None) -> int | None:
        """How many of the key's parked jobs are ahead of this one (None: not parked)."""
        pos = self._r.lpos(schema.parked_key(owner), job_id)
        return pos if isinstance(pos, int) else None

    def advance(self, job_id: str, n: int) -> list[int]:
        """Mark up to ``n`` more of the job's chunks as sent; their indices (send them now)."""
        first, stop = self._advance(keys=[schema.job_key(job_id)], args=[max(0, n)])
        return list(range(int(first), int(stop)))

    def resume(self, job_id: str, *, deadline: float | None = None,
               window: int | None = None, park: bool = False) -> list[int]:
        """Put a failed, cancelled or expired job back to running, with ``deadline``; return
        the chunks to send (those sent without stored results, then a window's worth more;
        with ``park``, no more: the job joins its key's parked list for :meth:`refill`)."""
        job = self.get(job_id)
        if job.status not in (FAILED, CANCELLED, EXPIRED):
            return []
        self._resume(keys=[schema.job_key(job_id), schema.job_keys(job_id)[3]],
                     args=[repr(deadline) if deadline is not None else "", repr(time.time())])
        missing = self.missing_chunks(job)
        if park:
            self.park(job_id, job.owner)
            return missing
        return missing + self.advance(job_id, (window or job.chunks_total) - len(missing))

    def output_done(self, job_id: str) -> bool:
        """Mark a running job with a complete output directory done (after its _SUCCESS)."""
        job_key, _, _, finished_key = schema.job_keys(job_id)
        return self._output_done(keys=[job_key, finished_key],
                                 args=[repr(time.time()), self._ttl]) == 1

    def results_range(self, job: Job, start: int, stop: int) -> list[tuple[int, dict[str, Any]]]:
        """(text position, result) for the stored results among positions ``[start, stop)``."""
        stop = min(stop, job.total)
        if start >= stop:
            return []
        size = job.chunk_size or max(job.total, 1)
        first, last = start // size, (stop - 1) // size
        raw = self._r.hmget(schema.job_keys(job.id)[2], list(range(first, last + 1)))
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
        self._start(keys=[schema.job_key(job_id)], args=[repr(time.time())])

    def claim(self, job_id: str, start: int, stop: int) -> Claim:
        """One round trip for a task: the job's status and deadline, marking it running, its
        texts."""
        return self.claim_many([(job_id, start, stop)])[0]

    def claim_many(self, ranges: list[tuple[str, int, int]]) -> list[Claim]:
        """:meth:`claim` for several (job id, start, stop) in one round trip."""
        now = repr(time.time())

        def build(pipe: Any) -> None:
            for job_id, start, stop in ranges:
                job_key = schema.job_key(job_id)
                pipe.hmget(job_key, ["status", "deadline", "owner"])
                self._eval(pipe, self._start, [job_key], [now])
                pipe.lrange(schema.job_keys(job_id)[1], start, stop - 1)

        replies = self._pipelined(build)
        claims = []
        for i in range(0, len(replies), 3):
            (status, deadline, owner), _, values = replies[i : i + 3]
            claims.append(Claim(_str(status), [_str(v) for v in values],
                                float(deadline) if deadline else None, _str(owner) or ""))
        return claims

    def store_chunk_next(
        self, job_id: str, chunk: int, results: list[dict[str, Any]], *, model_version: str
    ) -> tuple[bool, int | None]:
        """Store one chunk's results once: (stored now, the index of the job's next chunk to
        send now, or None)."""
        outcome = self.store_chunks([(job_id, chunk, results)], model_version=model_version)[0]
        if outcome is None:
            raise JobNotFound(job_id)
        return outcome

    def store_chunks(
        self, chunks: list[tuple[str, int, list[dict[str, Any]]]], *, model_version: str
    ) -> list[tuple[bool, int | None] | None]:
        """Store several (job id, chunk index, results) once each, in one round trip; per
        chunk (stored now, next chunk to send or None), or None where the job is gone."""
        now = repr(time.time())

        def build(pipe: Any) -> None:
            for job_id, chunk, results in chunks:
                job_key, _, results_key, finished_key = schema.job_keys(job_id)
                self._eval(pipe, self._store_chunk, [job_key, results_key, finished_key],
                           [chunk, json.dumps(results), len(results), model_version, now,
                            self._ttl])

        return [None if int(outcome) == -1 else (int(outcome) == 1,
                                                 int(nxt) if int(nxt) >= 0 else None)
                for outcome, nxt in self._pipelined(build)]

    def store_chunk(
        self, job_id: str, chunk: int, results: list[dict[str, Any]], *, model_version: str
    ) -> bool:
        """Store one chunk's results once. True if stored now, False if already stored."""
        return self.store_chunk_next(job_id, chunk, results, model_version=model_version)[0]

    def fail(self, job_id: str, error: str) -> bool:
        job_key, _, _, finished_key = schema.job_keys(job_id)
        outcome = self._fail(
            keys=[job_key, finished_key], args=[error, repr(time.time()), self._ttl]
        )
        return outcome == 1

    def results(
        self, job_id: str, offset: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The stored results in submission order (chunks not yet stored are absent)."""
        ordered = _ordered(self._r.hgetall(schema.job_keys(job_id)[2]))
        stop = None if limit is None else offset + limit
        return ordered[offset:stop]

    def wait(self, job_id: str, timeout_s: float) -> Job:
        """Block until the job has finished or ``timeout_s`` has passed; return its state."""
        return self.wait_for(job_id, timeout_s)[0]

    def wait_for(self, job_id: str, timeout_s: float, *, results: bool = False
                 ) -> tuple[Job, list[dict[str, Any]] | None]:
        """:meth:`wait`, and with ``results`` those of a done job (else None), in two round
        trips for a job that is done or ends within one wait: the job's ``finished`` list is
        popped (at once if it has ended), then put back for any other waiter while the job
        (and its results) are read in the same pipeline."""
        job_key, _, results_key, finished_key = schema.job_keys(job_id)
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            # Short blocking slices stay below the client's socket timeout.
            popped = (self._r.blpop([finished_key], timeout=min(left, _WAIT_SLICE_S))
                      if left > 0 else None)
            pipe = self._r.pipeline(transaction=False)
            if popped is not None:
                pipe.rpush(finished_key, popped[1])
            pipe.hgetall(job_key)
            if results:
                pipe.hgetall(results_key)
            replies = pipe.execute()[1 if popped is not None else 0 :]
            if not replies[0]:
                raise JobNotFound(job_id)
            job = Job.from_hash(_decode(replies[0]))
            if job.finished or deadline - time.monotonic() <= 0:
                done = results and job.status == DONE
                return job, _ordered(replies[1]) if done else None


def _ordered(raw: dict[Any, Any]) -> list[dict[str, Any]]:
    """A results hash (chunk index -> JSON list) as one list, in chunk order."""
    chunks = _decode(raw)
    return [row for index in sorted(chunks, key=int) for row in json.loads(chunks[index])]


def _str(value: Any) -> Any:
    """A Redis reply as text (the client may be set to return bytes or str)."""
    return value.decode() if isinstance(value, bytes) else value


def _decode(raw: dict[Any, Any]) -> dict[str, str]:
    return {_str(k): _str(v) for k, v in raw.items()}
