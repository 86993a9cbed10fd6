"""Fit forward-pass sizes to GPU memory: probe, once at start, how many rows of the widest
text (``max_length`` tokens) one pass can hold, and keep half of it as headroom."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.runner import BatchClassifier

logger = logging.getLogger(__name__)


def largest_fitting(fits: Callable[[int], bool], *, start: int, cap: int) -> int:
    """Double ``n`` from ``start`` while ``fits(n)``, up to ``cap``; the last n that fit
    (0: none)."""
    n, best = start, 0
    while n <= cap and fits(n):
        best, n = n, n * 2
    return best


def fit_batch_to_gpu(
    runner: BatchClassifier, *, cap_rows: int = 4096, headroom: float = 0.5
) -> tuple[int, int]:
    """(max batch tokens, max batch rows) that fit in this GPU's free memory, with headroom."""
    import torch

    width = runner.max_length
    tok = runner.tokenizer
    row = [tok.cls_token_id] + [tok.unk_token_id] * (width - 2) + [tok.sep_token_id]

    def fits(rows: int) -> bool:
        try:
            runner.spam_probabilities(runner.pad([row] * rows, list(range(rows))))
            torch.cuda.synchronize()
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            torch.cuda.empty_cache()

    rows = max(1, int(largest_fitting(fits, start=8, cap=cap_rows) * headroom))
    free, total = torch.cuda.mem_get_info()
    logger.info("GPU batch fit: %d rows x %d tokens (%.1f of %.1f GiB free)",
                rows, width, free / 2**30, total / 2**30)
    return rows * width, rows
