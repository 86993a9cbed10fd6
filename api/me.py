"""``GET /v1/me``: what the calling API key is, may do and is doing.

Its key id (the owner stamped on its jobs), its area of the artifact store
(``<store_tenant_root>/<key id>/``, spamq/storage/tenancy.py) and the prefixes an operator
granted it, the per-key limits it is held to (api/auth.py, api/limits.py, the upload quota of
spamq/storage/uploads.py) and what it uses of them now. Only the caller's own figures: no
other key's id, grant or use is ever read into the answer.

The use is read, never written: the key's job hashes in one pipeline (jobs and rows not yet
scored, chunks and splits sent and not yet stored), its token bucket and its upload bytes. The
rows of a store job still running are extrapolated from its input bytes read so far, as
admission does (schema.ADMISSION); asking here does not count as submitting.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, g, jsonify
from pydantic import BaseModel, Field

from api.auth import RATE_PREFIX
from api.openapi import documented
from spamq.jobs.queue import key_window
from spamq.jobs.schema import ENDED, STORE, job_key, owner_key
from spamq.settings import Settings
from spamq.storage import tenancy
from spamq.storage.uploads import BYTES_PREFIX, NO_OWNER, TOTAL

me = Blueprint("me", __name__)


class StoreArea(BaseModel):
    area: str = Field(description="this key's own area of the artifact store, e.g. "
                                  "'tenants/<key id>/' ('' with authentication off: the whole "
                                  "store); uploads go under its 'uploads/'")
    grants: list[str] = Field(description="further store prefixes an operator granted this key")
    prefixes: list[str] = Field(description="every prefix hdfs_input/hdfs_output may name")


class Quotas(BaseModel):
    rate_limit_per_s: float = Field(description="requests per second (token bucket refill)")
    rate_limit_burst: int = Field(description="token bucket size: requests in a burst")
    max_pending_rows: int = Field(description="rows not yet scored before submissions get 429")
    max_interactive_rows: int = Field(description="rows of small (interactive) jobs waiting")
    queue_share_floor: int = Field(description="queued chunks/splits this key may always hold "
                                               "while the queues are full")
    bulk_window: int = Field(description="bulk chunks and splits sent at once, over all of "
                                         "this key's jobs; more wait parked")
    max_upload_bytes: int = Field(description="bytes of one uploaded file")
    max_upload_bytes_held: int = Field(description="bytes of uploads held in the store at once")
    max_texts_per_request: int
    max_chars_per_text: int
    max_texts_per_job: int = Field(description="rows of an uploaded file")
    max_body_bytes: int = Field(description="bytes of a JSON body")
    results_page_max: int = Field(description="largest ?limit= of a results page")
    feedback_max_items: int = Field(description="items per POST /v1/feedback")
    max_deadline_s: float
    job_ttl_s: int = Field(description="seconds jobs and results are kept")


class Usage(BaseModel):
    jobs_in_flight: int = Field(description="jobs queued or running")
    rows_pending: int = Field(description="rows not yet scored (held to max_pending_rows)")
    interactive_rows_pending: int = Field(description="of them, rows of small jobs")
    pieces_in_flight: int = Field(description="chunks and splits sent and not yet stored")
    requests_available: float = Field(description="tokens in the key's bucket now")
    upload_bytes_held: int = Field(description="bytes of this key's uploads in the store")


class Me(BaseModel):
    """``GET /v1/me``."""

    key_id: str | None = Field(description="the calling key's id (16 hex digits; the owner of "
                                           "its jobs); null with authentication off")
    store: StoreArea
    quotas: Quotas
    usage: Usage


def _quotas(s: Settings) -> Quotas:
    return Quotas(
        rate_limit_per_s=s.rate_limit_per_s, rate_limit_burst=s.rate_limit_burst,
        max_pending_rows=s.max_pending_rows_per_key,
        max_interactive_rows=s.max_interactive_rows_per_key,
        queue_share_floor=s.queue_share_floor, bulk_window=key_window(s),
        max_upload_bytes=s.max_upload_bytes, max_upload_bytes_held=s.max_upload_bytes_per_key,
        max_texts_per_request=s.max_texts_per_request, max_chars_per_text=s.max_chars_per_text,
        max_texts_per_job=s.max_texts_per_job, max_body_bytes=s.max_body_bytes,
        results_page_max=s.results_page_max, feedback_max_items=s.feedback_max_items,
        max_deadline_s=s.max_deadline_s, job_ttl_s=s.job_ttl_s)


def _store_area(s: Settings, owner: str | None) -> StoreArea:
    prefixes = tenancy.prefixes(owner, tenant_root=s.store_tenant_root, grants=s.store_grants)
    shown = [p + "/" if p else "" for p in prefixes]
    return StoreArea(area=shown[0], grants=shown[1:], prefixes=shown)


_FIELDS = ("status", "kind", "queue", "total", "done", "chunks_sent", "chunks_done",
           "bytes_total", "bytes_done", "est_rows", "rejected")


def _rows_left(job: dict[str, Any]) -> int:
    """A job's rows not yet scored; a store job's extrapolated from its input bytes read."""
    done = int(job["done"] or 0)
    if job["kind"] != STORE:
        return max(0, int(job["total"] or 0) - done)
    read, total = int(job["bytes_done"] or 0), int(job["bytes_total"] or 0)
    if read > 0:
        return max(0, (total - read) * (done + int(job["rejected"] or 0)) // read)
    return max(0, int(job["est_rows"] or 0) - done)


def _usage(s: Settings, redis: Any, owner: str | None) -> Usage:
    ids = [_text(v) for v in redis.smembers(owner_key(owner))]
    pipe = redis.pipeline(transaction=False)
    for job_id in ids:  # job ids the API put in the set (job_key checks each)
        pipe.hmget(job_key(job_id), *_FIELDS)
    pipe.hmget(RATE_PREFIX + (owner or "-"), "tokens", "at")
    pipe.hget(BYTES_PREFIX + (owner or NO_OWNER), TOTAL)
    *jobs, bucket, held = pipe.execute()
    live = [dict(zip(_FIELDS, map(_text, values), strict=True)) for values in jobs]
    live = [job for job in live if job["status"] is not None and job["status"] not in ENDED]
    rows = [(_rows_left(job), job["queue"] == s.interactive_queue) for job in live]
    available = float(s.rate_limit_burst)
    tokens, at = (_text(v) for v in bucket)
    if tokens is not None and at is not None:  # the bucket as api/auth.py's script refills it
        refilled = float(tokens) + max(0.0, time.time() - float(at)) * s.rate_limit_per_s
        available = round(min(available, refilled), 2)
    return Usage(
        jobs_in_flight=len(live), rows_pending=sum(n for n, _ in rows),
        interactive_rows_pending=sum(n for n, small in rows if small),
        pieces_in_flight=sum(max(0, int(j["chunks_sent"] or 0) - int(j["chunks_done"] or 0))
                             for j in live),
        requests_available=available, upload_bytes_held=int(held or 0))


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


@me.get("/v1/me")
@documented("The calling key: its id, store area and grants, quotas and current use",
            ok={200: Me})
def whoami():
    """The calling key's id, store area and grants, quotas and current use (its own only)."""
    ext = current_app.extensions["spamq"]
    settings: Settings = ext["settings"]
    owner: str | None = g.get("spamq_owner")
    body = Me(key_id=owner, store=_store_area(settings, owner), quotas=_quotas(settings),
              usage=_usage(settings, ext["store"].redis, owner))
    return jsonify(body.model_dump())
