"""Feedback: ``POST /v1/feedback`` ("report spam" / "not spam"), ``GET /v1/feedback/stats``
and ``DELETE /v1/feedback``, for the calling key's own items only.

Items are written to the artifact store as one Parquet file per request
(spamq/feedback/store.py: ``<feedback_root>/tenant=<key id>/date=.../part-*.parquet``);
nothing goes to Redis per item. An item names its text, or a row of a texts job of the same
key (``job_id`` + ``index``), whose text is read from the job's stored texts.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from flask import Blueprint, current_app, g, jsonify
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from api.requests import _settings, parse_body, parse_query
from api.validation import InvalidRequest, check_text
from spamq.feedback import store as feedback_store
from spamq.jobs import schema
from spamq.jobs.schema import STORE
from spamq.jobs.store import JobNotFound, JobStore
from spamq.settings import Settings
from spamq.storage.artifacts import ArtifactError, ArtifactStore, artifact_store_from_settings
from spamq.storage.rows import NOT_UNICODE, kind, lone_surrogate

logger = logging.getLogger(__name__)
feedback = Blueprint("feedback", __name__)

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
MAX_CATEGORY = 64
MAX_NOTE = 1000
_ITEM_FIELDS = frozenset({"text", "job_id", "index", "label", "category", "note"})


class TextItem(BaseModel):
    """A message and its right label."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    label: Literal["spam", "ham"]
    category: Annotated[str, Field(min_length=1, max_length=MAX_CATEGORY)] | None = None
    note: Annotated[str, Field(max_length=MAX_NOTE)] | None = None


class JobRowItem(BaseModel):
    """Row ``index`` of one of this key's texts jobs (``POST /v1/jobs`` with ``texts``), and
    its right label."""

    model_config = ConfigDict(extra="forbid")
    job_id: str = Field(pattern="^[0-9a-f]{32}$")
    index: int = Field(ge=0)
    label: Literal["spam", "ham"]
    category: Annotated[str, Field(min_length=1, max_length=MAX_CATEGORY)] | None = None
    note: Annotated[str, Field(max_length=MAX_NOTE)] | None = None


def _optional_string(item: dict[str, Any], name: str, where: str, limit: int) -> str | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(where, f"'{where}' must be a string, not {kind(value)}")
    if len(value) > limit:
        raise InvalidRequest(where, f"'{where}' has {len(value)} characters; at most {limit}")
    if lone_surrogate(value):
        raise InvalidRequest(where, f"'{where}' is {NOT_UNICODE}")
    if name == "category" and (not value.strip() or not value.isprintable()):
        raise InvalidRequest(where, f"'{where}' must be printable and not blank")
    if "\x00" in value:
        raise InvalidRequest(where, f"'{where}' contains a NUL character")
    return value


def _item(raw: Any, i: int, max_chars: int) -> dict[str, Any]:
    """One checked item: {label, category, note} and {text} or {job_id, index}."""
    at = f"items[{i}]"
    if not isinstance(raw, dict):
        raise InvalidRequest(at, f"'{at}' must be an object, not {kind(raw)}")
    unknown = sum(1 for k in raw if k not in _ITEM_FIELDS)
    if unknown:  # counted, never named: a client's key is not echoed
        raise InvalidRequest(at, f"'{at}' has {unknown} unknown field(s); allowed: "
                             + ", ".join(sorted(_ITEM_FIELDS)))
    if raw.get("label") not in feedback_store.LABELS:
        raise InvalidRequest(f"{at}.label", f"'{at}.label' must be \"spam\" or \"ham\"")
    out = {"label": raw["label"],
           "category": _optional_string(raw, "category", f"{at}.category", MAX_CATEGORY),
           "note": _optional_string(raw, "note", f"{at}.note", MAX_NOTE)}
    has_text, has_job = "text" in raw, "job_id" in raw or "index" in raw
    if has_text == has_job:
        raise InvalidRequest(at if not has_text else f"{at}.job_id",
                             f"'{at}' needs either 'text', or 'job_id' and 'index'")
    if has_text:
        out["text"] = check_text(raw["text"], f"{at}.text", max_chars=max_chars)
        return out
    job_id, index = raw.get("job_id"), raw.get("index")
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise InvalidRequest(f"{at}.job_id", f"'{at}.job_id' must be a job id (32 hex digits)")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise InvalidRequest(f"{at}.index", f"'{at}.index' must be an integer >= 0")
    out.update(job_id=job_id, index=index)
    return out


class FeedbackBody(BaseModel):
    """``POST /v1/feedback``: ``{"items": [...]}``, each a text or a row of one of this key's
    texts jobs, with its right ``label``, and optionally a ``category`` and a ``note``."""

    items: list[TextItem | JobRowItem] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any, info: ValidationInfo) -> Any:
        settings = _settings(info)
        if not isinstance(data, dict) or "items" not in data:
            raise InvalidRequest("items", "'items' is required: a list of feedback items")
        items = data["items"]
        if not isinstance(items, list):
            raise InvalidRequest("items", f"'items' must be a list, not {kind(items)}")
        if not items:
            raise InvalidRequest("items", "'items' must not be empty")
        if len(items) > settings.feedback_max_items:
            raise InvalidRequest("items", f"'items' has {len(items)} items; at most "
                                 f"{settings.feedback_max_items} per request", status=413)
        unknown = sum(1 for k in data if k != "items")
        if unknown:
            raise InvalidRequest(None, f"unknown field(s) ({unknown}); allowed: items")
        checked = [_item(raw, i, settings.max_chars_per_text) for i, raw in enumerate(items)]
        return {"items": [JobRowItem.model_construct(**c) if "job_id" in c
                          else TextItem.model_construct(**c) for c in checked]}


class DeleteQuery(BaseModel):
    """``DELETE /v1/feedback``: all of this key's feedback, or (``text_sha256``) the items
    of one text (the hash POST /v1/feedback answered with)."""

    text_sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$")

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        unknown = sum(1 for k in data if k != "text_sha256")
        if unknown:
            raise InvalidRequest(None, f"unknown query parameter(s) ({unknown}); allowed: "
                                 "text_sha256")
        sha = data.get("text_sha256")
        if sha is not None and (not isinstance(sha, str) or not _SHA.match(sha)):
            raise InvalidRequest("text_sha256", "'text_sha256' must be 64 lowercase hex digits")
        return data


def _ctx() -> tuple[Settings, JobStore]:
    ext = current_app.extensions["spamq"]
    return ext["settings"], ext["store"]


def _tenant() -> str:
    """The calling key's id; ``local`` with authentication off."""
    return g.get("spamq_owner") or feedback_store.LOCAL_TENANT


def _artifacts() -> ArtifactStore:
    try:
        return artifact_store_from_settings(_ctx()[0])
    except Exception as exc:  # noqa: BLE001 - misconfiguration: logged, a 503 for the client
        logger.error("no artifact store is usable: %s", exc)
        raise ArtifactError("no artifact store is usable") from exc


def _job_rows(items: list[tuple[int, JobRowItem]]) -> dict[int, tuple[str, str | None]]:
    """(text, model_version) of each job-row item (by its position), read from the jobs'
    stored texts and results in two pipelined round trips; 422 naming ``items[i].*`` for an
    item whose job is not this key's texts job or whose row is not stored."""
    _, store = _ctx()
    owner = g.get("spamq_owner")
    jobs: dict[str, Any] = {}
    for i, item in items:
        if item.job_id in jobs:
            continue
        try:
            job = store.get(item.job_id)
        except JobNotFound:
            job = None
        if job is None or (owner and job.owner not in (None, owner)):
            raise InvalidRequest(f"items[{i}].job_id", f"'items[{i}].job_id': no such job for "
                                 "this API key (unknown, expired, or another key's)")
        if job.kind == STORE:
            raise InvalidRequest(f"items[{i}].job_id", f"'items[{i}].job_id' is a store job; "
                                 "report its rows with 'text'")
        jobs[item.job_id] = job
    for i, item in items:
        if item.index >= jobs[item.job_id].total:
            raise InvalidRequest(f"items[{i}].index", f"'items[{i}].index' is past the job's "
                                 f"last row ({jobs[item.job_id].total - 1})")
    pipe = store.redis.pipeline(transaction=False)
    for _, item in items:
        job = jobs[item.job_id]
        keys = schema.job_keys(job.id)
        pipe.lindex(keys[1], item.index)
        pipe.hget(keys[2], item.index // max(job.chunk_size, 1))
    replies = pipe.execute()
    out: dict[int, tuple[str, str | None]] = {}
    for n, (i, item) in enumerate(items):
        text, chunk = replies[2 * n], replies[2 * n + 1]
        if text is None:
            raise InvalidRequest(f"items[{i}].index", f"'items[{i}].index': the job's texts "
                                 "are no longer stored")
        job = jobs[item.job_id]
        version = job.model_version or None
        if chunk is not None:
            results = json.loads(chunk)
            offset = item.index % max(job.chunk_size, 1)
            if offset < len(results):
                version = results[offset].get("model_version") or version
        out[i] = (text.decode() if isinstance(text, bytes) else text, version)
    return out


@feedback.post("/v1/feedback")
def add_feedback():
    """Store the items; answer how many were accepted and how many repeated a text of the
    same request (the last one of those wins), with each item's ``text_sha256``."""
    settings, _ = _ctx()
    body = parse_body(FeedbackBody)
    job_rows = _job_rows([(i, it) for i, it in enumerate(body.items)
                          if isinstance(it, JobRowItem)])
    rows, hashes = [], []
    for i, item in enumerate(body.items):
        row: dict[str, Any] = {"label": item.label, "category": item.category, "note": item.note}
        if isinstance(item, JobRowItem):
            text, version = job_rows[i]
            row.update(source="job", job_id=item.job_id, row=item.index, model_version=version)
        else:
            text = item.text
            row.update(source="text")
        row.update(text=text, text_sha256=feedback_store.text_sha256(text))
        hashes.append(row["text_sha256"])
        rows.append(row)
    kept, duplicates = feedback_store.dedupe(rows)
    feedback_store.write_feedback(_artifacts(), _tenant(), kept, root=settings.feedback_root)
    return jsonify({"accepted": len(kept), "duplicates": duplicates, "text_sha256": hashes}), 201


@feedback.get("/v1/feedback/stats")
def feedback_stats():
    """Counts of this key's feedback (deduplicated: the newest item per text) by label,
    category and day received, within the retention."""
    settings, _ = _ctx()
    since = datetime.now(UTC) - timedelta(days=settings.feedback_retention_days)
    table = feedback_store.read_feedback(_artifacts(), [_tenant()], since=since.date(),
                                         root=settings.feedback_root)
    return jsonify(feedback_store.stats(table))


@feedback.delete("/v1/feedback")
def delete_feedback():
    """Delete this key's feedback: all of it, or the items of one ``text_sha256``."""
    settings, _ = _ctx()
    query = parse_query(DeleteQuery)
    deleted = feedback_store.delete_feedback(_artifacts(), _tenant(),
                                             text_sha256=query.text_sha256,
                                             root=settings.feedback_root)
    return jsonify({"deleted": deleted})



def openapi_paths(settings: Settings, error: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI paths of the feedback endpoints (api/openapi.py); ``error(description)`` is
    an error answer."""
    body = FeedbackBody.model_json_schema()
    body["properties"]["items"]["maxItems"] = settings.feedback_max_items
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    unavailable = error("Redis or the artifact store is unreachable")
    return {
        "/v1/feedback": {
            "post": {
                "summary": "Report the right label of messages: texts, or rows of this key's "
                           "texts jobs (job_id + index). Stored per key as Parquet in the "
                           "artifact store; a text repeated in one request counts once (the "
                           "last wins), and across requests the newest item per text wins.",
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": body}}},
                "responses": {
                    "201": {"description": "stored", "content": {"application/json": {
                        "schema": {"type": "object", "properties": {
                            "accepted": {"type": "integer"},
                            "duplicates": {"type": "integer",
                                           "description": "items repeating a text of the "
                                                          "same request"},
                            "text_sha256": {"type": "array", "items": {"type": "string"},
                                            "description": "each item's text hash (SHA-256 "
                                                           "of the normalised text), in order: "
                                                           "what DELETE takes"}}}}}},
                    "400": error("the body is not a JSON object"),
                    "413": error(f"more than {settings.feedback_max_items} items, or a text "
                                 f"longer than {settings.max_chars_per_text} characters"),
                    "422": error("a bad item: `field` names it (items[i].label, "
                                 "items[i].job_id for a job that is not this key's texts job, "
                                 "...)"),
                    "503": unavailable}},
            "delete": {
                "summary": "Delete this key's feedback: all of it, or the items of one text",
                "parameters": [{"name": "text_sha256", "in": "query", "required": False,
                                "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}],
                "responses": {
                    "200": {"description": "{deleted: <texts whose items were removed>}"},
                    "422": error("a bad text_sha256 or an unknown parameter"),
                    "503": unavailable}},
        },
        "/v1/feedback/stats": {"get": {
            "summary": "Counts of this key's feedback (the newest item per text, within the "
                       "retention) by label, category and day received",
            "responses": {
                "200": {"description": "the counts", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        "total": {"type": "integer"}, "by_label": counts,
                        "by_category": counts, "by_day": counts}}}}},
                "503": unavailable}}},
    }
