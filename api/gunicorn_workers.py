"""The gunicorn worker classes ``spamq api`` runs (``settings.api_worker_class``).

* ``GeventWorker`` (the default): each connection is a greenlet, so a client that sends its
  body slowly holds a greenlet (of ``api_worker_connections``), not one of a few threads.
  A body not fully in ``api_body_timeout_s`` after its headers ends with a JSON 408, and the
  connection closes. The request line and headers are bounded already: gunicorn's gevent
  worker gives them its keep-alive timeout (2 s), then drops the connection.
* ``ThreadWorker``: gunicorn's gthread; a slow client holds one of ``api_threads``.

Both answer what gunicorn answers itself, before the app sees a request (431 for a header
over limit_request_field_size, 400 for a bad request line, ...), as JSON like the app's own
errors, with the status gunicorn chose.

Not in the ``api`` package: gunicorn's master imports this module before it forks the workers,
and the gevent worker monkey-patches only then, so nothing that opens sockets or makes locks
(Flask, redis, kombu: ``api/__init__.py``) may be imported here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import gevent
from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.workers import base, ggevent, gthread

from spamq.errors import SpamqError


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error`` (an HTML page), writing a JSON body instead."""
    body = json.dumps(SpamqError(code=reason.lower().replace(" ", "_"),
                                 public_message=mesg or reason).as_dict())  # the one shape
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, (head + body).encode("latin1"))  # json.dumps wrote ASCII


#: header names a malformed header may be called by in an answer (any other: "a header")
_NAMED_HEADERS = {h.upper(): h for h in ("Authorization", "X-API-Key", "Content-Length",
                                          "Transfer-Encoding", "Content-Type", "Host",
                                          "Idempotency-Key")}


class MalformedHeader(http_errors.InvalidHeader):
    """A bad header as gunicorn answers (400) and logs it: the rule broken and the header's
    name if it is one of ``_NAMED_HEADERS``, never the client's bytes (gunicorn's own text
    quotes the header line: an API key in it would be echoed and logged)."""

    def __init__(self, what: str, req: Any = None) -> None:
        super().__init__(what, req=req)

    def __str__(self) -> str:
        return str(self.hdr)


def header_named(raw: object) -> str:
    """The known header a malformed header line names, else "a request header"."""
    name = str(raw).split(":", 1)[0].strip().split(" ", 1)[0].upper()
    known = _NAMED_HEADERS.get(name)
    return f"header {known}" if known else "a request header"


def sanitized(exc: BaseException) -> BaseException:
    """``exc`` as gunicorn may answer and log it: no byte of the request in its text."""
    if isinstance(exc, (http_errors.InvalidResponseHeader,
                        http_errors.InvalidResponseHeaderName, MalformedHeader)):
        return exc  # the application's own header (a 500, nothing of the client's), or done
    req = getattr(exc, "req", None)
    if isinstance(exc, (http_errors.InvalidHeader, http_errors.ObsoleteFolding)):
        return MalformedHeader(f"malformed {header_named(exc.hdr)}", req)
    if isinstance(exc, http_errors.InvalidHeaderName):
        return MalformedHeader("malformed request header name", req)
    if isinstance(exc, (http_errors.InvalidRequestLine, http_errors.InvalidRequestMethod,
                        http_errors.InvalidHTTPVersion)):
        return http_errors.InvalidRequestLine("malformed")
    return exc


class _JsonErrors(base.Worker):
    def init_process(self) -> None:
        util.write_error = write_json_error  # gunicorn's Worker.handle_error writes through it
        super().init_process()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        super().handle_error(req, client, addr, sanitized(exc))


class ThreadWorker(_JsonErrors, gthread.ThreadWorker):
    pass


class GeventWorker(_JsonErrors, ggevent.GeventWorker):
    def load_wsgi(self) -> None:
        super().load_wsgi()
        from spamq.settings import get_settings

        # gunicorn's Worker sets wsgi in load_wsgi without a type mypy can see
        self.wsgi = body_deadline(self.wsgi, get_settings().api_body_timeout_s)  # type: ignore[has-type]


def body_deadline(app: Any, seconds: float) -> Any:
    """WSGI middleware: reading the request body raises a 408 once ``seconds`` have passed."""

    def deadline_app(environ: dict, start_response: Any) -> Any:
        environ["wsgi.input"] = _DeadlineInput(environ["wsgi.input"], seconds)
        return app(environ, start_response)

    return deadline_app


class _DeadlineInput:
    """``wsgi.input`` whose reads stop waiting for the client at a deadline (gevent only)."""

    def __init__(self, stream: Any, seconds: float) -> None:
        self._stream, self._seconds = stream, seconds
        self._deadline = time.monotonic() + seconds

    def _bounded(self, read: Any, *args: Any) -> Any:
        from werkzeug.exceptions import RequestTimeout  # an HTTPException: Flask answers JSON

        late = RequestTimeout(f"the request body did not arrive within {self._seconds:g} s")
        # gunicorn marks the body failed when its read raises, so the connection then closes.
        with gevent.Timeout(max(0.0, self._deadline - time.monotonic()), late):
            return read(*args)

    def read(self, *args: Any) -> bytes:
        return self._bounded(self._stream.read, *args)

    def readline(self, *args: Any) -> bytes:
        return self._bounded(self._stream.readline, *args)

    def readlines(self, *args: Any) -> list[bytes]:
        return self._bounded(self._stream.readlines, *args)

    def __iter__(self) -> Any:
        return iter(self.readline, b"")
