"""HTTP routes: the job API, synchronous predict, the study project's /predict, health."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for

from api.validation import InvalidRequest, parse_texts
from spamq.jobs import Job, JobNotFound, JobStore
from spamq.queue import SCORE_CHUNK
from spamq.settings import Settings

bp = Blueprint("spamq", __name__)


def _ctx() -> tuple[Settings, JobStore, Any]:
    ext = current_app.extensions["spamq"]
    return ext["settings"], ext["store"], ext["send_task"]


def _json_body() -> Any:
    payload = request.get_json(silent=True)
    if payload is None:
        raise InvalidRequest(None, "the request body must be JSON (Content-Type: application/json)",
                             status=400)
    return payload


def _iso(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat() if ts is not None else None


def _submit(texts: list[str], *, queue: str) -> Job:
    settings, store, send_task = _ctx()
    job, plan = store.create(texts, chunk_size=settings.chunk_size, queue=queue)
    for chunk in plan:
        send_task(SCORE_CHUNK, args=[job.id, chunk.index, chunk.start, chunk.stop], queue=queue)
    return job


def _queue_for(n_texts: int) -> str:
    settings = _ctx()[0]
    return settings.interactive_queue if n_texts <= settings.chunk_size else settings.bulk_queue


def _texts(field: str) -> list[str]:
    settings = _ctx()[0]
    return parse_texts(_json_body(), field=field, max_items=settings.max_texts_per_request,
                       max_chars=settings.max_chars_per_text)


def _view(job: Job, store: JobStore) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "progress": {"done": job.done, "total": job.total},
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "model_version": job.model_version,
        "error": job.error,
    }
    if job.status == "done":
        view["results"] = store.results(job.id)
    return view


@bp.post("/v1/jobs")
def create_job():
    texts = _texts("texts")
    job = _submit(texts, queue=_queue_for(len(texts)))
    status_url = url_for("spamq.get_job", job_id=job.id)
    body = {"id": job.id, "status": job.status, "status_url": status_url}
    return jsonify(body), 202, {"Location": status_url}


@bp.get("/v1/jobs/<job_id>")
def get_job(job_id: str):
    store = _ctx()[1]
    try:
        job = store.get(job_id)
    except JobNotFound:
        return jsonify({"error": "not_found", "message": f"no job {job_id!r} (unknown or expired)"}), 404
    return jsonify(_view(job, store))


def _predict_sync(texts: list[str]) -> tuple[Job, list[dict[str, Any]] | None]:
    settings, store, _ = _ctx()
    job = _submit(texts, queue=_queue_for(len(texts)))
    job = store.wait(job.id, settings.predict_timeout_s)
    return job, store.results(job.id) if job.status == "done" else None


def _not_done(job: Job):
    status_url = url_for("spamq.get_job", job_id=job.id)
    if job.status == "failed":
        body = {"error": "job_failed", "id": job.id, "message": job.error, "status_url": status_url}
        return jsonify(body), 500
    body = {"error": "timeout", "id": job.id, "status": job.status, "status_url": status_url,
            "message": "not finished in time; poll status_url for the result"}
    return jsonify(body), 504, {"Location": status_url}


@bp.post("/v1/predict")
def predict_v1():
    job, results = _predict_sync(_texts("texts"))
    if results is None:
        return _not_done(job)
    return jsonify({"id": job.id, "model_version": job.model_version, "results": results})


@bp.route("/predict", methods=["GET", "POST"])
def predict_legacy():
    """The study project's call: ``{"text": [...]}`` -> ``{"Result": [{label, score}]}``.

    ``score`` is the probability of the returned label, as the study project gave it.
    """
    job, results = _predict_sync(_texts("text"))
    if results is None:
        return _not_done(job)
    return jsonify({"Result": [
        {"label": r["label"],
         "score": r["spam_probability"] if r["label"] == "spam" else 1.0 - r["spam_probability"]}
        for r in results
    ]})


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    store = _ctx()[1]
    workers = store.workers()
    ready = [w for w in workers if w.get("model_version")]
    body = {"status": "ready" if ready else "not_ready", "redis": "ok", "workers": workers}
    if not ready:
        body["message"] = "no worker with a loaded model is answering"
    return jsonify(body), 200 if ready else 503

