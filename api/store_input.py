"""``POST /v1/jobs`` with ``{"hdfs_input", "column", "format", "hdfs_output"}``: a job whose
input file is read from the artifact store (HDFS, or the local store) and whose results the
workers write back there (spamq/bulk_io.py)."""

from __future__ import annotations

import io
from typing import Any

from api.validation import InvalidRequest, parse_upload, upload_format
from spamq import bulk_io
from spamq.artifacts import ArtifactError, ArtifactStore, artifact_store_from_settings
from spamq.settings import Settings

FIELDS = {"hdfs_input", "hdfs_output", "column", "format"}


def _path(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(field, f"'{field}' is required: a path in the artifact store")
    try:
        return bulk_io.store_path(value)
    except (ValueError, ArtifactError) as exc:
        raise InvalidRequest(field, f"'{field}' is not a usable path: {exc}") from exc


def artifacts(settings: Settings) -> ArtifactStore:
    try:
        return artifact_store_from_settings(settings)
    except Exception as exc:  # noqa: BLE001 - misconfiguration: say so, as a 422
        raise InvalidRequest("hdfs_input", f"no artifact store is usable: {exc}") from exc


def read_store_input(
    body: dict[str, Any], settings: Settings
) -> tuple[list[str], list[int], list[dict[str, Any]], str, ArtifactStore]:
    """(texts, rows, rejected, output dir, store) for a JSON body naming ``hdfs_input``."""
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidRequest(unknown[0], f"unknown field {unknown[0]!r} with 'hdfs_input'; "
                             f"allowed: {', '.join(sorted(FIELDS))}")
    src, out = _path(body, "hdfs_input"), _path(body, "hdfs_output")
    column = body.get("column", "text")
    if not isinstance(column, str) or not column:
        raise InvalidRequest("column", "'column' must be a non-empty string")
    fmt = body.get("format")
    if fmt is not None and not isinstance(fmt, str):
        raise InvalidRequest("format", "'format' must be csv, tsv or jsonl")
    fmt = upload_format(src.rsplit("/", 1)[-1], fmt)
    store = artifacts(settings)
    try:
        size = store.size(src)
        if size is None:
            raise InvalidRequest("hdfs_input", f"'hdfs_input': no file {src} in "
                                 f"{store.describe()}", status=422)
        if size > settings.max_upload_bytes:
            raise InvalidRequest("hdfs_input", f"'hdfs_input' has {size} bytes; at most "
                                 f"{settings.max_upload_bytes}", status=413)
        if store.size(out) is not None:
            raise InvalidRequest("hdfs_output", f"'hdfs_output': {out} is a file, not a directory")
        present = [name for name in store.files(out) if "/" not in name]
        if present:  # our parts would mix with another output's files (Hadoop refuses too)
            raise InvalidRequest(
                "hdfs_output", f"'hdfs_output': {out} already holds {len(present)} file(s) "
                f"({', '.join(present[:3])}); name a new directory, or resume its job with the "
                "same Idempotency-Key", status=409)
        data = store.read_bytes(src)
    except ArtifactError as exc:
        raise InvalidRequest("hdfs_input", f"the artifact store failed: {exc}",
                             status=503) from exc
    if len(data) > settings.max_upload_bytes:  # grew between the stat and the read
        raise InvalidRequest("hdfs_input", f"'hdfs_input' has more than "
                             f"{settings.max_upload_bytes} bytes", status=413)
    try:
        texts, rows, rejected = parse_upload(
            io.BytesIO(data), fmt=fmt, column=column, max_rows=settings.max_texts_per_job,
            max_chars=settings.max_chars_per_text)
    except InvalidRequest as exc:
        field = "hdfs_input" if exc.field == "file" else exc.field
        raise InvalidRequest(field, exc.message, status=exc.status) from exc
    return texts, rows, rejected, out, store
