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
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, current_app, g, jsonify

from api.openapi import documented
from api.requests import models, parse_body, parse_query
from api.responses import FeedbackDeleted, FeedbackStats, FeedbackStored
from spamq.errors import InvalidRequest
from spamq.feedback import store as feedback_store
from spamq.jobs import schema
from spamq.jobs.schema import STORE
from spamq.jobs.store import JobNotFound, JobStore
from spamq.jobs.store_submit import SharedArtifacts
from spamq.settings import Settings
from spamq.storage.artifacts import ArtifactStore

logger = logging.getLogger(__name__)
feedback = Blueprint("feedback", __name__)


def _ctx() -> tuple[Settings, JobStore]:
    ext = current_app.extensions["spamq"]
    return ext["settings"], ext["store"]


def _tenant() -> str:
    """The calling key's id; ``local`` with authentication off."""
    return g.get("spamq_owner") or feedback_store.LOCAL_TENANT


def _artifacts() -> ArtifactStore:
    """The app's one artifact store client (built on first use; a 503 if unusable)."""
    shared: SharedArtifacts = current_app.extensions["spamq"]["artifacts"]
    return shared.get()


def _job_rows(items: list[tuple[int, str, int]]) -> dict[int, tuple[str, str | None]]:
    """(text, model_version) of each job-row item ``(position, job_id, index)``, read from the jobs'
    stored texts and results in two pipelined round trips; 422 naming ``items[i].*`` for an
    item whose job is not this key's texts job or whose row is not stored."""
    _, store = _ctx()
    owner = g.get("spamq_owner")
    jobs: dict[str, Any] = {}
    for i, job_id, _ in items:
        if job_id in jobs:
            continue
        try:
            job = store.jobs.get(job_id)
        except JobNotFound:
            job = None
        if job is None or (owner and job.owner not in (None, owner)):
            raise InvalidRequest(f"items[{i}].job_id", f"'items[{i}].job_id': no such job for "
                                 "this API key (unknown, expired, or another key's)")
        if job.kind == STORE:
            raise InvalidRequest(f"items[{i}].job_id", f"'items[{i}].job_id' is a store job; "
                                 "report its rows with 'text'")
        jobs[job_id] = job
    for i, job_id, index in items:
        if index >= jobs[job_id].total:
            raise InvalidRequest(f"items[{i}].index", f"'items[{i}].index' is past the job's "
                                 f"last row ({jobs[job_id].total - 1})")
    pipe = store.redis.pipeline(transaction=False)
    for _, job_id, index in items:
        job = jobs[job_id]
        keys = schema.job_keys(job.id)
        pipe.lindex(keys[1], index)
        pipe.hget(keys[2], index // max(job.chunk_size, 1))
    replies = pipe.execute()
    out: dict[int, tuple[str, str | None]] = {}
    for n, (i, job_id, index) in enumerate(items):
        text, chunk = replies[2 * n], replies[2 * n + 1]
        if text is None:
            raise InvalidRequest(f"items[{i}].index", f"'items[{i}].index': the job's texts "
                                 "are no longer stored")
        job = jobs[job_id]
        version = job.model_version or None
        if chunk is not None:
            results = json.loads(chunk)
            offset = index % max(job.chunk_size, 1)
            if offset < len(results):
                version = results[offset].get("model_version") or version
        out[i] = (text.decode() if isinstance(text, bytes) else text, version)
    return out


@feedback.post("/v1/feedback")
@documented("Report the right label of messages: texts, or rows of this key's texts jobs "
            "(job_id + index); a text repeated in one request counts once (the last wins), "
            "across requests the newest item per text wins", ok={201: FeedbackStored},
            body="feedback")
def add_feedback():
    """Store the items; answer how many were accepted and how many repeated a text of the
    same request (the last one of those wins), with each item's ``text_sha256``."""
    settings, _ = _ctx()
    body = parse_body(models().feedback)
    job_rows = _job_rows([(i, it.job_id, it.index) for i, it in enumerate(body.items)
                          if it.job_id is not None and it.index is not None])
    rows, hashes = [], []
    for i, item in enumerate(body.items):
        row: dict[str, Any] = {"label": item.label, "category": item.category, "note": item.note}
        if item.text is None:  # a row of one of this key's texts jobs
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
@documented("Counts of this key's feedback (the newest item per text, within the retention) "
            "by label, category and day received", ok={200: FeedbackStats})
def feedback_stats():
    """Counts of this key's feedback (deduplicated: the newest item per text) by label,
    category and day received, within the retention."""
    settings, _ = _ctx()
    since = datetime.now(UTC) - timedelta(days=settings.feedback_retention_days)
    table = feedback_store.read_feedback(_artifacts(), [_tenant()], since=since.date(),
                                         root=settings.feedback_root)
    return jsonify(feedback_store.stats(table))


@feedback.delete("/v1/feedback")
@documented("Delete this key's feedback: all of it, or the items of one text (text_sha256)",
            ok={200: FeedbackDeleted}, query="feedback_delete")
def delete_feedback():
    """Delete this key's feedback: all of it, or the items of one ``text_sha256``."""
    settings, _ = _ctx()
    query = parse_query(models().feedback_delete)
    deleted = feedback_store.delete_feedback(_artifacts(), _tenant(),
                                             text_sha256=query.text_sha256,
                                             root=settings.feedback_root)
    return jsonify({"deleted": deleted})
