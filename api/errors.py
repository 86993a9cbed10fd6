"""Every error answer of the API, in one place: a :class:`~spamq.errors.SpamqError` answers
with its own ``http_status`` and body (``{"error", "field", "message"}`` for a request error,
``{"error", "message"}`` otherwise); Redis or the broker unreachable is a 503; werkzeug's own
HTTP errors keep their status. A server-side error's text goes to the log, never to the client.
"""

from __future__ import annotations

import logging

import kombu.exceptions
import redis
from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from spamq.errors import InvalidRequest, SpamqError
from spamq.jobs.schema import JobNotFound

logger = logging.getLogger(__name__)


def answer(exc: SpamqError):
    """The HTTP answer to ``exc``."""
    if exc.http_status >= 500:
        logger.warning("%s: %s", type(exc).__name__, exc)
    return jsonify(exc.as_dict()), exc.http_status


def install(app: Flask, *, max_upload_bytes: int) -> None:
    app.register_error_handler(SpamqError, answer)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        if request.mimetype == "multipart/form-data":  # JSON bodies: api/requests.py
            return answer(InvalidRequest(None, f"an upload may have at most {max_upload_bytes} "
                                         "bytes", status=413))
        return _http(exc)

    @app.errorhandler(redis.RedisError)
    def _redis_down(exc: redis.RedisError):
        logger.warning("redis unavailable: %s", exc)
        return jsonify({"error": "unavailable", "message": "the job store is unreachable"}), 503

    @app.errorhandler(kombu.exceptions.OperationalError)
    def _broker_down(exc: Exception):
        logger.warning("broker unavailable: %s", exc)
        return jsonify({"error": "unavailable", "message": "the queue is unreachable"}), 503

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if exc.code == 404 and request.path.startswith("/v1/jobs/"):
            return answer(JobNotFound(""))  # a malformed id reads like an unknown one
        return jsonify(
            {"error": exc.name.lower().replace(" ", "_"), "message": exc.description}
        ), exc.code
