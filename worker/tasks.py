"""Thin Celery tasks; the work is in plain functions below."""

from __future__ import annotations

import logging

from spamq.jobs import Chunk, JobNotFound, JobStore
from spamq.queue import SCORE_CHUNK
from worker.celery_app import app
from worker.runner import BatchClassifier
from worker.state import get_state

logger = logging.getLogger(__name__)


def score_chunk(store: JobStore, runner: BatchClassifier, job_id: str, chunk: Chunk) -> bool:
    """Score one chunk of a job and store its results once; False if already stored or gone."""
    try:
        store.mark_running(job_id)
        texts = store.texts(job_id, chunk.start, chunk.stop)
        if len(texts) != chunk.stop - chunk.start:
            raise JobNotFound(job_id)
        predictions = runner.predict(texts)
        return store.store_chunk(
            job_id, chunk.index, [p.as_dict() for p in predictions], model_version=runner.version
        )
    except JobNotFound:
        logger.warning("job %s: gone (expired or deleted); chunk %d dropped", job_id, chunk.index)
        return False


@app.task(name=SCORE_CHUNK, bind=True)
def score_chunk_task(self, job_id: str, index: int, start: int, stop: int) -> None:
    state = get_state()
    assert state.runner is not None
    try:
        stored = score_chunk(state.store, state.runner, job_id, Chunk(index, start, stop))
    except Exception as exc:
        logger.exception("job %s: chunk %d failed", job_id, index)
        state.store.fail(job_id, f"chunk {index} failed: {type(exc).__name__}: {exc}")
        raise
    logger.info("job %s: chunk %d [%d, %d) %s", job_id, index, start, stop,
                "stored" if stored else "already stored")
