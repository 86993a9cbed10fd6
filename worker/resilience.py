"""What keeps a chunk's scoring safe under faults: a per-attempt lease, deadlines, poison input.

- Lease: the first attempt holds ``spamq:lease:<job>:<chunk>``; a copy of the message
  redelivered while it is alive (Redis visibility timeout, celery#5935) waits for the holder's
  results instead of scoring again. Results are still written once (HSETNX), whatever happens.
- Deadline: a chunk picked up after its job's deadline is not scored; the job becomes expired.
- Poison input: when a forward pass raises, the texts are split in halves and re-scored, down
  to the one text that fails; that item gets an ``error`` result, the rest are scored.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from spamq.jobs.store import JobStore

logger = logging.getLogger(__name__)

_LEASE_POLL_S = 0.2


class LeaseBook:
    """The chunk leases this process holds now; the heartbeat renews them (``renew``)."""

    def __init__(self) -> None:
        self._held: set[tuple[str, int, str]] = set()
        self._lock = threading.Lock()

    def add(self, lease: tuple[str, int, str]) -> None:
        with self._lock:
            self._held.add(lease)

    def discard(self, lease: tuple[str, int, str]) -> None:
        with self._lock:
            self._held.discard(lease)

    def renew(self, store: JobStore, *, ttl_s: float) -> None:
        with self._lock:
            held = sorted(self._held)
        store.leases.renew_leases(held, ttl_s=ttl_s)


@contextmanager
def chunk_lease(store: JobStore, job_id: str, chunk: int, *, ttl_s: float,
                holder: str = "", book: LeaseBook | None = None) -> Iterator[bool]:
    """Hold the chunk's lease; yields False if another attempt stored the results meanwhile.

    The lease names ``holder`` (this worker): the sweeper frees the leases of a worker whose
    heartbeat lapsed and re-sends their chunks at once. While the attempt runs, ``book``
    (renewed by the heartbeat) keeps the lease alive; an attempt that ended without
    releasing it (Redis was down) stops renewing it, so it lapses within ``ttl_s``.
    """
    with chunk_leases(store, [(job_id, chunk)], ttl_s=ttl_s, holder=holder, book=book) as fresh:
        yield fresh[0]


@contextmanager
def chunk_leases(store: JobStore, chunks: list[tuple[str, int]], *, ttl_s: float,
                 holder: str = "", book: LeaseBook | None = None) -> Iterator[list[bool]]:
    """:func:`chunk_lease` for several (job id, chunk) at once: one round trip to take them
    all and one to free them. Yields, per chunk, whether this attempt is to score it (False:
    another attempt stored its results meanwhile). A chunk whose lease a live attempt holds
    is waited for, the way :func:`chunk_lease` waits."""
    leases = [(job_id, chunk, f"{holder}|{uuid.uuid4().hex}") for job_id, chunk in chunks]
    stored = [False] * len(leases)
    held: list[tuple[str, int, str]] = []
    try:
        todo = list(range(len(leases)))
        while True:
            outcomes = store.leases.try_leases([leases[i] for i in todo], ttl_s=ttl_s)
            waiting = []
            for i, (acquired, done) in zip(todo, outcomes, strict=True):
                stored[i] = done
                if acquired:
                    held.append(leases[i])
                    if book is not None:  # renewed from now on, also while others are awaited
                        book.add(leases[i])
                elif not done:
                    waiting.append(i)
            if not waiting:
                break
            todo = waiting
            time.sleep(_LEASE_POLL_S)  # the holders are alive: wait for their results or leases
        for (job_id, chunk, _), done in zip(leases, stored, strict=True):
            if done:
                logger.info("job %s: chunk %d already stored by another attempt", job_id, chunk)
        yield [not done for done in stored]
    finally:
        if book is not None:
            for lease in held:
                book.discard(lease)
        store.leases.release_leases(held)


def past_deadline(store: JobStore, job_id: str, deadline: float | None) -> bool:
    """True (and the job marked expired) if the job's ``deadline`` (unix time) has passed."""
    if deadline is None or time.time() <= deadline:
        return False
    if store.jobs.expire(job_id):
        logger.info("job %s: deadline passed; expired", job_id)
    return True


def score_isolating_failures(scorer: Any, texts: list[str], future: Future, *,
                             interactive: bool, owner: str = "",
                             ) -> tuple[list[dict[str, Any]], str]:
    """Results of ``texts`` (``future`` is their pending forward pass) and the model version.

    A failed pass is bisected down to the failing texts, which get an ``error`` result.
    """
    try:
        predictions = future.result()
        return [p.as_dict() for p in predictions], predictions[0].model_version
    except Exception as exc:  # noqa: BLE001 - isolate the item that makes the model raise
        if len(texts) == 1:
            logger.warning("an item failed to score: %s: %s", type(exc).__name__, exc)
            return [{"label": None, "spam_probability": None, "truncated": None,
                     "model_version": None, "error": f"{type(exc).__name__}: {exc}"}], ""
        logger.warning("a pass over %d texts failed (%s); bisecting", len(texts), exc)
    mid = len(texts) // 2
    halves = [texts[:mid], texts[mid:]]
    futures = [scorer.submit(half, interactive=interactive, owner=owner) for half in halves]
    results: list[dict[str, Any]] = []
    version = ""
    for half, fut in zip(halves, futures, strict=True):
        part, part_version = score_isolating_failures(scorer, half, fut, interactive=interactive,
                                                      owner=owner)
        results.extend(part)
        version = version or part_version
    return results, version


class PoisonScorer:
    """TEST ONLY (``test_poison_marker``): a pass over a text holding the marker raises."""

    def __init__(self, inner: Any, marker: str) -> None:
        self._inner = inner
        self._marker = marker

    def expect(self):
        return self._inner.expect()

    def submit(self, texts: list[str], *, interactive: bool = True, owner: str = "") -> Future:
        if any(self._marker in t for t in texts):
            failed: Future = Future()
            failed.set_exception(ValueError("poison text (test_poison_marker)"))
            return failed
        return self._inner.submit(texts, interactive=interactive, owner=owner)
