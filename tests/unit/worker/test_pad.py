"""BatchClassifier.pad builds the padded batch whole: the same ids and mask as padding each
row into place one by one, for any rows, order and pad multiple."""

from __future__ import annotations

import random
from types import SimpleNamespace

import torch

from worker.runner import BatchClassifier


def _one_by_one(ids, index, pad_id, multiple):
    width = max(len(ids[i]) for i in index)
    width += -width % multiple
    input_ids = torch.full((len(index), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(index), width), dtype=torch.long)
    for row, i in enumerate(index):
        input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
        mask[row, : len(ids[i])] = 1
    return input_ids, mask


def test_pad_equals_padding_row_by_row():
    rng = random.Random(7)
    for multiple in (1, 8):
        fake = SimpleNamespace(tokenizer=SimpleNamespace(pad_token_id=3),
                               pad_multiple=multiple, device=torch.device("cpu"))
        for _ in range(50):
            ids = [[rng.randrange(5, 30000) for _ in range(rng.randrange(1, 40))]
                   for _ in range(rng.randrange(1, 20))]
            index = rng.sample(range(len(ids)), rng.randrange(1, len(ids) + 1))
            got = BatchClassifier.pad(fake, ids, index)  # type: ignore[arg-type]
            want_ids, want_mask = _one_by_one(ids, index, 3, multiple)
            assert got.index == index
            assert torch.equal(got.input_ids, want_ids)
            assert torch.equal(got.attention_mask, want_mask)
            assert got.input_ids.dtype == got.attention_mask.dtype == torch.long
