"""Thin Celery tasks; the work is in plain functions below."""

from __future__ import annotations

import logging
from typing import Protocol

from spamq.jobs import CANCELLED, Chunk, JobNotFound, JobStore
from spamq.queue import SCORE_CHUNK
from worker import lifecycle
from worker.celery_app import app
from worker.state import get_batcher, get_state

logger = logging.getLogger(__name__)


class Scorer(Protocol):
    """What :func:`score_chunk` needs: worker.batcher.Batcher is one."""

    def expect(self): ...  # a context manager

    def submit(self, texts: list[str], *, interactive: bool = True): ...  # a Future


def score_chunk(
    store: JobStore, scorer: Scorer, job_id: str, chunk: Chunk, *, interactive: bool = True
) -> bool:
    """Score one chunk of a job and store its results once; False if stored, gone or cancelled.

    The task returns (and its message is acked) only after this has stored the results.
    """
    try:
        with scorer.expect():  # a forming batch may wait (briefly) for these texts
            status, texts = store.claim(job_id, chunk.start, chunk.stop)
            if status is None:
                raise JobNotFound(job_id)
            if status == CANCELLED:
                logger.info("job %s: cancelled; chunk %d skipped", job_id, chunk.index)
                return False
            if len(texts) != chunk.stop - chunk.start:
                raise JobNotFound(job_id)
            future = scorer.submit(texts, interactive=interactive)
        predictions = future.result()
        results = [p.as_dict() for p in predictions]
        stored = store.store_chunk(
            job_id, chunk.index, results, model_version=predictions[0].model_version,
        )
        if stored:
            lifecycle.log_predictions(job_id, chunk.start, texts, results)
        return stored
    except JobNotFound:
        logger.warning("job %s: gone (expired or deleted); chunk %d dropped", job_id, chunk.index)
        return False


@app.task(name=SCORE_CHUNK, bind=True)
def score_chunk_task(self, job_id: str, index: int, start: int, stop: int) -> None:
    state = get_state()
    queue = (self.request.delivery_info or {}).get("routing_key")
    interactive = queue != state.settings.bulk_queue
    try:
        stored = score_chunk(state.store, get_batcher(), job_id, Chunk(index, start, stop),
                             interactive=interactive)
    except Exception as exc:
        logger.exception("job %s: chunk %d failed", job_id, index)
        state.store.fail(job_id, f"chunk {index} failed: {type(exc).__name__}: {exc}")
        raise
    logger.debug("job %s: chunk %d [%d, %d) %s", job_id, index, start, stop,
                 "stored" if stored else "not stored")
