"""Job records: a job's hash, its Idempotency-Key and output reservations, and its life from
created to ended (spamq/jobs/store.py holds this with the other parts of the store)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import redis

from spamq.jobs import schema
from spamq.jobs.model import Chunk, DuplicateJob, Job, OutputTaken, chunk_plan
from spamq.jobs.part import RedisPart, decode, text
from spamq.jobs.schema import (
    ACTIVE_KEY,
    CANCELLED,
    DONE,
    EXPIRED,
    QUEUED,
    STATS_KEY,
    JobNotFound,
)

_TEXT_SLICE = 1000


def new_job_fields(job_id: str, *, chunks: int, sent: int, queue: str, owner: str | None,
                   deadline: float | None, output: str, request_sha: str) -> dict[str, Any]:
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


def add_parked(pipe: Any, job_id: str, owner: str | None, *, ttl_s: int) -> None:
    """Add to ``pipe``: the job joins the end of its key's parked list."""
    parked = schema.parked_key(owner)
    pipe.rpush(parked, job_id)
    pipe.expire(parked, ttl_s)


class Jobs(RedisPart):
    """Job records in Redis: create, read, reserve, end."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        super().__init__(client, ttl_s=ttl_s)
        self._fail = self._script(schema.FAIL)
        self._start = self._script(schema.START)
        self._cancel = self._script(schema.CANCEL)
        self._release = self._script(schema.RELEASE)
        self._output_done = self._script(schema.OUTPUT_DONE)

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
        key's parked list, and ``Leases.refill`` sends its chunks within the key's window.
        """
        job_id = secrets.token_hex(16)  # 128 random bits: unguessable
        texts_key = schema.job_keys(job_id)[1]
        taken = self.reserve(job_id, owner=owner, idempotency_key=idempotency_key, output="")
        plan = chunk_plan(len(texts), chunk_size)
        sent = len(plan) if window is None else min(len(plan), max(1, window))
        sent = 0 if park else sent
        fields = new_job_fields(job_id, chunks=len(plan), sent=sent, queue=queue, owner=owner,
                                deadline=deadline, output="", request_sha=request_sha)
        fields.update(total=len(texts), chunk_size=chunk_size)
        pipe = self._r.pipeline(transaction=True)
        for i in range(0, len(texts), _TEXT_SLICE):
            pipe.rpush(texts_key, *texts[i : i + _TEXT_SLICE])
        pipe.expire(texts_key, self.ttl_s)
        self.commit(pipe, fields, taken, park=park)
        return Job.from_hash({k: str(v) for k, v in fields.items()}), plan[:sent]

    def reserve(self, job_id: str, *, owner: str | None, idempotency_key: str | None,
                output: str) -> list[str]:
        """Take the new job's Idempotency-Key (DuplicateJob if used) and output directory
        (OutputTaken: of two concurrent submissions naming it, one gets it), each atomically;
        returns the keys taken, which :meth:`commit` frees should storing the job fail."""
        taken: list[str] = []
        if idempotency_key is not None:
            idem = schema.idem_key(owner, idempotency_key)
            if not self._r.set(idem, job_id, nx=True, ex=self.ttl_s):
                raise DuplicateJob(text(self._r.get(idem)) or "")
            taken.append(idem)
        if output:
            reserved = schema.output_key(output)
            if not self._r.set(reserved, job_id, nx=True, ex=self.ttl_s):
                self.unreserve(taken, job_id)
                raise OutputTaken(output)
            taken.append(reserved)
        return taken

    def unreserve(self, taken: list[str], job_id: str) -> None:
        """Free the reservation keys ``taken`` that still name ``job_id``."""
        for key in taken:
            self._release(keys=[key], args=[job_id])

    def commit(self, pipe: Any, fields: dict[str, Any], taken: list[str], *,
               park: bool = False) -> None:
        """Add the job hash, its counters and sets to ``pipe`` and run it (MULTI/EXEC); if
        that fails nothing was stored, and the keys ``taken`` may be used again. ``park``:
        the job joins its key's parked list too (``Leases.refill`` sends its pieces)."""
        job_id, job_key = fields["id"], schema.job_key(fields["id"])
        pipe.hset(job_key, mapping=fields)
        pipe.expire(job_key, self.ttl_s)
        pipe.hincrby(STATS_KEY, "submitted", 1)
        if fields["chunks_total"] or fields.get("planning"):  # planning: splits to come
            pipe.sadd(ACTIVE_KEY, job_id)
            owner_key = schema.owner_key(fields["owner"] or None)
            pipe.sadd(owner_key, job_id)
            pipe.expire(owner_key, self.ttl_s)
            if park and fields["chunks_total"]:
                add_parked(pipe, job_id, fields["owner"] or None, ttl_s=self.ttl_s)
        try:
            pipe.execute()
        except BaseException:
            self.unreserve(taken, job_id)
            raise

    def forget_key(self, owner: str | None, idempotency_key: str, job_id: str) -> None:
        """Free an Idempotency-Key that still names ``job_id`` (its submission failed)."""
        self._release(keys=[schema.idem_key(owner, idempotency_key)], args=[job_id])

    def get(self, job_id: str) -> Job:
        raw = self._r.hgetall(schema.job_key(job_id))
        if not raw:
            raise JobNotFound(job_id)
        return Job.from_hash(decode(raw))

    def job_for_key(self, idempotency_key: str, owner: str | None = None) -> str | None:
        """The job id created for ``idempotency_key`` of ``owner``, if any."""
        return text(self._r.get(schema.idem_key(owner, idempotency_key)))

    def status(self, job_id: str) -> str | None:
        return text(self._r.hget(schema.job_key(job_id), "status"))

    def owner(self, job_id: str) -> str | None:
        """The key id that submitted the job ('' if none; None if there is no such job)."""
        return text(self._r.hget(schema.job_key(job_id), "owner"))

    def mark_running(self, job_id: str) -> None:
        """A queued job whose first piece of work has started becomes running."""
        self._start(keys=[schema.job_key(job_id)], args=[repr(time.time())])

    def _end_early(self, job_id: str, status: str) -> int:
        job_key, _, _, finished_key = schema.job_keys(job_id)
        return self._cancel(keys=[job_key, finished_key],
                            args=[repr(time.time()), self.ttl_s, status])

    def cancel(self, job_id: str) -> bool:
        """Mark the job cancelled (its remaining chunks are skipped); False if already over."""
        outcome = self._end_early(job_id, CANCELLED)
        if outcome == -1:
            raise JobNotFound(job_id)
        return outcome == 1

    def expire(self, job_id: str) -> bool:
        """Mark the job expired (its deadline passed); False if it had already ended."""
        return self._end_early(job_id, EXPIRED) == 1

    def fail(self, job_id: str, error: str) -> bool:
        job_key, _, _, finished_key = schema.job_keys(job_id)
        outcome = self._fail(
            keys=[job_key, finished_key], args=[error, repr(time.time()), self.ttl_s]
        )
        return outcome == 1

    def output_done(self, job_id: str) -> bool:
        """Mark a running job with a complete output directory done (after its _SUCCESS)."""
        job_key, _, _, finished_key = schema.job_keys(job_id)
        return self._output_done(keys=[job_key, finished_key],
                                 args=[repr(time.time()), self.ttl_s]) == 1

    def counts(self) -> dict[str, int]:
        """How many jobs were submitted, and how many ended done, failed or cancelled."""
        raw = decode(self._r.hgetall(STATS_KEY))
        return {
            event: int(raw.get(event, 0)) for event in ("submitted", "done", "failed", "cancelled")
        }

    def active(self) -> list[str]:
        """Ids of the jobs not ended yet (the sweeper looks at them)."""
        return sorted(text(v) for v in self._r.smembers(ACTIVE_KEY))

    def forget_active(self, job_id: str) -> None:
        self._r.srem(ACTIVE_KEY, job_id)
