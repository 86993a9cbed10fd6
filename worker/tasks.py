"""Thin Celery tasks; the work is in plain functions below."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, as_completed
from contextlib import contextmanager
from typing import Protocol

import redis
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from spamq.jobs.queue import (
    PLAN_STORE_JOB,
    SCORE_CHUNK,
    SCORE_GROUP,
    SCORE_SPLIT,
    send_chunk,
    send_refill,
    send_split,
)
from spamq.jobs.schema import should_stop
from spamq.jobs.store import Chunk, Claim, JobNotFound, JobStore
from spamq.logs import job_context
from worker import process, resilience
from worker.celery_app import app

logger = logging.getLogger(__name__)


class Scorer(Protocol):
    """What :func:`score_chunk` needs: worker.batcher.Batcher is one."""

    def expect(self): ...  # a context manager

    def submit(self, texts: list[str], *, interactive: bool = True,
               owner: str = ""): ...  # a Future; owner: the key id (served in turn)


def score_chunk(
    store: JobStore, scorer: Scorer, job_id: str, chunk: Chunk, *, interactive: bool = True,
    lease_s: float = 10.0, holder: str = "", send_next: Callable[[int], None] | None = None,
    leases: resilience.LeaseBook | None = None,
    log_predictions: Callable[[str, int, list[str], list[dict]], None] | None = None,
) -> bool:
    """Score one chunk of a job and store its results once; False if stored, gone or cancelled.

    ``send_next(index)`` queues the job's next unsent chunk (a bulk job keeps a window of
    chunks queued). The task returns (and its message is acked) only after this has stored
    the results and sent the next chunk.
    """
    try:
        # One live attempt per chunk (celery#5935); a late copy waits for the holder's results.
        with resilience.chunk_lease(store, job_id, chunk.index, ttl_s=lease_s,
                                    holder=holder, book=leases) as fresh:
            if not fresh:
                return False
            with scorer.expect():  # a forming batch may wait (briefly) for these texts
                claim = store.results.claim(job_id, chunk.start, chunk.stop)
                if not _scorable(store, job_id, chunk, claim):
                    return False
                texts = claim.texts
                future = scorer.submit(texts, interactive=interactive, owner=claim.owner)
            # A failing pass is bisected to the item that fails; that item gets an error.
            results, version = resilience.score_isolating_failures(
                scorer, texts, future, interactive=interactive, owner=claim.owner)
            stored, nxt = store.results.store_chunk_next(job_id, chunk.index, results,
                                                         model_version=version)
            if nxt is not None and send_next is not None:
                send_next(nxt)
        if stored and log_predictions is not None:
            log_predictions(job_id, chunk.start, texts, results)
        return stored
    except JobNotFound:
        _gone(job_id, chunk)
        return False


def _scorable(store: JobStore, job_id: str, chunk: Chunk, claim: Claim) -> bool:
    """Whether a claimed chunk is to be scored: False if its job was cancelled or has expired
    (its deadline passing now expires it); JobNotFound if the job or its texts are gone."""
    status, texts, deadline = claim.status, claim.texts, claim.deadline
    if status is None:
        raise JobNotFound(job_id)
    if should_stop(status):  # ended (cancelled, expired, failed, done): nothing to do
        logger.info("job %s: %s; chunk %d skipped", job_id, status, chunk.index)
        return False
    if resilience.past_deadline(store, job_id, deadline):
        return False
    if len(texts) != chunk.stop - chunk.start:
        raise JobNotFound(job_id)
    return True


def _gone(job_id: str, chunk: Chunk) -> None:
    logger.warning("job %s: gone (expired or deleted); chunk %d dropped", job_id, chunk.index)


def score_group(
    store: JobStore, scorer: Scorer, items: list[tuple[str, Chunk]], *, lease_s: float = 10.0,
    holder: str = "", leases: resilience.LeaseBook | None = None,
    log_predictions: Callable[[str, int, list[str], list[dict]], None] | None = None,
) -> int:
    """Score single-chunk jobs that came in one message (api/coalesce.py): one claim round
    trip, one batcher submission and one pipelined write per key among them (the batcher
    serves keys in turn, and a key's results are stored as soon as its rows are scored: a
    key's lone text never waits for another key's thousands). Each job keeps its own lease,
    status, deadline and owner; the message is acked only after every result is stored.
    Returns how many chunks were stored now."""
    Todo = tuple[str, Chunk, list[str]]
    stored: list[tuple[Todo, list[dict]]] = []
    with resilience.chunk_leases(store, [(job_id, c.index) for job_id, c in items],
                                 ttl_s=lease_s, holder=holder, book=leases) as fresh:
        live = [item for item, ok in zip(items, fresh, strict=True) if ok]
        with scorer.expect():
            claims = store.results.claim_many([(j, c.start, c.stop) for j, c in live])
            by_owner: dict[str, list[Todo]] = {}
            for (job_id, chunk), claim in zip(live, claims, strict=True):
                try:
                    if _scorable(store, job_id, chunk, claim):
                        by_owner.setdefault(claim.owner, []).append((job_id, chunk, claim.texts))
                except JobNotFound:
                    _gone(job_id, chunk)
            submitted: dict[Future, tuple[str, list[Todo], list[str]]] = {}
            for owner, todo in by_owner.items():
                every = [t for _, _, texts in todo for t in texts]
                future = scorer.submit(every, interactive=True, owner=owner)
                submitted[future] = (owner, todo, every)
        for future in as_completed(submitted):
            owner, todo, every = submitted[future]
            results, version = resilience.score_isolating_failures(
                scorer, every, future, interactive=True, owner=owner)
            parts, at = [], 0
            for job_id, chunk, texts in todo:
                parts.append((job_id, chunk.index, results[at : at + len(texts)]))
                at += len(texts)
            outcomes = store.results.store_chunks(parts, model_version=version)
            stored += [(item, part) for item, (_, _, part), outcome
                       in zip(todo, parts, outcomes, strict=True)
                       if outcome is not None and outcome[0]]
    for (job_id, chunk, texts), part in stored:  # each job's line carries its id
        logger.info("chunk %d [%d, %d) stored", chunk.index, chunk.start, chunk.stop,
                    extra={"job_id": job_id})
        if log_predictions is not None:
            log_predictions(job_id, chunk.start, texts, part)
    return len(stored)


def _scorer(state: process.WorkerProcess) -> Scorer:
    marker = state.settings.test_poison_marker  # test-only fault injection
    batcher = state.batcher
    assert batcher is not None
    return resilience.PoisonScorer(batcher, marker) if marker else batcher


@app.task(name=SCORE_CHUNK, bind=True)
def score_chunk_task(self, job_id: str, index: int, start: int, stop: int) -> None:
    state = process.current()
    state.ensure_loops()
    queue = (self.request.delivery_info or {}).get("routing_key")
    interactive = queue != state.settings.bulk_queue
    chunk = Chunk(index, start, stop)
    size = stop - start  # every chunk but a job's last has the job's chunk size
    sent_next: list[int] = []

    def send_next(nxt: int) -> None:
        sent_next.append(nxt)
        total = state.jobs.jobs.get(job_id).total
        send_chunk(app.send_task, job_id, Chunk(nxt, nxt * size, min(nxt * size + size, total)),
                   queue or state.settings.bulk_queue)

    with job_context(job_id), _failures(state, [job_id], f"chunk {index}"):
        stored = score_chunk(state.jobs, _scorer(state), job_id, chunk,
                             interactive=interactive, lease_s=state.settings.chunk_lease_s,
                             holder=state.name, send_next=send_next, leases=state.leases,
                             log_predictions=state.log_predictions)
        logger.info("chunk %d [%d, %d) %s", index, start, stop,
                    "stored" if stored else "not stored")
        if not interactive and not sent_next:
            _refill(state, job_id)


def _refill(state, job_id: str) -> None:
    """A bulk piece ended without sending its job's next one (the job has none left, or it
    ended): the slot it held in its key's window goes to the key's next parked work."""
    owner = state.jobs.jobs.owner(job_id)
    if owner is not None:  # None: the job is gone (the sweeper refills its key's others)
        send_refill(app.send_task, state.jobs, owner or None, state.settings)


# No Celery task events (received, started, succeeded) for interactive messages: three
# broker publishes from the worker per message, a large share of the worker's own CPU per
# request. Flower still lists the workers, the queues and the bulk tasks; each job keeps its
# own record (status, timestamps, model version) in the job store.
@app.task(name=SCORE_GROUP, bind=True, send_events=False)
def score_group_task(self, items: list[list]) -> None:
    """Single-chunk interactive jobs coalesced into one message by an API process (a lone
    job is a group of one)."""
    state = process.current()
    state.ensure_loops()
    chunks = [(str(job_id), Chunk(int(i), int(a), int(b))) for job_id, i, a, b in items]
    with _failures(state, [job_id for job_id, _ in chunks], f"group of {len(chunks)} jobs"):
        stored = score_group(state.jobs, _scorer(state), chunks,
                             lease_s=state.settings.chunk_lease_s, holder=state.name,
                             leases=state.leases, log_predictions=state.log_predictions)
    # each stored job has its own line (score_group); a shortfall is worth one more
    logger.log(logging.INFO if stored < len(chunks) else logging.DEBUG,
               "group of %d jobs: %d stored", len(chunks), stored)


@contextmanager
def _failures(state, job_ids: list[str], what: str) -> Iterator[None]:
    """How a task ends on an error. Redis unreachable (restarting? failing over?), as the job
    store or as the broker sending the next chunk, is not the job's fault: the message goes
    back (if even that fails, it stays unacked and comes back after the visibility timeout;
    a next chunk not sent is re-sent by the sweeper). Anything else fails the jobs, with a
    message fit for their clients."""
    try:
        yield
    except (redis.RedisError, OperationalError) as exc:
        logger.warning("%s: redis unavailable (%s); message requeued", what, exc)
        raise Reject(str(exc), requeue=True) from exc
    except Exception as exc:
        logger.exception("%s failed", what)
        for job_id in job_ids:
            state.jobs.jobs.fail(job_id, f"{what} failed: {public_error(exc)}")
        raise


def public_error(exc: Exception) -> str:
    """What a job's error may say to its client: no store location, path or file content
    (the whole exception is in the worker's log)."""
    from spamq.errors import InvalidRequest, SpamqError

    if isinstance(exc, InvalidRequest):  # the input's fault, in words fit for its client
        return f"{exc.field}: {exc.public_message}"
    if isinstance(exc, SpamqError):  # its kind's public words (a symlink swapped in, ...)
        resume = " (see the worker log; resubmit to resume)" if exc.http_status >= 500 else ""
        return f"{exc.public_message}{resume}"
    return f"{type(exc).__name__} (see the worker log); resubmit to resume"


@app.task(name=SCORE_SPLIT, bind=True)
def score_split_task(self, job_id: str, index: int) -> None:
    """Score split ``index`` of a store job (worker/split_tasks.py)."""
    from worker.split_tasks import SplitScorer

    state = process.current()
    state.ensure_loops()
    queue = (self.request.delivery_info or {}).get("routing_key") or state.settings.bulk_queue
    sent_next: list[int] = []

    def send_next(nxt: int) -> None:
        sent_next.append(nxt)
        send_split(app.send_task, job_id, nxt, queue)

    with job_context(job_id), _failures(state, [job_id], f"split {index}"):
        s = state.settings
        SplitScorer(state.jobs, state.artifacts, _scorer(state),
                    max_chars=s.max_chars_per_text, holder=state.name,
                    lease_s=s.chunk_lease_s, leases=state.leases, send_next=send_next,
                    batch_bytes=s.split_batch_bytes, max_attempts=s.split_max_attempts,
                    max_rejected=s.max_rejected_per_split, shadow=state.shadow,
                    ).run(job_id, index)
        if not sent_next:
            _refill(state, job_id)


@app.task(name=PLAN_STORE_JOB, bind=True)
def plan_store_job_task(self, job_id: str) -> None:
    """A store job's plan (when the request left it to this task), its quote pass (CSV/TSV),
    then it joins its key's parked list: its splits go within the key's window."""
    from worker.split_tasks import plan_job, plan_quotes

    state = process.current()
    with job_context(job_id), _failures(state, [job_id], "planning"):
        try:
            job = state.jobs.jobs.get(job_id)
        except JobNotFound:
            return
        if job.finished or job.chunks_sent:
            return
        settings = state.settings
        plan_job(state.jobs, state.artifacts, job_id, split_bytes=settings.split_bytes,
                 max_splits=settings.max_splits_per_job,
                 footers_max_files=settings.plan_footers_max_files)
        plan_quotes(state.jobs, state.artifacts, job_id)
        state.jobs.leases.park(job_id, job.owner)
        send_refill(app.send_task, state.jobs, job.owner, state.settings)
