"""Backpressure and deadlines: refuse new work while the queue is full; jobs may expire."""

from __future__ import annotations

import math
import time

from flask import Flask, jsonify, request

from api.validation import InvalidRequest
from spamq.settings import Settings

#: endpoints that enqueue work
SUBMITTING = frozenset({"spamq.create_job", "spamq.predict_v1", "spamq.predict_legacy"})
_RETRY_AFTER_S = 5


def deadline_from_request(settings: Settings) -> float | None:
    """The job's deadline (epoch seconds) from ``deadline_s`` in the JSON body or form."""
    if request.mimetype == "multipart/form-data":
        raw = request.form.get("deadline_s")
        if raw is None:
            return None
        try:
            value: object = float(raw)
        except ValueError:
            value = raw
    else:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or "deadline_s" not in body:
            return None
        value = body["deadline_s"]
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or not 0 < value <= settings.max_deadline_s):
        raise InvalidRequest("deadline_s", "'deadline_s' must be a number of seconds in "
                             f"(0, {settings.max_deadline_s:g}]")
    return time.time() + float(value)


def install(app: Flask, *, settings: Settings, store) -> None:
    """Answer 429 with Retry-After on submissions while the broker holds too many messages."""
    queues = [settings.interactive_queue, settings.bulk_queue]

    @app.before_request
    def _body_limit():
        # A JSON body (chunked or not) is cut off at max_body_bytes while it is read, not
        # after: only multipart uploads may use the larger MAX_CONTENT_LENGTH.
        if request.mimetype != "multipart/form-data":
            request.max_content_length = settings.max_body_bytes

    @app.before_request
    def _backpressure():
        if request.endpoint not in SUBMITTING:
            return None
        depth = store.queue_depth(queues)
        if depth >= settings.max_queue_depth:
            body = {"error": "overloaded", "queue_depth": depth,
                    "message": f"{depth} tasks are queued (limit {settings.max_queue_depth}); "
                               "retry later"}
            return jsonify(body), 429, {"Retry-After": str(_RETRY_AFTER_S)}
        return None
