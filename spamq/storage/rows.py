"""Why one input row cannot be scored: the checks that uploaded rows and bulk input share.

Plain functions on values, no web framework: the API (api/validation.py) and the bulk input
readers (spamq/storage/splits.py) both use them. No message quotes the row's text.
"""

from __future__ import annotations

import unicodedata
from typing import Any

NOT_UNICODE = "not valid Unicode (a lone surrogate)"

# What csv's strict mode says, in words: an unclosed quote merges the rest of the file into
# one field without it, and 'a"b"c' silently becomes 'abc'.
CSV_ERRORS = {"unexpected end of data": "a quoted field is not closed",
              "expected after": "a quoted field has text after its closing quote"}


def blank(text: str) -> bool:
    """Nothing visible: only whitespace and invisible format characters (zero-width, BOM...)."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


def lone_surrogate(text: str) -> bool:
    """Not encodable as UTF-8 (JSON's "\\ud800" decodes to such a string; Redis refuses it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value), "a value")


def shown(value: Any, limit: int = 100) -> str:
    """``repr(value)`` cut to about ``limit`` characters: how client input is echoed."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def text_problem(text: Any, *, max_chars: int) -> str | None:
    """Why a text cannot be scored, or None."""
    if text is None:
        return "missing"
    if not isinstance(text, str):
        return f"not a string ({kind(text)})"
    if blank(text):
        return "empty or blank"
    if len(text) > max_chars:
        return f"too long: {len(text)} characters, at most {max_chars}"
    if "\x00" in text:
        return "contains a NUL character"
    if lone_surrogate(text):
        return NOT_UNICODE
    return None
