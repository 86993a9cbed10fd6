"""The worker's Celery app: ``celery -A worker.celery_app worker`` (see ``spamq worker``).

This module builds the app and connects signals; what a worker process holds is a
worker.process.WorkerProcess, created and started here and stopped at shutdown.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from celery.signals import (
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from spamq.jobs.queue import make_celery
from spamq.logs import configure_logging
from spamq.redis_client import celery_broker_settings
from spamq.settings import get_settings
from worker import process
from worker.process import WorkerProcess

logger = logging.getLogger(__name__)

app = make_celery(get_settings(), include=["worker.tasks"])
# Read by OpenMP when torch loads (later, in WorkerProcess.start): see Settings.omp_wait_policy.
os.environ["OMP_WAIT_POLICY"] = get_settings().omp_wait_policy.upper()
if not get_settings().redis_sentinels:  # (Sentinel's transport: spamq/jobs/sentinel_broker.py)
    app.conf.broker_transport = "worker.broker:Transport"  # survives a Redis restart (see there)


@worker_init.connect
def _load_in_main_process(sender=None, **_: object) -> None:
    configure_logging()
    proc = process.install(WorkerProcess(send_task=app.send_task))
    # the URL may come from Vault: its password and db also reach the sentinel:// URLs
    app.conf.broker_url = celery_broker_settings(proc.load_secrets().settings)["broker_url"]
    pool = getattr(getattr(sender, "pool_cls", None), "__module__", "") or str(
        getattr(sender, "pool_cls", "")
    )
    if "prefork" in pool:
        return  # each child loads its own model after the fork
    proc.start()


@worker_process_init.connect
def _load_in_child(**_: object) -> None:
    configure_logging()
    proc = process.installed() or process.install(WorkerProcess(send_task=app.send_task))
    proc.start()  # the secrets came with the fork; the rest is the child's own


@worker_process_shutdown.connect
@worker_shutdown.connect
def _stop(**_: object) -> None:
    proc = process.installed()
    if proc is not None:
        proc.stop()


class BulkGate:
    """At most ``cap`` bulk chunks running in this worker: at the cap the worker stops
    *fetching* from the bulk queue, so bulk messages never hold the pool slots an interactive
    request needs; below the cap it consumes bulk again. ``sync`` applies the current wish
    (``paused``) in the consumer's thread; it is idempotent, so late or repeated calls are safe.
    """

    def __init__(self, cap: int, *, sync: Callable[[], None]) -> None:
        self.cap = cap
        self._sync = sync
        self._lock = threading.Lock()
        self.running = 0
        self.paused = False

    def enter(self) -> None:
        with self._lock:
            self.running += 1
            if self.running >= self.cap and not self.paused:
                self.paused = True
                self._sync()

    def leave(self) -> None:
        with self._lock:
            self.running -= 1
            if self.running < self.cap and self.paused:
                self.paused = False
                self._sync()


def _sync_bulk_consumer() -> None:
    """Runs in the consumer's thread: consume from the bulk queue iff the gate is open."""
    proc = process.installed()
    if proc is None:
        return
    consumer, gate = proc.consumer, proc.bulk_gate
    if consumer is None or gate is None or consumer.task_consumer is None:
        return
    queue = get_settings().bulk_queue
    consuming = consumer.task_consumer.consuming_from(queue)
    if gate.paused and consuming:
        consumer.cancel_task_queue(queue)
    elif not gate.paused and not consuming:
        consumer.add_task_queue(queue)


@worker_ready.connect
def _install_bulk_gate(sender=None, **_: object) -> None:
    s = get_settings()
    proc = process.installed()
    if proc is None or sender is None or s.bulk_queue not in {
            q.name for q in sender.task_consumer.queues}:
        return
    proc.consumer = sender
    proc.bulk_gate = BulkGate(s.bulk_max_in_flight,
                              sync=lambda: sender.call_soon(_sync_bulk_consumer))


def _is_bulk(task: object) -> bool:
    request = getattr(task, "request", None)
    info = getattr(request, "delivery_info", None) or {}
    return info.get("routing_key") == get_settings().bulk_queue


def _gate() -> BulkGate | None:
    proc = process.installed()
    return proc.bulk_gate if proc is not None else None


@task_prerun.connect
def _bulk_started(task=None, **_: object) -> None:
    gate = _gate()
    if gate is not None and _is_bulk(task):
        gate.enter()


@task_postrun.connect
def _bulk_finished(task=None, **_: object) -> None:
    gate = _gate()
    if gate is not None and _is_bulk(task):
        gate.leave()
