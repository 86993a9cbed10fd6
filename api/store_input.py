"""``POST /v1/jobs`` with ``{"hdfs_input", "column", "format", "hdfs_output"}``: a job whose
input file is read from the artifact store (HDFS, or the local store) and whose results the
workers write back there (spamq/bulk_io.py).

A key reads and writes only under its own prefixes (spamq/tenancy.py). Answers never quote
a file's contents, list a directory or show where the store lives; store failures are logged
here, and the client gets a 503.
"""

from __future__ import annotations

import io
import logging
from pathlib import PurePosixPath
from typing import Any

from api.validation import InvalidRequest, parse_upload, upload_format
from spamq import bulk_io, tenancy
from spamq.artifacts import ArtifactError, ArtifactStore, artifact_store_from_settings
from spamq.settings import Settings

logger = logging.getLogger(__name__)

FIELDS = {"hdfs_input", "hdfs_output", "column", "format", "deadline_s"}


def _path(body: dict[str, Any], field: str, allowed: list[str]) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(field, f"'{field}' is required: a path in the artifact store")
    try:
        path = bulk_io.store_path(value)
    except (ValueError, ArtifactError) as exc:
        raise InvalidRequest(field, f"'{field}' is not a usable path: {exc}") from exc
    if not tenancy.allowed(path, allowed):
        raise InvalidRequest(field, f"'{field}' is outside this key's store area "
                             f"({', '.join(p + '/' for p in allowed)})", status=403)
    return path


def artifacts(settings: Settings) -> ArtifactStore:
    try:
        return artifact_store_from_settings(settings)
    except Exception as exc:  # noqa: BLE001 - misconfiguration: logged, a 503 for the client
        logger.error("no artifact store is usable: %s", exc)
        raise InvalidRequest("hdfs_input", "the artifact store is not available",
                             status=503) from exc


def _check_output(store: ArtifactStore, out: str, allowed: list[str]) -> None:
    """``out`` must be a directory to be (no parent is a file) and hold no file yet."""
    if store.size(out) is not None:
        raise InvalidRequest("hdfs_output", "'hdfs_output' is a file, not a directory")
    for parent in PurePosixPath(out).parents:
        if str(parent) == "." or not tenancy.allowed(str(parent), allowed):
            break
        if store.size(str(parent)) is not None:
            raise InvalidRequest("hdfs_output", "'hdfs_output' lies under a file")
    present = [name for name in store.files(out) if "/" not in name]
    if present:  # our parts would mix with another output's files (Hadoop refuses too)
        raise InvalidRequest(
            "hdfs_output", f"'hdfs_output' already holds {len(present)} file(s); name a new "
            "directory, or resume its job with the same Idempotency-Key", status=409)


def read_store_input(
    body: dict[str, Any], settings: Settings, *, owner: str | None
) -> tuple[list[str], list[int], list[dict[str, Any]], str, ArtifactStore]:
    """(texts, rows, rejected, output dir, store) for a JSON body naming ``hdfs_input``."""
    unknown = sorted(k for k in body if k not in FIELDS)
    if unknown:
        raise InvalidRequest(None, f"unknown field(s) with 'hdfs_input' ({len(unknown)}); "
                             f"allowed: {', '.join(sorted(FIELDS))}")
    allowed = tenancy.prefixes(owner, tenant_root=settings.store_tenant_root,
                               grants=settings.store_grants)
    src, out = _path(body, "hdfs_input", allowed), _path(body, "hdfs_output", allowed)
    column = body.get("column", "text")
    if not isinstance(column, str) or not column or len(column) > 200:
        raise InvalidRequest("column", "'column' must be a non-empty string (<= 200 characters)")
    fmt = body.get("format")
    if fmt is not None and not isinstance(fmt, str):
        raise InvalidRequest("format", "'format' must be csv, tsv or jsonl")
    fmt = upload_format(src.rsplit("/", 1)[-1], fmt)
    store = artifacts(settings)
    try:
        size = store.size(src)
        if size is None:
            raise InvalidRequest("hdfs_input", "'hdfs_input': no such file", status=422)
        if size > settings.max_upload_bytes:
            raise InvalidRequest("hdfs_input", f"'hdfs_input' has {size} bytes; at most "
                                 f"{settings.max_upload_bytes}", status=413)
        _check_output(store, out, allowed)
        data = store.read_bytes(src)
    except ArtifactError as exc:
        logger.warning("artifact store failed for a store job: %s", exc)
        raise InvalidRequest("hdfs_input", "the artifact store failed; retry later",
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
