"""HTTP routes: the job API, synchronous predict, the study project's /predict, health."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from api import store_results
from api.openapi import documented
from api.requests import (
    Notified,
    StoreJob,
    Submission,
    UploadForm,
    json_payload,
    models,
    parse_body,
    parse_form,
    parse_query,
)
from api.responses import (
    Accepted,
    Existing,
    Health,
    JobView,
    LegacyPredicted,
    Parts,
    Predicted,
    Ready,
    Rejected,
    ResultsPage,
    Webhooks,
)
from api.store_results import OutputChanged
from spamq.errors import Conflict, InvalidRequest, JobFailed, NotFound, Timeout, Unavailable
from spamq.jobs.queue import PLAN_STORE_JOB, send_chunk, send_refill, send_work
from spamq.jobs.schema import STORE, digest
from spamq.jobs.store import Chunk, DuplicateJob, Job, JobNotFound, JobStore
from spamq.jobs.store_jobs import StoreJobs
from spamq.jobs.store_submit import SharedArtifacts
from spamq.jobs.view import live_view
from spamq.settings import Settings
from spamq.storage.artifacts import ArtifactStore
from spamq.storage.uploads import Upload, Uploads
from spamq.webhooks.outbox import Outbox
from spamq.webhooks.secrets import WebhookSecrets

logger = logging.getLogger(__name__)
bp = Blueprint("spamq", __name__)


def _ctx() -> tuple[Settings, JobStore, Any]:
    ext = current_app.extensions["spamq"]
    return ext["settings"], ext["store"], ext["send_task"]


def _outbox() -> Outbox:
    found: Outbox = current_app.extensions["spamq"]["outbox"]
    return found


def _check_webhook(submission: Submission) -> None:
    """Before the job exists: a webhook needs its key's signing secret (without one every
    attempt would fail). Its URL was checked with the body (api/requests.py)."""
    if isinstance(submission, Notified) and submission.webhook is not None:
        source = current_app.extensions["spamq"]["secrets"].source
        if not WebhookSecrets(source).has_secret(g.get("spamq_owner")):
            raise InvalidRequest("webhook", "this API key has no webhook signing secret; an "
                                 "operator creates one with `spamq keys webhook-secret`")


def _subscribe(job_id: str, submission: Submission, *, new_job: bool = True) -> None:
    """Remember the submission's webhook, if it has one (the deliverer's job watch tells the
    job's end; nothing on the job path waits for it). If that fails for a ``new_job``, nothing
    of which was sent yet, the job is failed at once and its Idempotency-Key freed: a retry
    with the same key makes a new job."""
    if isinstance(submission, Notified) and submission.webhook is not None:
        try:
            _outbox().subscribe(job_id, submission.webhook, g.get("spamq_owner"))
        except Exception:
            if new_job:
                _abandon(job_id)
            raise


def _abandon(job_id: str) -> None:
    store, key = _ctx()[1], request.headers.get("Idempotency-Key")
    try:
        store.jobs.fail(job_id, "the submission failed before it was accepted")
        if key is not None:
            store.jobs.forget_key(g.get("spamq_owner"), key, job_id)
    except Exception:  # the same outage, likely: the answer is the first error
        logger.warning("could not abandon a failed submission's job", exc_info=True,
                       extra={"job_id": job_id})


def _send(job_id: str, plan: list[Chunk], *, queue: str) -> None:
    """Queue the job's chunks. A single-chunk interactive job goes through this process's
    coalescer: alone when nothing is being published, else in the next group message."""
    settings, _, send_task = _ctx()
    if settings.coalesce and len(plan) == 1 and queue == settings.interactive_queue:
        current_app.extensions["spamq"]["coalescer"].send((job_id, plan[0]))
        return
    for chunk in plan:
        send_chunk(send_task, job_id, chunk, queue)


def _submit(texts: list[str], submission: Submission, *, idempotency_key: str | None = None,
            request_sha: str = "") -> Job:
    settings, store, _ = _ctx()
    queue = _queue_for(len(texts))
    bulk = queue == settings.bulk_queue
    job, plan = store.jobs.create(texts, chunk_size=settings.chunk_size, queue=queue,
                                  idempotency_key=idempotency_key, owner=g.get("spamq_owner"),
                                  deadline=submission.deadline(), request_sha=request_sha,
                                  window=settings.bulk_window_chunks if bulk else None,
                                  park=bulk)
    _subscribe(job.id, submission)  # before the first chunk is sent
    _send(job.id, plan, queue=queue)
    sent = len(plan)
    if bulk:  # parked: its chunks go within the key's window, after its older jobs'
        sent = send_refill(_ctx()[2], store, job.owner, settings)
    logger.info("queued %d texts in %d chunks on %s (%d sent now)", job.total, job.chunks_total,
                queue, sent, extra={"job_id": job.id})
    return job


def _queue_for(n_texts: int) -> str:
    settings = _ctx()[0]
    return settings.interactive_queue if n_texts <= settings.chunk_size else settings.bulk_queue


#: the Idempotency-Key header (its rule below; its schema for the document)
IDEMPOTENCY_KEY = {"type": "string", "minLength": 1, "maxLength": 200}


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 200 or not key.isprintable():
        raise InvalidRequest("Idempotency-Key", "the Idempotency-Key header must be 1-200 "
                             "printable characters")
    return key  # the store keys it by sha256(owner, key): one key's never names another's job


def _fingerprint() -> str:
    """What a submission asks for, so that a reused Idempotency-Key with another body is told.

    JSON bodies compare as parsed (key order and spacing do not matter); an upload compares
    its file's bytes and its form fields.
    """
    if request.mimetype == "multipart/form-data":
        parts = [json.dumps(sorted(request.form.items(multi=True)))]
        upload = request.files.get("file")
        if upload is not None:
            h = hashlib.sha256()
            for block in iter(lambda: upload.stream.read(1 << 20), b""):
                h.update(block)
            upload.stream.seek(0)
            parts.append(h.hexdigest())
        return digest(*parts)
    return digest(json.dumps(json_payload(), sort_keys=True))


def _existing(job_id: str, request_sha: str):
    """The answer to a resubmission: the job as it is; a failed, cancelled or expired one
    resumes, re-sending only its chunks without stored results."""
    settings, store, _ = _ctx()
    for _ in range(20):  # the first submitter may still be writing the job
        try:
            job = store.jobs.get(job_id)
            break
        except JobNotFound:
            time.sleep(0.01)
    else:
        job = store.jobs.get(job_id)  # still missing: JobNotFound, 404
    if job.request_sha and request_sha != job.request_sha:
        raise InvalidRequest("Idempotency-Key", "this Idempotency-Key was used for a different "
                             "request; send the same body to attach to its job, or use a new key")
    window = settings.bulk_window_chunks if job.queue == settings.bulk_queue else None
    submission = _submission()
    # again: the first submitter may have died before it did; a resumed job's next end is
    # told too (the same ending keeps its event id: deduped)
    _subscribe(job.id, submission, new_job=False)
    bulk = job.queue == settings.bulk_queue
    missing = store.leases.resume(job.id, deadline=submission.deadline(), window=window,
                                  park=bulk)
    if job.kind == STORE and job.finished and StoreJobs(store).planning(job.id):
        _ctx()[2](PLAN_STORE_JOB, args=[job.id], queue=job.queue)  # it ended before its plan
    if missing:
        send_work(_ctx()[2], job, missing)
    if bulk and job.finished:  # resumed: its unsent pieces within the key's window
        send_refill(_ctx()[2], store, job.owner, settings)
    if missing or bulk:
        job = store.jobs.get(job.id)
    status_url = url_for("spamq.get_job", job_id=job.id)
    body = {"id": job.id, "status": job.status, "status_url": status_url, "existing": True,
            "resent_chunks": len(missing)}
    return jsonify(body), 200, {"Location": status_url}


def _upload_as_store_job(form: UploadForm, uploads: Uploads) -> tuple[Upload, StoreJob]:
    """A multipart upload, streamed into the key's ``uploads/`` area of the artifact store
    (werkzeug spools a large part to disk, never to memory); the store job for it."""
    settings = _ctx()[0]
    upload = request.files.get("file")
    if upload is None:
        raise InvalidRequest("file", "a multipart upload needs a 'file' part (CSV, TSV or JSONL)")
    fmt = form.input_format(upload.filename)
    stored = Upload.of(g.get("spamq_owner"), secrets.token_hex(8))
    where = stored.directory(settings.store_tenant_root)
    with tempfile.NamedTemporaryFile(prefix="spamq-upload-") as tmp:
        upload.save(tmp)
        tmp.flush()
        if tmp.tell() == 0:
            raise InvalidRequest("file", "the file has no rows")
        uploads.reserve(stored, tmp.tell())  # past the key's quota: a 413, nothing stored
        try:
            _artifacts().upload_file(Path(tmp.name), f"{where}/input.{fmt}")
        except BaseException:  # an ArtifactError: a 503 (api/errors.py)
            uploads.discard(stored)
            raise
    return stored, models().store_job.model_construct(  # the form's fields were checked already
        hdfs_input=f"{where}/input.{fmt}", hdfs_output=f"{where}/out", format=fmt,
        **{name: value for name, value in form if name != "format"})


def _uploads() -> Uploads:
    settings, store, _ = _ctx()
    return Uploads(store.redis, _artifacts(), tenant_root=settings.store_tenant_root,
                   quota_bytes=settings.max_upload_bytes_per_key, ttl_s=settings.job_ttl_s)


def _upload_job(form: UploadForm, key: str | None, request_sha: str):
    """An upload's store job; the upload is deleted unless its job was accepted (a refusal,
    an error, or an Idempotency-Key's existing job answered instead)."""
    uploads = _uploads()
    stored, job_request = _upload_as_store_job(form, uploads)
    try:
        answer = _store_job(job_request, key, request_sha)
    except BaseException:
        uploads.discard(stored)
        raise
    if answer[1] == 202:
        try:  # the job exists: its answer stands (unrecorded, the upload goes after job_ttl_s)
            uploads.keep(stored, answer[0].get_json()["id"])
        except redis.RedisError as exc:
            logger.warning("upload not recorded with its job: %s", exc)
    else:
        uploads.discard(stored)
    return answer


def _submission() -> Submission:
    """The submission's typed body (parsed once per request; api/requests.py): an upload's
    form, a store job (``hdfs_input``) or texts."""
    if request.mimetype == "multipart/form-data":
        return parse_form(models().upload)
    payload = json_payload()
    store_job = isinstance(payload, dict) and "hdfs_input" in payload
    return parse_body(models().store_job if store_job else models().texts)


def _store_job(job_request: StoreJob, key: str | None, request_sha: str):
    planner = current_app.extensions["spamq"]["planner"]  # spamq/jobs/store_submit.py
    try:
        job = planner.submit(job_request, send_task=_ctx()[2], owner=g.get("spamq_owner"),
                             idempotency_key=key, request_sha=request_sha,
                             subscribe=lambda job_id: _subscribe(job_id, job_request))
    except DuplicateJob as dup:  # a concurrent submission with the same key won
        return _existing(dup.job_id, request_sha)
    except InvalidRequest as exc:  # an upload's fields are the form's, its file is "file"
        if request.mimetype == "multipart/form-data" and exc.field == "hdfs_input":
            raise InvalidRequest("file", exc.message, status=exc.status) from exc
        raise
    return _accepted(job)


@bp.post("/v1/jobs")
@documented("Submit texts (JSON), a store job (hdfs_input) or a CSV/TSV/JSONL file (multipart) "
            "to score", ok={202: Accepted, 200: Existing}, body=("texts", "store_job"),
            form="upload", headers={"Idempotency-Key": IDEMPOTENCY_KEY},
            errors=((403, "a path outside this key's store area"),
                    (409, "hdfs_output already holds files, or is reserved"), Unavailable))
def create_job():
    """JSON ``{"texts": [...]}``, ``{"hdfs_input": ...}`` or a multipart file upload (``file``,
    ``column``, ``format``, ``id_column``, ``keep_columns``)."""
    store = _ctx()[1]
    owner = g.get("spamq_owner")
    key = _idempotency_key()
    request_sha = _fingerprint() if key is not None else ""
    if key is not None and (job_id := store.jobs.job_for_key(key, owner)):
        return _existing(job_id, request_sha)
    submission = _submission()
    _check_webhook(submission)  # before the job (or an upload) exists
    if isinstance(submission, UploadForm):  # a file upload runs as a store job
        return _upload_job(submission, key, request_sha)
    if isinstance(submission, StoreJob):  # files in the artifact store
        return _store_job(submission, key, request_sha)
    assert isinstance(submission, models().texts)
    texts = submission.texts
    try:
        job = _submit(texts, submission, idempotency_key=key, request_sha=request_sha)
    except DuplicateJob as dup:  # a concurrent submission with the same key won
        return _existing(dup.job_id, request_sha)
    return _accepted(job)


def _accepted(job: Job):
    status_url = url_for("spamq.get_job", job_id=job.id)
    body = {"id": job.id, "status": job.status, "status_url": status_url,
            "total": job.total, "rejected": job.rejected}
    return jsonify(body), 202, {"Location": status_url}


@bp.get("/v1/jobs/<job_id:job_id>")
@documented("Status, progress and (small jobs) results", ok={200: JobView})
def get_job(job_id: str):
    store = _ctx()[1]
    job = store.jobs.get(job_id)  # JobNotFound: 404 (api/errors.py)
    return jsonify(live_view(store, job, _ctx()[0]))


@bp.delete("/v1/jobs/<job_id:job_id>")
@documented("Cancel the remaining chunks", ok={200: JobView}, errors=(Conflict,))
def cancel_job(job_id: str):
    """Stop the job's remaining chunks; results already stored stay readable."""
    settings, store, send_task = _ctx()
    cancelled = store.jobs.cancel(job_id)  # JobNotFound: 404
    job = store.jobs.get(job_id)
    if cancelled and job.queue == settings.bulk_queue:  # its window slots go to the key's next
        send_refill(send_task, store, job.owner, settings)
    if not cancelled:
        raise Conflict(public_message=f"job {job.id} is already {job.status}", status=job.status)
    return jsonify(live_view(store, job, _ctx()[0]))


@bp.get("/v1/jobs/<job_id:job_id>/rejected")
@documented("Input rows that were not scored, with the reason (a store job's: JSONL)",
            ok={200: Rejected}, streams=("application/x-ndjson",), errors=(OutputChanged,))
def job_rejected(job_id: str):
    store = _ctx()[1]
    job = store.jobs.get(job_id)  # JobNotFound: 404 (api/errors.py)
    if job.kind == STORE:  # streamed from the parts' _rejected files
        rows = store_results.rejected(_artifacts(), StoreJobs(store), job.id, job.output)
        return Response(store_results.primed(_jsonl(_pages(rows))),
                        mimetype="application/x-ndjson")
    return jsonify({"id": job.id, "count": 0, "rejected": []})  # texts are checked whole


@bp.get("/v1/jobs/<job_id:job_id>/webhooks")
@documented("The job's webhook and its delivery attempts", ok={200: Webhooks})
def job_webhooks(job_id: str):
    """The job's webhook and its delivery attempts, oldest first (the same ``event_id`` on
    every retry of one event)."""
    job = _ctx()[1].jobs.get(job_id)  # JobNotFound: 404, another key's job too (api/auth.py)
    outbox = _outbox()
    return jsonify({"id": job.id, "webhook": outbox.subscription(job.id),
                    "attempts": outbox.attempts(job.id)})


@bp.get("/v1/jobs/<job_id:job_id>/parts")
@documented("A store job's committed part files so far", ok={200: Parts},
            errors=((404, "not a store job: it has no part files"),))
def job_parts(job_id: str):
    """A store job's committed part files so far (readable while the job runs)."""
    store = _ctx()[1]
    job = store.jobs.get(job_id)
    if job.kind != STORE:
        raise NotFound(public_message="only a job with hdfs_input has part files")
    store_jobs = StoreJobs(store)
    fmt = store_jobs.spec(job.id).get("output_format", "jsonl")
    # how many worker processes committed its parts (their names are for the operator)
    return jsonify({"id": job.id, "status": job.status, "output": job.output,
                    "parts": store_results.parts(store_jobs, job.id, fmt),
                    "workers": len(store_jobs.worker_counts(job.id))})


_CSV_FIELDS = ["row", "label", "spam_probability", "truncated", "model_version"]


def _artifacts() -> ArtifactStore:
    """The app's one artifact store client (built on first use; a 503 if unusable)."""
    shared: SharedArtifacts = current_app.extensions["spamq"]["artifacts"]
    return shared.get()


def _pages(rows: Iterator[dict[str, Any]], size: int = 1000) -> Iterator[list[dict[str, Any]]]:
    page: list[dict[str, Any]] = []
    for row in rows:
        page.append(row)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def _jsonl(pages: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    for page in pages:
        yield "".join(json.dumps(r) + "\n" for r in page)


def _csv(pages: Iterator[list[dict[str, Any]]], fields: list[str] | None) -> Iterator[str]:
    """CSV text, a page at a time; ``fields`` None: the first row's keys."""
    buffer = io.StringIO()
    writer = None
    for page in pages:
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=fields or list(page[0]),
                                    extrasaction="ignore")
            writer.writeheader()
        writer.writerows(page)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if writer is None and fields:
        yield ",".join(fields) + "\r\n"


@bp.get("/v1/jobs/<job_id:job_id>/results")
@documented("A page of results, or all of them as JSONL or CSV (format=jsonl|csv)",
            ok={200: ResultsPage}, query="results", streams=("application/x-ndjson", "text/csv"),
            errors=(OutputChanged,))
def job_results(job_id: str):
    """A page of results (``offset``, ``limit``), or all of them streamed (``format=jsonl|csv``).

    Offsets count scored texts; each result names its input ``row`` (a store job's: its
    ``file`` and ``ref``). Chunks (parts) not scored yet are absent.
    """
    store = _ctx()[1]
    query = parse_query(models().results)
    fmt, offset, limit = query.format, query.offset, query.limit
    paged = fmt == "json"
    job = store.jobs.get(job_id)  # JobNotFound: 404 (api/errors.py)
    if job.kind == STORE:
        rows = store_results.results(_artifacts(), StoreJobs(store), job.id, job.output,
                                     offset=offset, limit=limit)
        pages, fields = _pages(rows), None
        total = job.done
    else:
        stop = job.total if limit is None else min(job.total, offset + limit)
        step = max(job.chunk_size, 1)
        pages = (store.results.result_rows(job, start, min(start + step, stop))
                 for start in range(offset, stop, step))
        fields, total = _CSV_FIELDS, job.total
    if paged:
        assert limit is not None
        results = [row for page in pages for row in page]
        stop = offset + len(results)
        nxt = (url_for("spamq.job_results", job_id=job.id, offset=stop, limit=limit)
               if stop < total else None)
        return jsonify({"id": job.id, "status": job.status, "total": total,
                        "offset": offset, "limit": limit, "results": results, "next": nxt})
    body = store_results.primed(_jsonl(pages) if fmt == "jsonl" else _csv(pages, fields))
    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    headers = {"Content-Disposition": f'attachment; filename="{job.id}.{fmt}"',
               "X-Job-Status": job.status}
    return Response(body, mimetype=mimetype, headers=headers)


def _predict_sync(texts: list[str], submission: Submission
                  ) -> tuple[Job, list[dict[str, Any]] | None]:
    settings, store, _ = _ctx()
    job = _submit(texts, submission)
    return store.results.wait_for(job.id, settings.predict_timeout_s, results=True)


def _not_done(job: Job):
    status_url = url_for("spamq.get_job", job_id=job.id)
    if job.status == "failed":
        raise JobFailed(public_message=job.error, id=job.id, status_url=status_url)
    raise Timeout(headers={"Location": status_url}, id=job.id, status=job.status,
                  status_url=status_url)


@bp.post("/v1/predict")
@documented("Submit and wait (up to the configured timeout)", ok={200: Predicted},
            body="texts", errors=(Timeout, JobFailed))
def predict_v1():
    body = parse_body(models().texts)
    _check_webhook(body)
    job, results = _predict_sync(body.texts, body)
    if results is None:
        return _not_done(job)
    return jsonify({"id": job.id, "model_version": job.model_version, "results": results})


@bp.route("/predict", methods=["GET", "POST"])
@documented("The study project's call (GET with a body works too)", ok={200: LegacyPredicted},
            body="legacy", errors=(Timeout, JobFailed))
def predict_legacy():
    """The study project's call: ``{"text": [...]}`` -> ``{"Result": [{label, score}]}``.

    ``score`` is the probability of the returned label, as the study project gave it.
    """
    body = parse_body(models().legacy)
    job, results = _predict_sync(body.text, body)
    if results is None:
        return _not_done(job)
    return jsonify({"Result": [
        {"label": r["label"],
         "score": r["spam_probability"] if r["label"] == "spam" else 1.0 - r["spam_probability"]}
        for r in results
    ]})


@bp.get("/healthz")
@documented("The process is alive", ok={200: Health})
def healthz():
    return jsonify({"status": "ok"})


def _beating(worker: dict[str, Any], now: float) -> bool:
    """Whether a heartbeat is fresh: two of the worker's beats missed (its key outlives it by
    a third), and the worker is dead (killed) or hung."""
    every = worker.get("heartbeat_s") or _ctx()[0].worker_heartbeat_s
    at = worker.get("at")
    return isinstance(at, int | float) and isinstance(every, int | float) \
        and now - at <= 2 * every + 1


@bp.get("/readyz")
@documented("Whether a live worker has a loaded model (and the secrets are readable)",
            ok={200: Ready, 503: Ready})
def readyz():
    """Public: ready or not, and how many live workers have a model loaded; which workers,
    and why not ready, are for the operator (/metrics, the API's log)."""
    store = _ctx()[1]
    secrets = current_app.extensions["spamq"].get("secrets")
    secrets_ok, secrets_reason = secrets.ready() if secrets else (True, "")
    now = time.time()
    ready = sum(1 for w in store.workers.heartbeats()
                if w.get("model_version") and w.get("ready", True) and _beating(w, now))
    ok = bool(ready) and secrets_ok
    body: dict[str, Any] = {"ready": ok, "status": "ready" if ok else "not_ready",
                            "workers": ready}
    if not secrets_ok:
        logger.warning("not ready: secrets not readable: %s", secrets_reason)
        body["message"] = "the service's secrets (Vault) cannot be read"
    elif not ready:
        body["message"] = "no live worker with a loaded model"
    return jsonify(body), 200 if ok else 503
