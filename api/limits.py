"""Backpressure and fair share: refuse new work while its queue is full and the calling key
holds its share of it, or while the key already has too many rows waiting. (A job's
``deadline_s`` and the body-size check are part of reading the request: api/requests.py.)

Shares: while the queues hold ``max_queue_depth`` messages, a key is refused ("overloaded")
only if its own chunks and splits sent and not yet stored reach its share of the depth,
``max(queue_share_floor, max_queue_depth / keys active lately)``: the key that floods is
refused, a key with little queued is still admitted. A key's bulk jobs whose pieces wait
parked (within its window, schema.FILL) count a window each as queued, in its pieces and in
the depth that key is judged by (not in another key's, nor on the synchronous endpoints).
Every figure comes from one Redis script call per request (schema.ADMISSION)."""

from __future__ import annotations

from flask import Flask, g, request

from spamq.errors import Overloaded
from spamq.jobs.queue import key_window
from spamq.settings import Settings

#: endpoints that enqueue work; the synchronous ones only ever use the interactive queue
SUBMITTING = frozenset({"spamq.create_job", "spamq.predict_v1", "spamq.predict_legacy"})
INTERACTIVE_ONLY = frozenset({"spamq.predict_v1", "spamq.predict_legacy"})


def share(settings: Settings, active_keys: int) -> int:
    """The queued pieces of work one key may hold while the queues are full."""
    return max(settings.queue_share_floor, settings.max_queue_depth // max(1, active_keys))


def install(app: Flask, *, settings: Settings, store) -> None:
    """Answer 429 with Retry-After on submissions while their queue holds too many messages
    and the key holds its share of them, or while the key has too many rows waiting."""

    @app.before_request
    def _backpressure():
        if request.endpoint not in SUBMITTING:
            return None
        # A full bulk queue never closes the synchronous endpoints (bulk jobs keep only a
        # window of chunks queued anyway: settings.bulk_window_chunks).
        queues = ([settings.interactive_queue] if request.endpoint in INTERACTIVE_ONLY
                  else [settings.interactive_queue, settings.bulk_queue])
        load = store.leases.load(queues, g.get("spamq_owner"),
                                 active_s=settings.queue_share_active_s,
                                 interactive_queue=settings.interactive_queue,
                                 window=0 if request.endpoint in INTERACTIVE_ONLY
                                 else key_window(settings))
        mine = share(settings, load.active_keys)
        if load.depth >= settings.max_queue_depth and load.pieces >= mine:
            raise Overloaded(f"{load.depth} tasks are queued (limit {settings.max_queue_depth}) "
                             f"and {load.pieces} of them are this key's (its share: {mine}); "
                             "retry later", queue_depth=load.depth, key_queued=load.pieces)
        # Fair share: one key's backlog cannot close the service to the others.
        if load.pending_rows >= settings.max_pending_rows_per_key:
            raise Overloaded(f"this key has {load.pending_rows} rows waiting (at most "
                             f"{settings.max_pending_rows_per_key}); retry when some are "
                             "scored, or cancel a job", code="over_quota",
                             pending_rows=load.pending_rows)
        if load.interactive_rows >= settings.max_interactive_rows_per_key:
            raise Overloaded(f"this key has {load.interactive_rows} rows of small jobs "
                             f"waiting (at most {settings.max_interactive_rows_per_key}); retry "
                             "when some are scored", code="over_quota",
                             interactive_rows=load.interactive_rows)
        return None
