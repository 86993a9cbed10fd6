"""spamq.spark without a JVM: model references, the per-process runner cache, and the
mapInPandas function's rows (the Spark run itself: tests/integration/test_spark.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from spamq import spark as sp
from spamq.settings import Settings
from worker.runner import Prediction


class FakeRunner:
    version = "v1"

    def predict(self, texts):
        return [Prediction("spam" if "WIN" in t else "ham", 0.9 if "WIN" in t else 0.1,
                           len(t) > 20, self.version) for t in texts]


class FakeRegistry:
    def resolve_ref(self, name, ref):
        return {"production": "v1"}.get(ref, ref)


@pytest.fixture
def settings(monkeypatch):
    monkeypatch.setattr("spamq.models.registry.ModelRegistry.from_settings",
                        classmethod(lambda cls, s: FakeRegistry()))
    return Settings(model_name="spamq-sms", max_chars_per_text=50)


def test_model_refs_resolve_aliases_on_the_driver(settings, tmp_path):
    assert sp.resolve_model("other@production", settings) == sp.ModelRef("other", "v1")
    assert sp.resolve_model("other/v7", settings) == sp.ModelRef("other", "v7")
    assert sp.resolve_model("production", settings) == sp.ModelRef("spamq-sms", "v1")


def test_the_runner_is_loaded_once_per_process_and_version(settings, monkeypatch):
    loads = []

    def build(s, path):
        loads.append(path)
        return FakeRunner()

    monkeypatch.setattr("worker.model_source.build_runner", build)
    monkeypatch.setattr("worker.model_source.ModelSource.pull",
                        lambda self, version: f"/cache/{self.settings.model_name}/{version}")
    monkeypatch.setattr(sp, "_RUNNERS", {})
    ref = sp.ModelRef("spamq-sms", "v1")
    first = sp.executor_runner(ref, settings)
    assert sp.executor_runner(ref, settings) is first
    assert loads == ["/cache/spamq-sms/v1"]
    with pytest.raises(Exception, match="holds v1, expected v2"):  # verified, never cached
        sp.executor_runner(sp.ModelRef("spamq-sms", "v2"), settings)
    assert list(sp._RUNNERS) == [("spamq-sms", "v1")]


class Acc:
    def __init__(self):
        self.value = (0, 0, 0)

    def add(self, t):
        self.value = tuple(a + b for a, b in zip(self.value, t, strict=True))


def test_batches_give_a_store_jobs_columns_and_rejections(settings, monkeypatch):
    monkeypatch.setattr(sp, "_RUNNERS", {("spamq-sms", "v1"): FakeRunner()})
    batch = pd.DataFrame({"id": [1, 2, 3, 4], "src": ["a", "b", "c", "d"],
                          "text": ["WIN now", "   ", "hi there, lunch at noon tomorrow?",
                                   "x" * 51]})
    batch["src"] = batch["src"].astype("string")
    cols = ["id", "src", *sp.RESULT_FIELDS, sp.REASON]
    acc = Acc()
    out = pd.concat(sp.score_batches(iter([batch, batch.iloc[:1]]),
                                     ref=sp.ModelRef("spamq-sms", "v1"), settings=settings,
                                     text_column="text", out_columns=cols, rejected=True,
                                     stats=acc))
    assert list(out.columns) == cols
    rows = out.to_dict("records")
    assert rows[0] == {"id": 1, "src": "a", "label": "spam", "spam_probability": 0.9,
                       "truncated": False, "model_version": "v1", "reason": None}
    assert rows[1]["label"] == "ham" and rows[1]["truncated"] is True
    assert [(r["id"], r["label"], r["reason"]) for r in rows[2:4]] == [
        (2, None, "empty or blank"), (4, None, "too long: 51 characters, at most 50")]
    assert rows[4]["id"] == 1 and len(rows) == 5
    assert acc.value == (0, 2, 3)  # cached: no load; 2 batches, 3 rows scored
    assert out["src"].dtype == object  # Arrow-backed strings would not reach Spark's writer

    dropped = pd.concat(sp.score_batches(iter([batch]), ref=sp.ModelRef("spamq-sms", "v1"),
                                         settings=settings, text_column="text",
                                         out_columns=["id", *sp.RESULT_FIELDS], rejected=False))
    assert dropped["id"].tolist() == [1, 3]
