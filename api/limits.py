"""Backpressure, fair share and deadlines: refuse new work while its queue is full or while
the calling key already has too many rows waiting; jobs may expire."""

from __future__ import annotations

import math
import time

from flask import Flask, g, jsonify, request

from api.validation import InvalidRequest
from spamq.settings import Settings

#: endpoints that enqueue work; the synchronous ones only ever use the interactive queue
SUBMITTING = frozenset({"spamq.create_job", "spamq.predict_v1", "spamq.predict_legacy"})
INTERACTIVE_ONLY = frozenset({"spamq.predict_v1", "spamq.predict_legacy"})
_RETRY_AFTER_S = 5


def body_too_large(limit: int) -> InvalidRequest:
    """The one answer to a JSON body over ``limit`` bytes (however it was found out)."""
    return InvalidRequest(None, f"a JSON body may have at most {limit} bytes; upload a file "
                          "for more", status=413)


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
    """Answer 429 with Retry-After on submissions while their queue holds too many messages,
    or while the key has too many rows waiting."""

    @app.before_request
    def _body_limit():
        # A JSON body (chunked or not) is cut off at max_body_bytes while it is read, not
        # after: only multipart uploads may use the larger MAX_CONTENT_LENGTH.
        # A chunked body (no Content-Length) is read up to one byte past the limit, so that
        # "over the limit" can be told apart from "exactly at it" (routes._json_body).
        if request.mimetype != "multipart/form-data":
            chunked = request.content_length is None
            request.max_content_length = settings.max_body_bytes + (1 if chunked else 0)

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
