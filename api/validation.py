"""Request validation: every failure names the field, and maps to a 4xx answer."""

from __future__ import annotations

from typing import Any


class InvalidRequest(ValueError):
    """A client error: ``status`` is the HTTP code, ``field`` the JSON path at fault."""

    def __init__(self, field: str | None, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status

    def as_dict(self) -> dict[str, Any]:
        return {"error": "invalid_request", "field": self.field, "message": self.message}


def require_object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidRequest(None, "the request body must be a JSON object", status=400)
    return payload


def parse_texts(
    payload: Any, *, field: str, max_items: int, max_chars: int
) -> list[str]:
    """``payload[field]`` as a non-empty list of at most ``max_items`` strings of bounded size."""
    body = require_object(payload)
    if field not in body:
        raise InvalidRequest(field, f"'{field}' is required: a list of strings")
    texts = body[field]
    if not isinstance(texts, list):
        raise InvalidRequest(field, f"'{field}' must be a list of strings, not {_kind(texts)}")
    if not texts:
        raise InvalidRequest(field, f"'{field}' must not be empty")
    if len(texts) > max_items:
        raise InvalidRequest(
            field, f"'{field}' has {len(texts)} items; at most {max_items} per request", status=413
        )
    for i, text in enumerate(texts):
        where = f"{field}[{i}]"
        if not isinstance(text, str):
            raise InvalidRequest(where, f"'{where}' must be a string, not {_kind(text)}")
        if not text.strip():
            raise InvalidRequest(where, f"'{where}' is empty or blank")
        if len(text) > max_chars:
            raise InvalidRequest(
                where, f"'{where}' has {len(text)} characters; at most {max_chars}", status=413
            )
        if "\x00" in text:
            raise InvalidRequest(where, f"'{where}' contains a NUL character")
    return texts


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")
