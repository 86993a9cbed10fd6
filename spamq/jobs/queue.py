"""The Celery application, built from settings; shared by the API (sender) and the workers.

The API sends tasks by name, so it never imports the worker (or torch).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.signals import before_task_publish

from spamq.jobs.model import chunk_plan
from spamq.jobs.schema import STORE
from spamq.redis_client import celery_broker_settings
from spamq.settings import Settings

if TYPE_CHECKING:
    from spamq.jobs.store import Chunk, Job

SCORE_CHUNK = "spamq.score_chunk"
SCORE_GROUP = "spamq.score_group"  # single-chunk jobs coalesced by an API process (api/coalesce.py)
SCORE_SPLIT = "spamq.score_split"  # a store job's split (worker/split_tasks.py)
PLAN_STORE_JOB = "spamq.plan_store_job"  # a store job's quote pass, then its first splits
ENQUEUED_AT = "spamq_enqueued_at"
#: a header on every chunk message, "<job id>:<chunk index>" (a group message: several,
#: space-separated): the sweeper finds a chunk's message in the broker (worker/sweeper.py)
#: without decoding every message body
CHUNK_HEADER = "spamq_chunk"
_CHUNK_REFS = re.compile(rb'"' + CHUNK_HEADER.encode() + rb'":\s*"([0-9a-f: ]+)"')
_CHUNK_REF = re.compile(rb"([0-9a-f]{32}):(\d+)")
# kombu's Redis transport: messages delivered and not yet acked, and when each was delivered
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"


@before_task_publish.connect
def _stamp(headers: dict | None = None, **_: object) -> None:
    """Stamp each message with its publish time: /metrics reports the oldest one's age."""
    if headers is not None:
        headers.setdefault(ENQUEUED_AT, time.time())


def send_chunk(send_task: Callable[..., Any], job_id: str, chunk: Chunk, queue: str) -> None:
    """Queue one chunk for the ``spamq.score_chunk`` task (worker/tasks.py takes these args)."""
    send_task(SCORE_CHUNK, args=[job_id, chunk.index, chunk.start, chunk.stop], queue=queue,
              headers={CHUNK_HEADER: f"{job_id}:{chunk.index}"})


def send_group(send_task: Callable[..., Any], items: list[tuple[str, Chunk]], queue: str) -> None:
    """Queue single-chunk jobs as one ``spamq.score_group`` message (worker/tasks.py): the
    worker scores them in one batcher submission and stores them in one pipelined write."""
    send_task(SCORE_GROUP, args=[[[job_id, c.index, c.start, c.stop] for job_id, c in items]],
              queue=queue, headers={CHUNK_HEADER: " ".join(f"{j}:{c.index}" for j, c in items)})


def send_coalesced(send_task: Callable[..., Any], queue: str,
                   items: list[tuple[str, Chunk]]) -> None:
    """What an API process's coalescer publishes (api/coalesce.py): one group message, of
    one job or several (the worker's group task sends no task events: worker/tasks.py)."""
    send_group(send_task, items, queue)


def send_split(send_task: Callable[..., Any], job_id: str, index: int, queue: str) -> None:
    """Queue split ``index`` of a store job for ``spamq.score_split`` (worker/tasks.py)."""
    send_task(SCORE_SPLIT, args=[job_id, index], queue=queue,
              headers={CHUNK_HEADER: f"{job_id}:{index}"})


def send_work(send_task: Callable[..., Any], job: Job, indices: list[int]) -> None:
    """Queue chunks (a texts job) or splits (a store job) ``indices`` of ``job``."""
    if job.kind == STORE:
        for i in indices:
            send_split(send_task, job.id, i, job.queue)
        return
    plan = chunk_plan(job.total, job.chunk_size)
    for i in indices:
        send_chunk(send_task, job.id, plan[i], job.queue)


def key_window(settings: Settings) -> int:
    """Bulk pieces of one key's jobs sent and not yet stored, across all its jobs."""
    return settings.bulk_window_per_key or settings.bulk_window_chunks


def send_refill(send_task: Callable[..., Any], store: Any, owner: str | None,
                settings: Settings) -> int:
    """Unpark the key's bulk work within its window (Leases.refill) and queue it; how many
    pieces were sent. Pieces of a job gone meanwhile are dropped (nothing to score)."""
    from spamq.jobs.schema import JobNotFound

    sent = 0
    for job_id, first, stop in store.leases.refill(owner, bulk_queue=settings.bulk_queue,
                                                   window=key_window(settings)):
        try:
            job = store.jobs.get(job_id)
        except JobNotFound:
            continue
        send_work(send_task, job, list(range(first, stop)))
        sent += stop - first
    return sent


def _refs(raw: bytes) -> Iterable[tuple[str, int]]:
    return ((m.group(1).decode(), int(m.group(2)))
            for header in _CHUNK_REFS.finditer(raw) for m in _CHUNK_REF.finditer(header.group(1)))


def chunks_in_broker(client: Any, queues: list[str], *, now: float,
                     fresh_s: float) -> set[tuple[str, int]]:
    """(job id, chunk index) of every chunk message waiting in ``queues``, or delivered to a
    worker less than ``fresh_s`` ago and not acked yet. An older unacked message whose chunk
    has no lease is an orphan (its worker died before starting it): it is not counted.

    The queues are read before the unacked hash: a message moving from one to the other
    between the reads is then still seen (kombu pops, then records it as unacked).
    """
    found: set[tuple[str, int]] = set()
    for queue in queues:
        for raw in client.lrange(queue, 0, -1):
            found.update(_refs(raw))
    delivered = {tag: at for tag, at in client.zrange(UNACKED_INDEX, 0, -1, withscores=True)}
    for tag, raw in client.hscan_iter(UNACKED, count=500):
        if now - delivered.get(tag, now) <= fresh_s:
            found.update(_refs(raw))
    return found


def make_celery(settings: Settings, *, include: list[str] | None = None) -> Celery:
    """A Celery app on the settings' Redis. Creating it connects to nothing."""
    broker = celery_broker_settings(settings)  # redis_url, or the Sentinel-named master
    if settings.redis_sentinels:
        import spamq.jobs.sentinel_broker  # noqa: F401 - serves sentinel:// (see there)
    app = Celery("spamq", broker=broker["broker_url"], include=include or [])
    app.conf.update(
        task_ignore_result=True,  # results live in the job store, written idempotently
        task_acks_late=True,  # ack after the results are stored: a crash redelivers
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.interactive_queue,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.redis_timeout_s,
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        worker_hijack_root_logger=False,
        **broker,  # broker_transport_options, task_publish_retry_policy
    )
    return app
