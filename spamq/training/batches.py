"""Token ids, padded batches, length-bucketed batch order and batched scoring.

Shared by the fine-tunes (pipeline, fast) and the evaluation sets; it imports no other
training module, so none of them imports another through it.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from spamq.text import normalize


def encode(tok, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of ``normalize(text)``, truncated to ``max_length``, unpadded."""
    enc = tok([normalize(t) for t in texts], truncation=True, max_length=max_length,
              padding=False, return_attention_mask=False)
    return enc["input_ids"]


def collate(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort by length inside pools of 50 batches, cut batches, shuffle the batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


@torch.no_grad()
def predict_scores(model, seqs: list[list[int]], pad_id: int, batch_size: int = 64):
    """Logits in input order (batches sorted by length, so padding is small)."""
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    logits = torch.empty((len(seqs), model.config.num_labels))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        out = model(**collate([seqs[i] for i in idx], pad_id))
        logits[idx] = out.logits.float()
    return logits


class WeightedCrossEntropy:
    """Cross-entropy averaged over a batch, each row's term times its class weight (optional)
    and its own weight (optional): with neither, ``torch.nn.CrossEntropyLoss()``; with class
    weights alone, ``CrossEntropyLoss(weight=...)``. Row weights scale a row's pull without
    changing the normaliser, so a batch of down-weighted rows moves the weights less."""

    def __init__(self, class_weight: torch.Tensor | None = None):
        self.class_weight = class_weight

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
        ce = torch.nn.functional.cross_entropy(logits, labels, weight=self.class_weight,
                                               reduction="none")
        norm = (self.class_weight[labels].sum() if self.class_weight is not None
                else torch.tensor(float(len(labels))))
        return (ce if weights is None else ce * weights).sum() / norm


def scores_and_loss(logits: torch.Tensor, y: list[int]) -> tuple[np.ndarray, float]:
    """p(spam) (softmax, temperature 1) and the mean cross-entropy against ``y``."""
    probs = torch.softmax(logits, dim=-1)[:, 1].numpy()
    loss = float(torch.nn.functional.cross_entropy(logits, torch.tensor(y)).item())
    return probs, loss
