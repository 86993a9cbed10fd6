"""The one error hierarchy: every spamq error is a :class:`SpamqError`.

Each kind says how an HTTP client is answered (``http_status``, ``code``, ``field``,
``public_message``, and any ``headers`` such as Retry-After); api/errors.py turns that into the
answer, in one place, and every answer has the one shape of :meth:`SpamqError.as_dict`:
``{"error", "field", "message"}`` (``field`` null unless a request field is at fault), plus the
public figures a kind adds (an overloaded queue's depth, a timed-out job's ``status_url``).

The exception's own text (``str(exc)``) may name paths, hosts or causes: it is for the log only.
A client reads ``public_message``, which is fixed per class unless the error is the client's own
(a request error says what was wrong with the request, never quoting a file or another tenant).
"""

from __future__ import annotations

from typing import Any


class SpamqError(Exception):
    """Base of every spamq error. Class attributes give the defaults; the keyword arguments
    override them for one instance; further keyword arguments are public figures added to the
    answer's body (``extra``)."""

    http_status: int = 500
    code: str = "internal_error"
    field: str | None = None
    public_message: str = "the server failed (see its log)"
    headers: dict[str, str] = {}

    def __init__(self, *args: object, http_status: int | None = None, code: str | None = None,
                 field: str | None = None, public_message: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(*args)
        if http_status is not None:
            self.http_status = http_status
        if code is not None:
            self.code = code
        if field is not None:
            self.field = field
        if public_message is not None:
            self.public_message = public_message
        if headers is not None:
            self.headers = headers
        self.extra = extra

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of the HTTP answer: the one error shape."""
        return {"error": self.code, "field": self.field, "message": self.public_message,
                **self.extra}


class InvalidRequest(SpamqError):
    """The client's request is at fault (a 4xx): the answer names the ``field`` (a JSON path,
    a form field, a query parameter or a header; None for the body as a whole) and says why."""

    http_status = 422
    code = "invalid_request"

    def __init__(self, field: str | None, message: str, *, status: int = 422) -> None:
        if not 400 <= status < 500:
            raise ValueError(f"a request error is a 4xx, not {status}")
        super().__init__(message, http_status=status, public_message=message)
        self.field = field

    @property
    def message(self) -> str:
        return self.public_message

    @property
    def status(self) -> int:
        return self.http_status


class PayloadTooLarge(InvalidRequest):
    """Too many texts or items, too long a text, too large a body or upload: 413."""

    http_status = 413

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(field, message, status=413)


class Unauthorized(SpamqError):
    """No API key, or not one of ours."""

    http_status = 401
    code = "unauthorized"
    public_message = "an API key is required (Authorization: Bearer <key> or X-API-Key)"
    headers = {"WWW-Authenticate": 'Bearer realm="spamq"'}


class Forbidden(SpamqError):
    """The credential given does not open this endpoint."""

    http_status = 403
    code = "forbidden"
    public_message = "this credential does not open this endpoint"


class NotFound(SpamqError):
    """No such thing (for this API key)."""

    http_status = 404
    code = "not_found"
    public_message = "not found"


class Conflict(SpamqError):
    """The request does not fit the state of what it names (a job already ended, ...)."""

    http_status = 409
    code = "conflict"
    public_message = "the request conflicts with the current state"


class RateLimited(SpamqError):
    """The API key's token bucket is empty: retry after ``Retry-After`` seconds."""

    http_status = 429
    code = "rate_limited"
    public_message = "too many requests for this API key"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(headers={"Retry-After": str(retry_after_s)})


class Overloaded(SpamqError):
    """The queues are full and the key holds its share of them, or the key has too many rows
    waiting (``code`` "over_quota"): retry after ``Retry-After`` seconds."""

    http_status = 429
    code = "overloaded"
    public_message = "the service is overloaded; retry later"
    retry_after_s = 5

    def __init__(self, message: str, *, code: str = "overloaded", **figures: Any) -> None:
        super().__init__(message, code=code, public_message=message,
                         headers={"Retry-After": str(self.retry_after_s)}, **figures)


class Unavailable(SpamqError):
    """Something the service needs (Redis, the queue, the artifact store) is unreachable."""

    http_status = 503
    code = "unavailable"
    public_message = "a service spamq needs is unreachable; retry later"


class JobFailed(SpamqError):
    """A synchronous prediction's job failed (``message``: the job's own error, fit for its
    client)."""

    http_status = 500
    code = "job_failed"
    public_message = "the job failed"


class Timeout(SpamqError):
    """A synchronous prediction did not finish in time: poll ``status_url``."""

    http_status = 504
    code = "timeout"
    public_message = "not finished in time; poll status_url for the result"
