"""The public view of a job: what ``GET /v1/jobs/<id>`` answers, what a webhook event carries
(the same view, without inline results) and what the CLI and ``spamq.client`` read.

:func:`job_view` builds it from the job hash alone; :func:`live_view` adds what takes more
reads (a parked job's place, a store job's rows scored by running attempts, a small job's
results inline), for the API.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from spamq.jobs.model import Job
from spamq.jobs.schema import DONE, ENDED, QUEUED, RUNNING, STORE
from spamq.jobs.store import JobStore
from spamq.jobs.store_jobs import StoreJobs
from spamq.settings import Settings

STALLED = "stalled"  # running, but no chunk stored for stalled_after_s (said by the view only)
PUBLIC_STATUSES = (QUEUED, RUNNING, STALLED, *ENDED)


def job_url(job_id: str, what: str = "") -> str:
    """The job's path in the API: ``/v1/jobs/<id>``, or its ``results``, ``rejected``,
    ``parts``, ``webhooks``."""
    return f"/v1/jobs/{job_id}" + (f"/{what}" if what else "")


def _iso(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat() if ts is not None else None


def _stalled_for(job: Job, now: float, stalled_after_s: float | None) -> float | None:
    """Seconds a running job has gone without a stored chunk, once past ``stalled_after_s``."""
    if job.status != RUNNING or stalled_after_s is None:
        return None
    since = now - (job.progress_at or job.started_at or job.created_at)
    return since if since >= stalled_after_s else None


def _rate(job: Job, rows: int, now: float, stalled: bool) -> dict[str, float | None]:
    """Rows scored per second since the first piece started, and the time left at that pace
    (none while the job is stalled: a pace it is not keeping says nothing). A store job's time
    left comes from the share of its input bytes scored so far."""
    if job.started_at is None or rows == 0:
        return {"rows_per_s": None, "eta_s": None}
    elapsed = max((job.finished_at or now) - job.started_at, 1e-6)
    eta: float | None = None
    if job.finished:
        eta = 0.0
    elif stalled or (job.kind == STORE and not job.bytes_done):
        eta = None
    elif job.kind == STORE:
        eta = round(elapsed * (job.bytes_total / job.bytes_done - 1), 2)
    else:
        eta = round((job.total - rows) / (rows / elapsed), 2)
    return {"rows_per_s": round(rows / elapsed, 1), "eta_s": eta}


def job_view(job: Job, *, now: float | None = None, stalled_after_s: float | None = None,
             running_rows: int = 0) -> dict[str, Any]:
    """The job's public view from its hash. ``stalled_after_s``: a running job without a
    stored piece for that long reads ``stalled`` (None: never); ``running_rows``: a store
    job's rows scored by attempts still running (counted as done)."""
    now = time.time() if now is None else now
    stalled = _stalled_for(job, now, stalled_after_s)
    rows = job.done + (running_rows if job.kind == STORE and not job.finished else 0)
    progress: dict[str, Any] = {"done": rows, "total": job.total}
    if job.kind == STORE:  # rows are counted as they are read: their total is known at the end
        progress.update(total=job.total if job.status == DONE else None,
                        bytes_done=job.bytes_done, bytes_total=job.bytes_total)
    view: dict[str, Any] = {
        "id": job.id,
        "status": STALLED if stalled is not None else job.status,
        "stalled_for_s": round(stalled, 1) if stalled is not None else None,
        "progress": progress,
        "chunks": {"done": job.chunks_done, "total": job.chunks_total,
                   "failed": job.chunks_failed},
        "rate": _rate(job, rows, now, stalled is not None),
        "input_rows": job.input_rows,
        "rejected": job.rejected,
        "results_url": job_url(job.id, "results"),
        "rejected_url": job_url(job.id, "rejected"),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "model_version": job.model_version,
        "error": job.error,
        "output": job.output or None,
    }
    if job.kind == STORE:
        view["parts_url"] = job_url(job.id, "parts")
    return view


def live_view(store: JobStore, job: Job, settings: Settings) -> dict[str, Any]:
    """:func:`job_view` with what takes more reads: a parked bulk job's ``queue_position``
    (how many of the key's parked jobs are ahead of it), a running store job's rows in
    progress, and a small done job's ``results`` inline (any job's: ``results_url``)."""
    running = (StoreJobs(store).rows_in_progress(job.id)
               if job.kind == STORE and not job.finished else 0)
    view = job_view(job, stalled_after_s=settings.stalled_after_s, running_rows=running)
    if job.status == QUEUED and job.queue == settings.bulk_queue:
        view["queue_position"] = store.leases.parked_position(job.id, job.owner)
    if job.kind != STORE and job.status == DONE and job.total <= settings.max_texts_per_request:
        view["results"] = store.results.results(job.id)
    return view
