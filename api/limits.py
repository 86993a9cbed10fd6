"""Backpressure and fair share: refuse new work while its queue is full or while the calling
key already has too many rows waiting. (A job's ``deadline_s`` and the body-size check are
part of reading the request: api/requests.py.)"""

from __future__ import annotations

from flask import Flask, g, jsonify, request

from spamq.settings import Settings

#: endpoints that enqueue work; the synchronous ones only ever use the interactive queue
SUBMITTING = frozenset({"spamq.create_job", "spamq.predict_v1", "spamq.predict_legacy"})
INTERACTIVE_ONLY = frozenset({"spamq.predict_v1", "spamq.predict_legacy"})
_RETRY_AFTER_S = 5


def install(app: Flask, *, settings: Settings, store) -> None:
    """Answer 429 with Retry-After on submissions while their queue holds too many messages,
    or while the key has too many rows waiting."""

    @app.before_request
    def _backpressure():
        if request.endpoint not in SUBMITTING:
            return None
        # A full bulk queue never closes the synchronous endpoints (bulk jobs keep only a
        # window of chunks queued anyway: settings.bulk_window_chunks).
        queues = ([settings.interactive_queue] if request.endpoint in INTERACTIVE_ONLY
                  else [settings.interactive_queue, settings.bulk_queue])
        depth, pending = store.load(queues, g.get("spamq_owner"))
        if depth >= settings.max_queue_depth:
            body = {"error": "overloaded", "queue_depth": depth,
                    "message": f"{depth} tasks are queued (limit {settings.max_queue_depth}); "
                               "retry later"}
            return jsonify(body), 429, {"Retry-After": str(_RETRY_AFTER_S)}
        # Fair share: one key's backlog cannot close the service to the others.
        if pending >= settings.max_pending_rows_per_key:
            body = {"error": "over_quota", "pending_rows": pending,
                    "message": f"this key has {pending} rows waiting (at most "
                               f"{settings.max_pending_rows_per_key}); retry when some are "
                               "scored, or cancel a job"}
            return jsonify(body), 429, {"Retry-After": str(_RETRY_AFTER_S)}
        return None
