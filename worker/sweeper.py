"""Re-send the chunks that no worker will finish: recovery in seconds, nothing lost.

Acks-late and the visibility timeout bring back a message that a killed worker had taken,
but only after ``broker_visibility_timeout_s`` (an hour), and kombu's Redis transport pops a
message and records it as unacked in two steps, so a worker killed between them (or a Redis
restart at the wrong moment) loses it. Every ``sweep_every_s`` one worker in the cluster (the
one that takes the turn) looks at each active job's sent chunks without results:

- a chunk whose lease names a worker whose heartbeat has lapsed: its lease is freed and the
  chunk re-sent at once;
- a chunk with no lease, in a job that has not moved for ``lost_after_s``: re-sent if its
  message is neither waiting in a queue nor freshly delivered to a worker (kombu's unacked
  hash). A worker leases a chunk as soon as it receives it (the pool runs every message it
  reserves), so an unacked message older than that without a lease is an orphan.

A copy that turns out to be extra costs nothing: chunk results are written once and a task
finding its chunk stored returns at once. A job whose data cannot be read is logged and
skipped; the sweep goes on with the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from spamq.jobs.queue import chunks_in_broker
from spamq.jobs.store import Job, JobNotFound, JobStore

logger = logging.getLogger(__name__)

LEASE_SEP = "|"  # a lease's value: "<worker name>|<attempt token>"


def lease_holder(value: str) -> str:
    return value.split(LEASE_SEP, 1)[0]


class Sweeper:
    def __init__(self, store: JobStore, send: Callable[[Job, list[int]], None], *,
                 name: str, queues: list[str], every_s: float, lost_after_s: float,
                 clock: Callable[[], float] = time.time,
                 uploads: Callable[[float], int] | None = None,
                 feedback: Callable[[float], int] | None = None,
                 feedback_every_s: float = 3600.0,
                 refill: Callable[[str | None], int] | None = None) -> None:
        self._store, self._send, self._name, self._queues = store, send, name, queues
        self._every_s, self._lost_after_s, self._clock = every_s, lost_after_s, clock
        self._uploads = uploads  # deletes the uploads whose job is gone (spamq/storage/uploads.py)
        # deletes feedback partitions past their retention (spamq/feedback/store.py), at most
        # once per feedback_every_s in this worker (the first turn after start, then each period)
        self._feedback, self._feedback_every_s = feedback, feedback_every_s
        self._feedback_at: float | None = None
        # unparks a key's bulk work within its window (spamq.jobs.queue.send_refill): what a
        # stored piece or a cancel does at once; here, for any turn missed (a worker killed
        # between storing its piece and refilling, a job failed or expired mid-flight)
        self._refill = refill

    def sweep_once(self) -> int:
        """One pass over the active jobs, if it is this worker's turn; chunks re-sent."""
        if not self._store.leases.sweep_turn(self._name, self._every_s * 0.9):
            return 0
        now = self._clock()
        live = self._store.workers.live()
        suspects: list[tuple[Job, list[int]]] = []
        waiting: set[str | None] = set()  # keys with parked work
        resent = 0
        for job_id in self._store.jobs.active():
            try:
                resent += self._check(job_id, live, now, suspects, waiting)
            except redis.RedisError:
                raise
            except Exception:  # noqa: BLE001 - bad data in one job must not stop the sweep
                logger.exception("sweep: job skipped (unreadable)", extra={"job_id": job_id})
        if suspects:
            present = chunks_in_broker(self._store.redis, self._queues, now=now,
                                       fresh_s=self._lost_after_s)
            for job, free in suspects:
                lost = [i for i in free if (job.id, i) not in present]
                resent += self._resend(job, lost, "lost (no lease, no message)")
        if self._refill is not None:
            unparked = sum(self._refill(owner) for owner in waiting)
            if unparked:
                logger.info("sweep: %d parked piece(s) sent within their keys' windows",
                            unparked)
        if self._uploads is not None:
            try:
                self._uploads(now)
            except redis.RedisError:
                raise
            except Exception:  # noqa: BLE001 - the store failing must not stop the sweep
                logger.exception("sweep: uploads not cleaned this time")
        if self._feedback is not None and (
                self._feedback_at is None or now - self._feedback_at >= self._feedback_every_s):
            self._feedback_at = now
            try:
                deleted = self._feedback(now)
                if deleted:
                    logger.info("sweep: %d feedback partition(s) past retention deleted", deleted)
            except Exception:  # noqa: BLE001 - the store failing must not stop the sweep
                logger.exception("sweep: feedback retention not applied this time")
        return resent

    def _check(self, job_id: str, live: set[str], now: float,
               suspects: list[tuple[Job, list[int]]], waiting: set[str | None]) -> int:
        try:
            job = self._store.jobs.get(job_id)
        except JobNotFound:  # expired
            self._store.jobs.forget_active(job_id)
            return 0
        if job.finished:
            self._store.jobs.forget_active(job_id)
            return 0
        if job.chunks_sent < job.chunks_total:  # parked (or its window still to go)
            waiting.add(job.owner)
        missing = self._store.leases.missing_chunks(job)
        holders = self._store.leases.lease_holders(job.id, missing)
        dead = [(i, v) for i, v in zip(missing, holders, strict=True)
                if v is not None and lease_holder(v) not in live]
        for index, value in dead:
            self._store.leases.release_lease(job.id, index, value)
        resent = self._resend(job, [i for i, _ in dead], "its worker's heartbeat lapsed")
        free = [i for i, v in zip(missing, holders, strict=True) if v is None]
        if free and now - (job.progress_at or job.created_at) >= self._lost_after_s:
            suspects.append((job, free))
        return resent

    def _resend(self, job: Job, indices: list[int], why: str) -> int:
        if not indices:
            return 0
        self._send(job, indices)
        logger.warning("re-sent %d chunk(s): %s", len(indices), why, extra={"job_id": job.id})
        return len(indices)
