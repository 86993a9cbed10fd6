"""The job watch: which jobs with a webhook have ended (or moved on), found by the deliverer.

The job path never waits on webhooks: the API's :meth:`Outbox.subscribe` adds the job to the
watched set (``spamq:webhooks:watch``, spamq/jobs/schema.py) and nothing else changes for the
worker. Every poll the deliverer's :class:`JobWatch` reads the watched ids (SSCAN) and their
job hashes (one pipeline per batch):

- a job that has ended (done, failed, cancelled, expired; a store job alike) gets its end
  event (``request.END_EVENTS``) enqueued and leaves the set, both in one script;
- a running job whose done count moved gets ``job.progress`` if its webhook asked for it (the
  outbox throttles it to one per ``webhook_progress_interval_s``);
- a job whose hash expired leaves the set.

Crash safety: a deliverer killed at any point leaves the job either still watched (the next
poll, of any deliverer, enqueues its end) or its end enqueued and the job out of the set,
never one without the other; the end event's id is derived from the job and its ending
(:func:`end_event_id`), and enqueuing an id already stored changes nothing. Delivery is at
least once (a deliverer may die after the receiver answered, before it recorded so, and the
event is sent again): receivers dedupe by ``webhook-id``.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import redis

from spamq.jobs.model import Job
from spamq.jobs.part import decode, text
from spamq.jobs.schema import RUNNING, WEBHOOK_WATCH_KEY, job_key
from spamq.jobs.view import job_view
from spamq.webhooks.outbox import Outbox
from spamq.webhooks.request import END_EVENTS, PROGRESS

logger = logging.getLogger(__name__)
BATCH = 500  # job hashes read per pipeline


def end_event_id(job: Job, event_type: str) -> str:
    """The id of the event telling ``job``'s end: the same for the same ending (a retry, a
    second deliverer, a restart), another for a later ending of a resumed job."""
    seed = f"{job.id}:{event_type}:{job.finished_at!r}"
    return "msg_" + hashlib.sha256(seed.encode()).hexdigest()[:32]


def event_view(job: Job) -> dict[str, Any]:
    """The job as its events tell it: the public view (``GET /v1/jobs/<id>``,
    spamq/jobs/view.py) from the job hash alone, without inline results."""
    return job_view(job)


class JobWatch:
    """``run_once()``: look at every watched job once (the deliverer calls it every poll)."""

    def __init__(self, client: redis.Redis, outbox: Outbox) -> None:
        self._r, self._outbox = client, outbox
        self._done: dict[str, int] = {}  # a running job's done count at the last look

    def run_once(self) -> int:
        """How many end events were enqueued."""
        ids = list(dict.fromkeys(text(i) for i in self._r.sscan_iter(WEBHOOK_WATCH_KEY,
                                                                      count=BATCH)))
        ended = sum(self._look(ids[i:i + BATCH]) for i in range(0, len(ids), BATCH))
        watched = set(ids)
        self._done = {k: v for k, v in self._done.items() if k in watched}
        return ended

    def _look(self, ids: list[str]) -> int:
        with self._r.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(job_key(job_id))
            raws = pipe.execute()
        ended = 0
        for job_id, raw in zip(ids, raws, strict=True):
            if not raw:  # the job expired
                self._r.srem(WEBHOOK_WATCH_KEY, job_id)
                continue
            job = Job.from_hash(decode(raw))
            if job.finished:
                event_type = END_EVENTS[job.status]
                event_id = self._outbox.notify(job.id, event_type, event_view(job),
                                               end_id=end_event_id(job, event_type))
                if event_id is not None:
                    ended += 1
                    logger.info("webhook %s %s enqueued", event_id, event_type,
                                extra={"job_id": job.id})
            elif job.status == RUNNING and self._done.get(job.id, 0) != job.done:
                self._done[job.id] = job.done
                self._outbox.notify(job.id, PROGRESS, event_view(job))
        return ended
