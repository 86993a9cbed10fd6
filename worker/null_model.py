"""BENCH ONLY (``SPAMQ_NULL_MODEL=true``): a runner whose forward pass costs nothing.

The worker keeps its tokenizer, batcher, Celery, Redis and split I/O; only the encoder is
skipped: every pass returns zero logits of the right shape (so every score is 0.5). The
bench's null-model leg (``python -m bench``) measures the pipeline's ceiling with it. A
service never sets it: the scores are meaningless, and the worker says so in its log.
"""

from __future__ import annotations

import logging

import torch

from worker.runner import BatchClassifier, PaddedBatch

logger = logging.getLogger(__name__)


def make_null(runner: BatchClassifier) -> BatchClassifier:
    """Replace ``runner``'s forward pass with zero logits (its model stays loaded, unused)."""
    labels = int(getattr(getattr(runner.model, "config", None), "num_labels", 2) or 2)

    def logits(batch: PaddedBatch) -> torch.Tensor:
        return torch.zeros((batch.input_ids.shape[0], labels))

    setattr(runner, "logits", logits)  # noqa: B010 - an instance attribute over the method
    logger.warning("SPAMQ_NULL_MODEL: the forward pass returns zero logits (bench only; every "
                   "score is 0.5)")
    return runner
