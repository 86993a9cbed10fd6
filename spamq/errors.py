"""The one error hierarchy: every spamq error is a :class:`SpamqError`.

Each kind says how an HTTP client is answered (``http_status``, ``code``, ``field``,
``public_message``); api/errors.py turns that into the answer, in one place. The exception's
own text (``str(exc)``) may name paths, hosts or causes: it is for the log only. A client reads
``public_message``, which is fixed per class unless the error is the client's own (a request
error says what was wrong with the request, never quoting a file or another tenant).
"""

from __future__ import annotations

from typing import Any


class SpamqError(Exception):
    """Base of every spamq error. Class attributes give the defaults; the keyword arguments
    override them for one instance."""

    http_status: int = 500
    code: str = "internal_error"
    field: str | None = None
    public_message: str = "the server failed (see its log)"

    def __init__(self, *args: object, http_status: int | None = None, code: str | None = None,
                 field: str | None = None, public_message: str | None = None) -> None:
        super().__init__(*args)
        if http_status is not None:
            self.http_status = http_status
        if code is not None:
            self.code = code
        if field is not None:
            self.field = field
        if public_message is not None:
            self.public_message = public_message

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of the HTTP answer."""
        return {"error": self.code, "message": self.public_message}


class InvalidRequest(SpamqError):
    """The client's request is at fault: the answer names the ``field`` (a JSON path, a form
    field, a query parameter or a header; None for the body as a whole) and says why."""

    http_status = 422
    code = "invalid_request"

    def __init__(self, field: str | None, message: str, *, status: int = 422) -> None:
        super().__init__(message, http_status=status, public_message=message)
        self.field = field
        self.message = message

    @property
    def status(self) -> int:
        return self.http_status

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.code, "field": self.field, "message": self.message}
