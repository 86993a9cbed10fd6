"""Pydantic's validation errors as the API's: the request models' constraints (api/requests.py)
are the only rules, and the first error they find becomes an
:class:`~spamq.errors.InvalidRequest` naming the field as a JSON path (``texts[3]``,
``items[2].label``, ``webhook.url``), never quoting the input: 413 when a size limit of the
payload is passed (too many texts or items, too long a text), 400 when the body is not a JSON
object, 422 otherwise. An unknown field is counted, never named: a client's key is not echoed.

The custom rules a constraint cannot state (a text to score is not blank, holds no NUL) are
the validators below, raising :class:`PydanticCustomError`, so their errors take this path too.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from spamq.errors import InvalidRequest, PayloadTooLarge
from spamq.storage.rows import NOT_UNICODE, kind
from spamq.storage.rows import blank as _blank

__all__ = ["InvalidRequest", "no_nul", "not_blank", "printable", "request_error",
           "scoring_text"]

#: a list or text too long under one of these fields is the payload's size: a 413
PAYLOAD_FIELDS = frozenset({"texts", "text", "items"})
_TOO_LONG = frozenset({"too_long", "string_too_long"})
_EXTRA = frozenset({"extra_forbidden", "unexpected_keyword_argument"})
#: what a type error says the field must be
_EXPECTED = {"string_type": "a string", "list_type": "a list", "tuple_type": "a list",
             "model_type": "an object", "dict_type": "an object", "dataclass_type": "an object",
             "model_attributes_type": "an object", "float_type": "a number",
             "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
             "bool_type": "a boolean"}
_BOUNDS = {"greater_than": "greater than {gt}", "greater_than_equal": "at least {ge}",
           "less_than": "less than {lt}", "less_than_equal": "at most {le}"}


def scoring_text(text: str) -> str:
    """A text to score: not blank (white space or invisible characters only), no NUL."""
    if _blank(text):
        raise PydanticCustomError("blank", "is empty or blank")
    if "\x00" in text:
        raise PydanticCustomError("nul", "contains a NUL character")
    return text


def not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "is empty or blank")
    return value


def printable(value: str) -> str:
    """A label-like string: printable (no NUL, no control character) and not blank."""
    if not value.strip() or not value.isprintable():
        raise PydanticCustomError("not_printable", "must be printable and not blank")
    return value


def json_path(loc: tuple[int | str, ...]) -> str | None:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or None


def _fields_at(model: Any, loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the model (or pydantic dataclass) found at ``loc`` of ``model``."""
    for part in loc:
        if isinstance(part, str):
            fields = getattr(model, "model_fields", None) or getattr(
                model, "__pydantic_fields__", {})
            model = fields[part].annotation if part in fields else None
        while model is not None and not _has_fields(model) and get_args(model):
            model = next((a for a in get_args(model) if a is not type(None)), None)
    return sorted(getattr(model, "model_fields", None) or getattr(model, "__pydantic_fields__", {}))


def _has_fields(tp: Any) -> bool:
    return isinstance(tp, type) and (issubclass(tp, BaseModel) or dataclasses.is_dataclass(tp))


def _message(err: ErrorDetails, name: str) -> str:
    kind_, ctx, given = err["type"], err.get("ctx") or {}, err.get("input")
    if kind_ == "missing":
        return f"{name} is required"
    if kind_ == "too_long":
        return f"{name} has {ctx['actual_length']} items; at most {ctx['max_length']}"
    if kind_ == "string_too_long":
        return f"{name} has {len(str(given))} characters; at most {ctx['max_length']}"
    if kind_ == "string_too_short":
        return f"{name} is empty or blank"
    if kind_ == "too_short":
        return f"{name} must not be empty"
    if kind_ == "string_unicode":
        return f"{name} is {NOT_UNICODE}"
    if kind_ in _EXPECTED:
        return f"{name} must be {_EXPECTED[kind_]}, not {kind(given)}"
    if kind_ in _BOUNDS:
        return f"{name} must be {_BOUNDS[kind_].format(**ctx)}"
    if isinstance(err.get("msg"), str) and kind_ not in ("value_error", "assertion_error"):
        return f"{name} {err['msg']}" if err["type"] in _CUSTOM else f"{name}: {err['msg']}"
    return f"{name} is not valid"


#: the errors the validators above raise: their message follows the field's name
_CUSTOM = frozenset({"blank", "nul", "not_printable", "item_source", "output_column"})


def request_error(exc: ValidationError, model: Any = None) -> InvalidRequest:
    """The first of ``exc``'s errors as the API's request error."""
    errors = exc.errors(include_url=False, include_context=True, include_input=True)
    first = errors[0]
    loc = tuple(first["loc"])
    if first["type"] in _EXTRA:  # counted, never named
        where = loc[:-1]
        unknown = sum(1 for e in errors if e["type"] in _EXTRA and tuple(e["loc"][:-1]) == where)
        field = json_path(where)
        allowed = ", ".join(_fields_at(model, where)) if model is not None else ""
        return InvalidRequest(field, f"unknown field(s) ({unknown})"
                              + (f" in '{field}'" if field else "")
                              + (f"; allowed: {allowed}" if allowed else ""))
    field = json_path(loc)
    if field is None and first["type"] in ("model_type", "dict_type"):
        return InvalidRequest(None, "the request body must be a JSON object", status=400)
    message = _message(first, f"'{field}'" if field else "the request")
    named = [p for p in loc if isinstance(p, str)]
    if first["type"] in _TOO_LONG and named and named[-1] in PAYLOAD_FIELDS:
        return PayloadTooLarge(field, message)
    return InvalidRequest(field, message)


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul", "contains a NUL character")
    return value
