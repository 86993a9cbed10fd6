"""A text's score must not depend on the texts it shares a forward pass with.

The served encoder (the MiniLM-converted DistilBERT, with a seeded head scaled to a trained
model's logit range) scores every text of the UCI test split alone, then inside shuffled
batches of texts of similar length (so that they do share passes). Compared in logit space:
a score near the threshold is where a label moves.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spamq.models.invariance import MAX_LOGIT_DIFF
from spamq.models.invariance import alone_and_batched as _alone_and_batched
from spamq.models.manifest import write_manifest
from spamq.settings import Settings
from spamq.training.convert import load_pretrained_distilbert, load_tokenizer, save_tokenizer
from spamq.training.data import read_tsv, split
from worker.runner import BatchClassifier


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the test's timing does not depend on the machine's other load."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = load_pretrained_distilbert()
    with torch.no_grad():  # a fresh head gives logits near 0; a trained one spans about +-6
        model.classifier.weight.mul_(40.0)
    out = tmp_path_factory.mktemp("encoder")
    model.save_pretrained(out, safe_serialization=True)
    save_tokenizer(load_tokenizer(), out)
    write_manifest(out, decision_threshold=0.5, base="minilm-random-head", seed=0)
    return out


@pytest.fixture(scope="module")
def test_texts() -> list[str]:
    return [e.text for e in split(read_tsv(Settings().data_path), seed=13).test]


def _labels(runner: BatchClassifier, logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits / runner.temperature, dim=-1)[:, runner.spam_id] >= runner.threshold


def _assert_invariant(runner: BatchClassifier, texts: list[str]) -> None:
    alone, batched = _alone_and_batched(runner, texts)
    assert alone.abs().max() > 1.0  # the head gives logits of a trained model's size
    assert (batched - alone).abs().max().item() <= MAX_LOGIT_DIFF, runner.precision
    assert torch.equal(_labels(runner, alone), _labels(runner, batched)), runner.precision


def test_the_default_cpu_precision_scores_every_text_as_it_would_alone(encoder_dir, test_texts):
    """Whatever ``auto`` picks on this CPU (the probe: bf16mm or fp32)."""
    runner = BatchClassifier(encoder_dir, device="cpu", precision="auto")
    assert runner.precision in ("bf16mm", "fp32")
    assert len(test_texts) > 600
    _assert_invariant(runner, test_texts)


@pytest.mark.parametrize("precision", ["fp32", "int8row", "bf16mm"])
def test_every_offered_invariant_precision_scores_every_text_as_it_would_alone(
        encoder_dir, test_texts, precision):
    _assert_invariant(BatchClassifier(encoder_dir, device="cpu", precision=precision), test_texts)


@pytest.mark.parametrize("precision", ["int8row", "bf16mm"])
def test_the_row_wise_precisions_stay_near_fp32(encoder_dir, test_texts, precision):
    """Row-wise arithmetic alone is no guarantee of sense: each precision tracks fp32 (the
    head's logits span about +-6; int8's per-row rounding moves them most)."""
    texts = test_texts[:200]
    fp32, _ = _alone_and_batched(BatchClassifier(encoder_dir, device="cpu"), texts)
    other, _ = _alone_and_batched(
        BatchClassifier(encoder_dir, device="cpu", precision=precision), texts)
    assert (other - fp32).abs().max().item() < {"int8row": 1.0, "bf16mm": 0.1}[precision]


def test_full_bf16_is_not_batch_invariant(encoder_dir, test_texts):
    """Why bf16mm keeps LayerNorm, softmax and the residual stream fp32 and changes the
    attention: every intermediate rounded to bf16, with SDPA's width-dependent blocking, moves
    scores with the companions."""
    runner = BatchClassifier(encoder_dir, device="cpu", precision="bf16")
    alone, batched = _alone_and_batched(runner, test_texts[:250])
    assert (batched - alone).abs().max().item() > MAX_LOGIT_DIFF


def test_int8_per_batch_activation_scales_move_scores_with_the_companions(encoder_dir,
                                                                          test_texts):
    """Why int8 is no longer the default: the same check fails on it."""
    runner = BatchClassifier(encoder_dir, device="cpu", precision="int8")
    alone, batched = _alone_and_batched(runner, test_texts[:200])
    assert (batched - alone).abs().max().item() > MAX_LOGIT_DIFF
