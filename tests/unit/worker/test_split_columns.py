"""A split scored as columns (the batcher's submit_scores, SplitRows batches, write_columns)
writes the same part and rejected files, byte for byte, as the row path (a scorer that only
returns a Prediction per row, Records gathered into batches): every input and output format,
rejected rows, an id and kept columns, a pass that fails and is bisected."""

from __future__ import annotations

import io
import json
import threading
from concurrent.futures import Future

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.api import SplitHarness
from tests.helpers.worker import FakeRunner
from worker import split_tasks
from worker.batcher import Batcher, Scores


class RowsOnly:
    """The batcher without submit_scores: the SplitScorer falls back to its row path."""

    def __init__(self, batcher: Batcher) -> None:
        self._b = batcher

    def submit(self, texts, *, interactive=True, owner=""):
        return self._b.submit(texts, interactive=interactive, owner=owner)


TEXTS = ["win a prize now", "hello there", "x", "boom goes the pass", "a b c d e f g h i j",
         'quoted, "comma" text', "line\nbreak", "é ü ☃", "", "fine again"]


def _inputs() -> dict[str, bytes]:
    rows = [{"id": f"r{i}", "keep": i * 1.5 if i % 3 else None, "text": t}
            for i, t in enumerate(TEXTS * 7)]
    rows[5]["text"] = None  # missing
    buf = io.StringIO()
    import csv

    w = csv.writer(buf)
    w.writerow(["id", "keep", "text"])
    for r in rows:
        w.writerow([r["id"], r["keep"], r["text"]])
    w.writerow(["bad", "1", '"unclosed'])
    jsonl = "".join(json.dumps(r) + "\n" for r in rows) + "not json\n[1]\n"
    pbuf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), pbuf)
    return {"in/a.csv": buf.getvalue().encode(), "in/a.jsonl": jsonl.encode(),
            "in/a.parquet": pbuf.getvalue()}


def _run(tmp_path, name, data, output_format, scorer_of):
    tmp_path.mkdir()
    ctx = SplitHarness(tmp_path, split_bytes=300)
    ctx.write(name, data)
    job_id = ctx.submit(hdfs_input=name, id_column="id", keep_columns=["keep"],
                        output_format=output_format)
    if any(n == "spamq.plan_quotes" for n, _ in ctx.sent):
        split_tasks.plan_quotes(ctx.jobs, ctx.artifacts, job_id)
        ctx.sent = [(n, a) for n, a in ctx.sent if n == "spamq.score_split"]
        ctx.sent = ctx.sent or [("spamq.score_split", [job_id, i])
                                for i in range(ctx.jobs.jobs.get(job_id).chunks_total)]
    batcher = Batcher(lambda: FakeRunner(), max_batch_tokens=64, max_batch_size=8)
    try:
        scorer = ctx.scorer(scorer_of(batcher), batch_bytes=40)
        for i in range(ctx.jobs.jobs.get(job_id).chunks_total):
            scorer.run(job_id, i)
    finally:
        batcher.close()
    job = ctx.jobs.jobs.get(job_id)
    out = ctx.root / "out" / "j"
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
             if p.is_file() and p.name != "_SUCCESS"}
    success = json.loads((out / "_SUCCESS").read_bytes())
    del success["job_id"], success["inputs"]
    return job.status, success, files


@pytest.mark.parametrize("name", ["in/a.csv", "in/a.jsonl", "in/a.parquet"])
@pytest.mark.parametrize("output_format", ["jsonl", "csv"])
def test_columns_write_what_rows_write(tmp_path, name, output_format):
    data = _inputs()[name]
    got = _run(tmp_path / "cols", name, data, output_format, lambda b: b)
    want = _run(tmp_path / "rows", name, data, output_format, RowsOnly)
    assert got == want
    status, success, files = got
    assert status == "done"
    assert success["rejected_rows"] >= 8  # blanks, a missing text (and bad records)
    assert success["output_rows"] + success["rejected_rows"] == success["input_rows"]
    if output_format == "jsonl":
        rows = [json.loads(line) for k, v in files.items() if k.startswith("part-")
                for line in v.decode().splitlines()]
        errors = [r for r in rows if "error" in r]
        assert errors and all(r["label"] is None for r in errors)  # "boom": bisected
        assert {r["label"] for r in rows} == {"spam", "ham", None}


def test_submit_scores_gives_the_columns_of_submit():
    b = Batcher(lambda: FakeRunner(), max_batch_tokens=16, max_batch_size=2)
    try:
        texts = ["one two three four five six", "one", "a b c d e f g h i j k", "x y"]
        rows = b.submit(texts).result(5)
        scores = b.submit_scores(texts).result(5)
    finally:
        b.close()
    assert isinstance(scores, Scores)
    assert scores.probabilities == [p.spam_probability for p in rows] == [0.6, 0.1, 1.0, 0.2]
    assert scores.labels() == [p.label for p in rows] == ["spam", "ham", "spam", "ham"]
    assert scores.truncated == [p.truncated for p in rows]
    assert scores.version == "fake-v1"


def test_a_split_is_handed_to_the_scorer_as_column_batches(tmp_path, monkeypatch):
    """The bulk path builds no Record per row (read_split's batches are used as such)."""
    from spamq.storage import splits

    def no_records(self):
        raise AssertionError("a Record per row on the bulk path")

    monkeypatch.setattr(splits.RowBatch, "records", no_records)
    status, success, _ = _run(tmp_path / "t", "in/a.jsonl", _inputs()["in/a.jsonl"], "jsonl",
                              lambda b: b)
    assert status == "done" and success["output_rows"] == 62


class GatedScorer:
    """Resolves no batch until ``gate`` batches were submitted (or 5 s passed: ``waited``),
    then every batch at once: the model busy with batch 1 while the next ones are read."""

    def __init__(self, gate: int) -> None:
        self.gate, self.waited = gate, False
        self.threads: list[str] = []
        self.unresolved_at_submit: list[int] = []
        self._held: list[tuple[Future, list[str]]] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(5.0, self._give_up)
        self._timer.start()

    def _give_up(self) -> None:
        self.waited = True
        self._release()

    def _release(self) -> None:
        with self._lock:
            held, self._held = self._held, []
            self.gate = 0
        for future, texts in held:
            future.set_result([TextPrediction(t) for t in texts])

    def submit(self, texts, *, interactive=True, **_):
        future: Future = Future()
        with self._lock:
            self.threads.append(threading.current_thread().name)
            self.unresolved_at_submit.append(len(self._held))
            self._held.append((future, list(texts)))
            ready = len(self.threads) >= self.gate
        if ready:
            self._release()
        return future


class TextPrediction:
    model_version = "v-test"

    def __init__(self, text: str) -> None:
        self.text = text

    def as_dict(self):
        return {"label": "ham", "spam_probability": 0.5, "truncated": False,
                "model_version": "v-test"}


def test_the_next_batches_are_read_and_submitted_while_the_model_scores_one(tmp_path):
    """Batch N+1 (and N+2) are read, parsed and submitted (tokenised) by a reader thread
    while the task waits on batch N; a bounded queue keeps at most 3 ahead of the wait."""
    ctx = SplitHarness(tmp_path)
    lines = [json.dumps({"text": f"message number {i}"}) for i in range(256 * 12)]
    ctx.write("in/a.jsonl", ("\n".join(lines) + "\n").encode())
    job_id = ctx.submit(hdfs_input="in/a.jsonl")
    gated = GatedScorer(gate=3)
    try:
        for index in ctx.splits_sent():
            ctx.scorer(gated).run(job_id, index)
    finally:
        gated._timer.cancel()
    assert not gated.waited  # batch 1 was resolved only once batch 3 had been submitted
    assert ctx.jobs.jobs.get(job_id).status == "done"
    assert set(gated.threads) == {"spamq-split-reader"}
    assert gated.unresolved_at_submit[:3] == [0, 1, 2]  # none resolved before the third
    out = (ctx.root / "out" / "j" / "part-00000.jsonl").read_text().splitlines()
    assert [json.loads(line)["ref"] for line in out] == sorted(
        json.loads(line)["ref"] for line in out)
    assert len(out) == 256 * 12


def test_a_reader_that_fails_fails_the_task_with_its_error(tmp_path):
    ctx = SplitHarness(tmp_path)
    import gzip
    import random

    rng = random.Random(0)
    data = gzip.compress("".join(json.dumps({"text": f"m {rng.random()}"}) + "\n"
                                 for _ in range(50_000)).encode())
    ctx.write("in/a.jsonl.gz", data[: len(data) // 2])  # the start reads; the rest is cut
    job_id = ctx.submit(hdfs_input="in/a.jsonl.gz")
    from spamq.storage.splits import InputError

    with pytest.raises(InputError, match="corrupt or truncated"):
        ctx.scorer().run(job_id, 0)
    assert not [t for t in threading.enumerate() if t.name == "spamq-split-reader"]
