"""Request checks: every failure names the field, and maps to a 4xx answer. The request models
that use them are in api/requests.py."""

from __future__ import annotations

from typing import Any

from spamq.errors import InvalidRequest
from spamq.storage.rows import NOT_UNICODE
from spamq.storage.rows import blank as _blank
from spamq.storage.rows import kind as _kind
from spamq.storage.rows import lone_surrogate as _lone_surrogate
from spamq.storage.rows import shown as _shown

__all__ = ["InvalidRequest", "check_text", "int_param", "parse_texts", "require_object",
           "upload_format"]


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
        check_text(text, f"{field}[{i}]", max_chars=max_chars)
    return texts


def check_text(text: Any, where: str, *, max_chars: int) -> str:
    """``text`` if it is a text to score: a non-blank string of valid Unicode, no NUL, at most
    ``max_chars`` characters (413); 422 naming ``where`` otherwise."""
    if not isinstance(text, str):
        raise InvalidRequest(where, f"'{where}' must be a string, not {_kind(text)}")
    if _blank(text):
        raise InvalidRequest(where, f"'{where}' is empty or blank")
    if len(text) > max_chars:
        raise InvalidRequest(
            where, f"'{where}' has {len(text)} characters; at most {max_chars}", status=413
        )
    if "\x00" in text:
        raise InvalidRequest(where, f"'{where}' contains a NUL character")
    if _lone_surrogate(text):
        raise InvalidRequest(where, f"'{where}' is {NOT_UNICODE}")
    return text


UPLOAD_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def upload_format(filename: str | None, given: str | None) -> str:
    """The upload's format: the ``format`` form field, else the file name's extension."""
    if given:
        if given not in ("csv", "tsv", "jsonl"):
            raise InvalidRequest(
                "format", f"'format' must be csv, tsv or jsonl, not {_shown(given, 50)}")
        return given
    suffix = "." + (filename or "").rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    if suffix not in UPLOAD_FORMATS:
        raise InvalidRequest(
            "format", f"cannot tell the format of {_shown(filename)}: name it .csv, .tsv or .jsonl "
            "or give the 'format' form field")
    return UPLOAD_FORMATS[suffix]


def int_param(args: Any, name: str, *, default: int | None, low: int,
              high: int | None = None) -> int | None:
    """A query parameter as an int in ``[low, high]``; 422 naming it otherwise."""
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(name, f"'{name}' must be an integer, not {_shown(raw, 50)}") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidRequest(name, f"'{name}' must be {bound}, not {value}")
    return value
