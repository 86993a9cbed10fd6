"""SPAMQ_NULL_MODEL (bench only): the worker loads its model, then skips the forward pass."""

from __future__ import annotations

from spamq.settings import Settings
from worker.batcher import Batcher
from worker.process import WorkerProcess, load_model
from worker.runner import BatchClassifier


def test_the_null_model_scores_every_text_half_through_the_batcher(random_model_dir,
                                                                   monkeypatch):
    monkeypatch.setenv("SPAMQ_MODEL_DIR", str(random_model_dir))
    monkeypatch.setenv("SPAMQ_NULL_MODEL", "true")
    monkeypatch.setenv("SPAMQ_PRECISION", "fp32")
    runner = load_model(WorkerProcess(Settings()))
    assert runner.logits(runner.pad([[101, 7, 102], [101, 102]], [0, 1])).tolist() == [
        [0.0, 0.0], [0.0, 0.0]]
    batcher = Batcher(lambda: runner, max_batch_tokens=1024, max_batch_size=32, max_wait_ms=0)
    try:
        long = " ".join(f"w{i}" for i in range(400))
        out = batcher.predict(["win a prize now", "see you at 5", long])
    finally:
        batcher.close()
    assert [p.spam_probability for p in out] == [0.5, 0.5, 0.5]
    assert [p.truncated for p in out] == [False, False, True]  # the tokenizer still runs


def test_without_the_setting_the_model_runs(random_model_dir, monkeypatch):
    monkeypatch.setenv("SPAMQ_MODEL_DIR", str(random_model_dir))
    monkeypatch.delenv("SPAMQ_NULL_MODEL", raising=False)
    monkeypatch.setenv("SPAMQ_PRECISION", "fp32")
    runner = load_model(WorkerProcess(Settings()))
    assert isinstance(runner, BatchClassifier)
    assert runner.predict(["win a prize now"])[0].spam_probability != 0.5
