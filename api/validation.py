"""Request validation: every failure names the field, and maps to a 4xx answer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from spamq.rows import CSV_ERRORS as _CSV_ERRORS
from spamq.rows import NOT_UNICODE, text_problem
from spamq.rows import blank as _blank
from spamq.rows import kind as _kind
from spamq.rows import lone_surrogate as _lone_surrogate
from spamq.rows import shown as _shown


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
    return texts


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


def parse_upload(
    stream: Any, *, fmt: str, column: str, max_rows: int, max_chars: int
) -> tuple[list[str], list[int], list[dict[str, Any]]]:
    """Texts of an uploaded CSV/TSV/JSONL file: (texts, their row numbers, rejected rows).

    Rows are numbered from 0 among data rows (a CSV header is not a row). Every input row is
    either a text or a rejected ``{row, reason}``. No message quotes the file's contents.
    """
    import csv
    import io
    import json

    texts: list[str] = []
    rows: list[int] = []
    rejected: list[dict[str, Any]] = []

    def add(row: int, text: Any, problem: str | None = None) -> None:
        if row >= max_rows:
            raise InvalidRequest("file", f"the file has more than {max_rows} rows", status=413)
        problem = problem or text_problem(text, max_chars=max_chars)
        if problem:
            rejected.append({"row": row, "reason": problem})
        else:
            texts.append(text)
            rows.append(row)

    reader = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        if fmt == "jsonl":
            row = 0
            for line in reader:
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except RecursionError:
                    add(row, None, "not valid JSON (nested too deep)")
                except ValueError:
                    add(row, None, "not valid JSON")
                else:
                    if isinstance(obj, dict):
                        add(row, obj.get(column))
                    else:
                        add(row, None, "not a JSON object")
                row += 1
        else:
            csv.field_size_limit(max(max_chars * 4, 131072))
            records = _csv_records(reader, fmt)
            header = next(records, None)
            if header is None or column not in header:
                n = len(header or [])
                raise InvalidRequest("column", f"no column {_shown(column)} in the {fmt} header "
                                     f"({n} column{'' if n == 1 else 's'})")
            at = header.index(column)
            row = 0
            for record in records:
                if record:  # a blank line is no row
                    add(row, record[at] if at < len(record) else None)
                    row += 1
    except UnicodeDecodeError as exc:
        raise InvalidRequest("file", f"the file is not UTF-8 text: {exc.reason}") from exc
    finally:
        reader.detach()
    if not texts and not rejected:
        raise InvalidRequest("file", "the file has no rows")
    return texts, rows, rejected


def _csv_records(lines: Iterable[str], fmt: str) -> Iterator[list[str]]:
    """The file's csv records, parsed strictly; 422 naming the line where a bad record starts."""
    import csv

    table = csv.reader(lines, delimiter="\t" if fmt == "tsv" else ",", strict=True)
    while True:
        start = table.line_num + 1
        try:
            record = next(table)
        except StopIteration:
            return
        except csv.Error as exc:  # its messages never quote the file
            problem = next((v for k, v in _CSV_ERRORS.items() if k in str(exc)), str(exc))
            raise InvalidRequest("file", f"the {fmt} record starting at line {start} cannot be "
                                 f"read: {problem}") from exc
        yield record


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
