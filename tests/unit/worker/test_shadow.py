"""Shadow scoring in one worker process: the Redis key, sampling by text hash, the bounded
queue, Parquet rows and the report's figures (fakeredis, a local artifact store, a stub
candidate)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import fakeredis
import pytest

from spamq.feedback.store import text_sha256
from spamq.models import shadow
from spamq.storage.artifacts import LocalArtifactStore
from worker.shadow import ShadowTap, ShadowWriter

V = "cand-1"


@dataclass
class _Pred:
    spam_probability: float
    label: str


class StubRunner:
    """Scores 0.9 for texts containing 'win', else 0.1."""

    def __init__(self, version: str = V) -> None:
        self.version = version
        self.texts: list[str] = []

    def predict(self, texts):
        self.texts += texts
        return [_Pred(0.9, "spam") if "win" in t else _Pred(0.1, "ham") for t in texts]


def make_tap(tmp_path: Path, *, queue_rows: int = 1000, loads: list | None = None):
    store = LocalArtifactStore(tmp_path / "store")
    runner = StubRunner()

    def load(model: str, version: str):
        if loads is not None:
            loads.append((model, version))
        return runner

    tap = ShadowTap(load, ShadowWriter(store, worker="w1@host:1", max_age_s=3600),
                    model="spamq-sms", queue_rows=queue_rows)
    return tap, store, runner


def start(client, sample: float = 1.0, version: str = V) -> shadow.ShadowState:
    state = shadow.check_state("spamq-sms", version, sample, 1_700_000_000.0)
    shadow.write_state(client, state)
    return state


def rows(texts, prob=0.2, version="prod-1"):
    return [{"label": "spam" if prob >= 0.5 else "ham", "spam_probability": prob,
             "model_version": version} for _ in texts]


def test_the_state_is_one_checked_key():
    client = fakeredis.FakeRedis()
    state = start(client, 0.25)
    assert client.keys("*") == [b"spamq:shadow"]
    assert json.loads(client.get("spamq:shadow")) == {
        "model": "spamq-sms", "version": V, "sample": 0.25, "started_at": 1_700_000_000.0}
    assert shadow.read_state(client) == state
    for bad in (("spamq-sms", "../x", 0.1, 1.0), ("a b", V, 0.1, 1.0), ("m", V, 0.0, 1.0),
                ("m", V, 1.5, 1.0), ("m", V, True, 1.0), ("m", V, 0.1, float("nan"))):
        with pytest.raises(ValueError):
            shadow.check_state(*bad)
    client.set("spamq:shadow", json.dumps({"model": "m", "version": "../../etc", "sample": 0.1,
                                            "started_at": 1.0}))
    with pytest.raises(ValueError):
        shadow.read_state(client)
    assert shadow.clear_state(client) is None  # not valid: nothing to report, but gone
    assert client.get("spamq:shadow") is None


def test_sampling_is_by_text_hash_and_near_the_share():
    texts = [f"message number {i}" for i in range(20_000)]
    picked = [shadow.sampled(text_sha256(t), 0.1) for t in texts]
    assert 0.09 < sum(picked) / len(picked) < 0.11
    assert picked == [shadow.sampled(text_sha256(t), 0.1) for t in texts]  # deterministic
    assert all(shadow.sampled(text_sha256(t), 1.0) for t in texts)
    # a larger share keeps every text a smaller one took
    assert all(shadow.sampled(text_sha256(t), 0.5) for t, p in zip(texts, picked, strict=True) if p)


def test_no_candidate_means_offer_costs_nothing_and_queues_nothing(tmp_path):
    tap, _, _ = make_tap(tmp_path)
    texts = ["hello"] * 5
    assert tap.offer_rows(texts, rows(texts)) is False
    assert tap.offered == 0 and tap._queued == 0


def test_the_candidate_scores_the_sample_and_rows_land_as_parquet(tmp_path):
    client = fakeredis.FakeRedis()
    loads: list = []
    tap, store, runner = make_tap(tmp_path, loads=loads)
    start(client, sample=0.5)
    tap.poll(client)
    tap.step()
    assert loads == [("spamq-sms", V)] and tap.runner is runner
    texts = [f"win a prize {i}" for i in range(100)] + [f"see you at {i}" for i in range(100)]
    assert tap.offer_rows(texts[:150], rows(texts[:150]), source="texts")
    assert tap.offer_columns(texts[150:], {"spam_probability": [0.2] * 50,
                                           "label": ["ham"] * 50,
                                           "model_version": ["prod-1"] * 50})
    tap.step()
    want = [t for t in texts if shadow.sampled(text_sha256(t), 0.5)]
    assert runner.texts == want and tap.sampled == tap.scored == len(want)
    assert tap.writer.flush() == len(want)
    files = sorted((tmp_path / "store" / "shadow").rglob("*.parquet"))
    assert len(files) == 1
    assert files[0].relative_to(tmp_path / "store").parts[:2] == ("shadow", f"candidate={V}")
    table = shadow.read_rows(store, "shadow", V)
    assert table.num_rows == len(want)
    assert sorted(table["text_sha256"].to_pylist()) == sorted(text_sha256(t) for t in want)
    summary = shadow.summarize(table)
    spam_sampled = sum("win" in t for t in want)
    assert summary["rows"] == len(want)
    assert summary["flips"] == {"ham_to_spam": spam_sampled, "spam_to_ham": 0}
    assert summary["agreement"] == pytest.approx(1 - spam_sampled / len(want))
    assert summary["by_source"]["store"] == sum(shadow.sampled(text_sha256(t), 0.5)
                                               for t in texts[150:])
    assert sum(summary["histogram"]["candidate"]) == len(want)
    png = shadow.histogram_png(summary, tmp_path / "scores.png", title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_full_queue_drops_and_counts_never_blocks(tmp_path):
    client = fakeredis.FakeRedis()
    tap, _, runner = make_tap(tmp_path, queue_rows=10)
    start(client)
    tap.poll(client)
    tap.step()
    assert tap.offer_rows(["a"] * 8, rows(["a"] * 8))
    assert tap.offer_rows(["b"] * 5, rows(["b"] * 5)) is False  # 13 > 10: dropped
    assert (tap.offered, tap.dropped) == (13, 5)
    tap.step()
    assert runner.texts == ["a"] * 8


def test_stop_drops_the_candidate_and_production_equal_to_it_is_skipped(tmp_path):
    client = fakeredis.FakeRedis()
    tap, store, runner = make_tap(tmp_path)
    start(client)
    tap.poll(client)
    tap.step()
    assert tap.offer_rows(["x", "y"], rows(["x", "y"], version=V))  # promoted meanwhile
    tap.step()
    assert runner.texts == []
    assert tap.offer_rows(["x"], rows(["x"]))
    tap.step()
    assert tap.offer_rows(["w"], rows(["w"]))  # still queued at the stop: dropped with it
    shadow.clear_state(client)
    tap.poll(client)
    tap.step()
    assert tap.runner is None and tap.state is None
    assert shadow.read_rows(store, "shadow", V).num_rows == 1  # flushed as it ended
    assert tap.offer_rows(["z"], rows(["z"])) is False


def test_another_models_shadow_and_a_refused_candidate_leave_production_alone(tmp_path):
    client = fakeredis.FakeRedis()
    loads: list = []
    tap, _, _ = make_tap(tmp_path, loads=loads)
    shadow.write_state(client, shadow.check_state("other-model", V, 1.0, 1.0))
    tap.poll(client)
    tap.step()
    assert loads == [] and tap.runner is None

    def refuse(model, version):
        loads.append(version)
        raise RuntimeError("refusing: manifest mismatch")

    tap._load = refuse
    start(client)
    tap.poll(client)
    tap.step()
    tap.poll(client)
    tap.step()
    assert loads == [V] and tap.runner is None and tap.errors == 1  # not pulled every poll


class Recorder:
    """Stands in for the ShadowTap: what a split offers it."""

    def __init__(self) -> None:
        self.offers: list[tuple[list[str], dict]] = []

    def offer_columns(self, texts, columns, *, source="store"):
        self.offers.append((list(texts), columns))
        return True


def test_a_store_job_split_offers_its_scored_rows_to_the_shadow(tmp_path):
    from tests.helpers.api import SplitHarness
    from tests.helpers.worker import FakeRunner
    from worker.batcher import Batcher

    texts = [f"message {i} win" if i % 2 else f"message {i}" for i in range(40)]
    ctx = SplitHarness(tmp_path, split_bytes=300)
    ctx.write("in/a.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in texts).encode())
    job_id = ctx.submit(hdfs_input="in/a.jsonl")
    batcher = Batcher(lambda: FakeRunner(), max_batch_tokens=64, max_batch_size=8)
    tap = Recorder()
    try:
        scorer = ctx.scorer(batcher, batch_bytes=40, shadow=tap)
        for i in range(ctx.jobs.jobs.get(job_id).chunks_total):
            scorer.run(job_id, i)
    finally:
        batcher.close()
    assert ctx.jobs.jobs.get(job_id).status == "done"
    offered = [t for got, _ in tap.offers for t in got]
    assert sorted(offered) == sorted(texts)  # every scored row once, with its scores
    for got, cols in tap.offers:
        assert len(cols["spam_probability"]) == len(cols["model_version"]) == len(got)
