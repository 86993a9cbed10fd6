"""Dispatch: chunk leases, the sweeper's turn, and the fair bulk window (a key's parked jobs,
their refill and admission).

Chunk leases: one attempt at a time scores a chunk (a message redelivered after the
visibility timeout while its first attempt still runs waits instead: celery#5935). A lease's
value starts with the holder's worker name: when that worker's heartbeat lapses, the sweeper
frees its leases and re-sends their chunks at once.
"""

from __future__ import annotations

import time

import redis

from spamq.jobs import schema
from spamq.jobs.model import Job, Load
from spamq.jobs.part import RedisPart, text
from spamq.jobs.records import Jobs, add_parked
from spamq.jobs.schema import (
    BUSY_OWNERS_KEY,
    PREFIX,
    RESUMABLE,
    STORE,
    SWEEP_TURN_KEY,
)


class Leases(RedisPart):
    """Who scores which chunk now, and which of a job's chunks are sent next."""

    def __init__(self, client: redis.Redis, jobs: Jobs, *, ttl_s: int) -> None:
        super().__init__(client, ttl_s=ttl_s)
        self._jobs = jobs
        self._resume = self._script(schema.RESUME)
        self._advance = self._script(schema.ADVANCE)
        self._release = self._script(schema.RELEASE)
        self._renew = self._script(schema.RENEW)
        self._admission = self._script(schema.ADMISSION)
        self._fill = self._script(schema.FILL)

    def try_leases(self, leases: list[tuple[str, int, str]], *,
                   ttl_s: float) -> list[tuple[bool, bool]]:
        """Per (job id, chunk, token): (acquired the chunk's lease, its results are stored
        already), all in one round trip."""
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

    def lease_holders(self, job_id: str, chunks: list[int]) -> list[str | None]:
        """The lease value (``<worker>|<token>``) of each chunk, None where none is held."""
        if not chunks:
            return []
        return [text(v) for v in self._r.mget([schema.lease_key(job_id, c) for c in chunks])]

    def leases_by_worker(self) -> dict[str, int]:
        """Chunks and splits each worker is scoring now: the leases naming it (a lease's
        value is ``<worker>|<token>``). A worker listed here without a heartbeat died holding
        them; the sweeper frees and re-sends them."""
        keys = list(self._r.scan_iter(match=schema.LEASE_PREFIX + "*", count=500))
        counts: dict[str, int] = {}
        for value in self._r.mget(keys) if keys else []:
            if value is not None:
                holder = text(value).split("|", 1)[0]
                counts[holder] = counts.get(holder, 0) + 1
        return counts

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

    def load(self, queues: list[str], owner: str | None, *, active_s: float = 60.0,
             interactive_queue: str = "", window: int = 0) -> Load:
        """What a submission of ``owner`` is admitted by (:class:`Load`), in one script call;
        ``owner`` counts as an active key for ``active_s`` seconds from now. ``window``: each
        of the key's bulk jobs with pieces not yet sent (parked) counts that many as queued."""
        keys = [schema.owner_key(owner), BUSY_OWNERS_KEY, *queues]
        args = [PREFIX, owner or "-", repr(time.time()), active_s, interactive_queue, window]
        reply = self._pipelined(lambda pipe: self._eval(pipe, self._admission, keys, args))[0]
        return Load(*(int(v) for v in reply))

    def park(self, job_id: str, owner: str | None) -> None:
        """Put the job at the end of its key's parked list: :meth:`refill` sends its unsent
        pieces within the key's window (a job listed twice costs nothing)."""
        pipe = self._r.pipeline(transaction=False)
        add_parked(pipe, job_id, owner, ttl_s=self.ttl_s)
        pipe.execute()

    def refill(self, owner: str | None, *, bulk_queue: str,
               window: int) -> list[tuple[str, int, int]]:
        """Unpark the key's bulk work up to its ``window`` of pieces sent and not yet stored
        (schema.FILL): (job id, first, stop) of the pieces to send now."""
        flat = self._fill(keys=[schema.owner_key(owner), schema.parked_key(owner)],
                          args=[PREFIX, bulk_queue, max(1, window), repr(time.time())])
        return [(text(flat[i]), int(flat[i + 1]), int(flat[i + 2]))
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
        job = self._jobs.get(job_id)
        if job.status not in RESUMABLE:
            return []
        self._resume(keys=[schema.job_key(job_id), schema.job_keys(job_id)[3]],
                     args=[repr(deadline) if deadline is not None else "", repr(time.time())])
        missing = self.missing_chunks(job)
        if park:
            self.park(job_id, job.owner)
            return missing
        return missing + self.advance(job_id, (window or job.chunks_total) - len(missing))
