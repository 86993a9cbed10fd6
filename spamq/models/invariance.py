"""Batch invariance: a text's logits must not depend on the texts it shares a forward pass
with. The bar (``MAX_LOGIT_DIFF``) and the measure, shared by bench/precision.py and
tests/unit/worker/test_batch_invariance.py."""

from __future__ import annotations

import random
from typing import Any

MAX_LOGIT_DIFF = 0.01  # a text's logits alone vs inside any pass


def alone_and_batched(runner: Any, texts: list[str], *, seed: int = 0) -> tuple[Any, Any]:
    """Logits of each text scored alone, and inside shuffled passes (2 to 32 rows) of texts of
    similar length, so that they share passes as they do in the worker. ``runner`` has the
    worker runner's ``encode``, ``pad`` and ``logits``."""
    import torch

    ids, _ = runner.encode(texts)
    alone = torch.cat([runner.logits(runner.pad(ids, [i])) for i in range(len(ids))])
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    rng = random.Random(seed)
    batched = torch.empty_like(alone)
    start = 0
    while start < len(order):
        window = order[start:start + rng.randint(2, 32)]
        rng.shuffle(window)
        batched[window] = runner.logits(runner.pad(ids, window))
        start += len(window)
    return alone, batched
