"""``spamq feedback add FILE | stats | delete``: report the right labels of messages to the API.

``add`` reads a CSV or TSV file of ``text,label[,category,note]`` rows (a header row naming
the columns, in any order, or no header and the columns in that order) and sends it to
``POST /v1/feedback`` in requests of ``--chunk`` items (1,000 by default, the API's limit),
with the key in SPAMQ_CLIENT_API_KEY, through :mod:`spamq.client`. Sending the same file
again is harmless: within a key the newest item per text wins.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from spamq.cli.jobs import client
from spamq.client import ApiError

COLUMNS = ("text", "label", "category", "note")


def _dialect(path: Path, given: str | None) -> str:
    if given:
        return given
    return "tsv" if path.suffix.lower() in (".tsv", ".tab") else "csv"


def read_items(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, item) of each non-blank row of the file."""
    with open(path, newline="", encoding="utf-8") as fh:
        if fmt == "tsv":
            rows = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            rows = csv.reader(fh)
        columns: list[str] = list(COLUMNS)
        first = True
        for row in rows:
            line = rows.line_num
            if not any(cell.strip() for cell in row):
                continue
            if first:
                first = False
                names = [c.strip().lower() for c in row]
                if "text" in names and "label" in names:
                    columns = names
                    continue
            item: dict[str, Any] = {}
            for name, cell in zip(columns, row, strict=False):
                if name in COLUMNS and (name in ("text", "label") or cell.strip()):
                    item[name] = cell.strip() if name == "label" else cell
            yield line, item


def _chunks(items: Iterator[tuple[int, dict[str, Any]]], size: int
            ) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    chunk: list[tuple[int, dict[str, Any]]] = []
    for entry in items:
        chunk.append(entry)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _where(field: str | None, lines: list[int]) -> str:
    """An API error's ``items[i].x`` as the file's line."""
    if field and field.startswith("items["):
        index, _, rest = field[len("items["):].partition("]")
        if index.isdigit() and int(index) < len(lines):
            column = rest.lstrip(".") or "row"
            return f"line {lines[int(index)]} ({column})"
    return field or "request"


def _add(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"spamq feedback add: no file {path}", file=sys.stderr)
        return 2
    api = client(args)
    accepted = duplicates = sent = requests_sent = 0
    try:
        for chunk in _chunks(read_items(path, _dialect(path, args.format)), args.chunk):
            try:
                body = api.feedback([item for _, item in chunk])
            except ApiError as exc:
                where = _where(exc.field, [line for line, _ in chunk])
                print(f"spamq feedback add: {exc.status} at {where}: {exc.message}; {sent} "
                      f"rows were stored before it (accepted {accepted}, duplicates "
                      f"{duplicates})", file=sys.stderr)
                return 1
            accepted += body["accepted"]
            duplicates += body["duplicates"]
            sent += len(chunk)
            requests_sent += 1
    except (requests.RequestException, OSError, UnicodeDecodeError, csv.Error) as exc:
        print(f"spamq feedback add: {exc}", file=sys.stderr)
        return 1
    if not sent:
        print(f"spamq feedback add: {path} has no rows", file=sys.stderr)
        return 2
    print(f"accepted {accepted}, duplicates {duplicates} ({sent} rows in {requests_sent} "
          "requests)")
    return 0


def _stats(args: argparse.Namespace) -> int:
    try:
        print(json.dumps(client(args).feedback_stats(), indent=2))
    except (ApiError, requests.RequestException) as exc:
        print(f"spamq feedback stats: {exc}", file=sys.stderr)
        return 1
    return 0


def _delete(args: argparse.Namespace) -> int:
    if not args.all and not args.text_sha256:
        print("spamq feedback delete: give --all or --text-sha256 HASH", file=sys.stderr)
        return 2
    try:
        deleted = client(args).feedback_delete(args.text_sha256)["deleted"]
    except (ApiError, requests.RequestException) as exc:
        print(f"spamq feedback delete: {exc}", file=sys.stderr)
        return 1
    print(f"deleted {deleted}")
    return 0


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def add_feedback_parser(sub: Any) -> None:
    fb = sub.add_parser("feedback", help="report right labels (spam/ham) to the API")
    actions = fb.add_subparsers(dest="feedback_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=None, help="API base URL (default: from settings)")
        p.add_argument("--timeout", type=float, default=60.0, help="per HTTP call")

    p = actions.add_parser("add", help="send a CSV or TSV of text,label[,category,note]")
    p.add_argument("file", help="a .csv or .tsv file (a header row naming the columns, or none "
                   "and the columns text,label,category,note in that order)")
    p.add_argument("--format", choices=("csv", "tsv"), help="default: from the file name")
    p.add_argument("--chunk", type=_positive, default=1000, help="items per request")
    common(p)
    p.set_defaults(func=_add)

    p = actions.add_parser("stats", help="counts of this key's feedback by label, category, day")
    common(p)
    p.set_defaults(func=_stats)

    p = actions.add_parser("delete", help="delete this key's feedback (all, or one text)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--all", action="store_true", help="all of this key's feedback")
    group.add_argument("--text-sha256", help="the items of one text (as POST answered)")
    common(p)
    p.set_defaults(func=_delete)
