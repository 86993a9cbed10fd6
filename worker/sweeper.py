"""Re-send the chunks of stalled jobs: the last line of "nothing lost on a crash".

Acks-late and the visibility timeout bring back a message that a killed worker had taken,
but kombu's Redis transport pops a message and records it as unacked in two steps, so a
worker killed between them loses it (seen in tests/integration/test_faults.py). Each
worker therefore sweeps the active jobs: a job whose stored chunk count has not moved for
``stall_resend_s`` gets a new message for every chunk that has neither results nor a live
lease. A copy that turns out to be extra costs nothing: chunk results are written once and a
task finding its chunk stored returns at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from spamq.jobs import Chunk, JobNotFound, JobStore, chunk_plan

logger = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, store: JobStore, send: Callable[[str, Chunk, str], None], *,
                 stall_s: float) -> None:
        self._store, self._send, self._stall_s = store, send, stall_s
        self._seen: dict[str, tuple[int, float]] = {}  # job -> (chunks done, since when)

    def sweep_once(self, now: float | None = None) -> int:
        """One pass over the active jobs; returns how many chunks were re-sent."""
        now = time.monotonic() if now is None else now
        resent = 0
        for job_id in self._store.active_jobs():
            try:
                job = self._store.get(job_id)
            except JobNotFound:  # expired
                self._store.forget_active(job_id)
                continue
            if job.finished:
                self._store.forget_active(job_id)
                self._seen.pop(job_id, None)
                continue
            done, since = self._seen.get(job_id, (-1, now))
            if job.chunks_done != done:
                self._seen[job_id] = (job.chunks_done, now)
                continue
            if now - since < self._stall_s:
                continue
            plan = chunk_plan(job.total, job.chunk_size)
            lost = [plan[i] for i in self._store.missing_chunks(job)
                    if not self._store.lease_held(job_id, i)]
            for chunk in lost:
                self._send(job_id, chunk, job.queue)
            if lost:
                logger.warning("stalled for %.0fs: re-sent %d chunk(s)", now - since, len(lost),
                               extra={"job_id": job_id})
            resent += len(lost)
            self._seen[job_id] = (job.chunks_done, now)
        return resent

    def start(self, stop: threading.Event, *, every_s: float) -> None:
        def loop() -> None:
            while not stop.wait(every_s):
                try:
                    self.sweep_once()
                except redis.RedisError as exc:
                    logger.warning("stall sweep skipped: %s", exc)

        threading.Thread(target=loop, name="spamq-sweeper", daemon=True).start()
