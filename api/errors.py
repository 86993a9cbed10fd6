"""Every error answer of the API, in one place: a :class:`~spamq.errors.SpamqError` answers
with its own ``http_status``, ``headers`` and body (``{"error", "field", "message"}``, plus the
public figures its kind adds); Redis or the broker unreachable is an
:class:`~spamq.errors.Unavailable`; werkzeug's own HTTP errors keep their status and are
answered in the same shape. A server-side error's text goes to the log, never to the client.
No view or hook builds an error body of its own (tests/unit/api/test_error_path.py).
"""

from __future__ import annotations

import logging

import kombu.exceptions
import redis
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from spamq.errors import PayloadTooLarge, SpamqError, Unavailable
from spamq.jobs.schema import JobNotFound

logger = logging.getLogger(__name__)


def answer(exc: SpamqError):
    """The HTTP answer to ``exc``."""
    if exc.http_status >= 500:
        logger.warning("%s: %s", type(exc).__name__, exc)
    return jsonify(exc.as_dict()), exc.http_status, exc.headers


def install(app: Flask, *, max_upload_bytes: int) -> None:
    app.register_error_handler(SpamqError, answer)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        if request.mimetype == "multipart/form-data":  # JSON bodies: api/requests.py
            return answer(PayloadTooLarge(None, f"an upload may have at most {max_upload_bytes} "
                                          "bytes"))
        return _http(exc)

    @app.errorhandler(redis.RedisError)
    def _redis_down(exc: redis.RedisError):
        return answer(Unavailable(f"redis: {exc}", public_message="the job store is unreachable"))

    @app.errorhandler(kombu.exceptions.OperationalError)
    def _broker_down(exc: Exception):
        return answer(Unavailable(f"broker: {exc}", public_message="the queue is unreachable"))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if exc.code == 404 and request.path.startswith("/v1/jobs/"):
            return answer(JobNotFound(""))  # a malformed id reads like an unknown one
        kept = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}  # Allow
        return answer(SpamqError(exc.name, http_status=exc.code or 500, headers=kept,
                                 code=exc.name.lower().replace(" ", "_"),
                                 public_message=exc.description or exc.name))
