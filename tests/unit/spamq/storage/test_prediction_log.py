"""PredictionLog on the local artifact store: partitioned complete files, flush triggers, modes."""

from __future__ import annotations

import hashlib
import json

from spamq.storage.artifacts import LocalArtifactStore
from spamq.storage.prediction_log import PredictionLog

RESULT = {"label": "spam", "spam_probability": 0.9, "truncated": False, "model_version": "v1"}


def rows(store: LocalArtifactStore) -> list[dict]:
    files = store.files("predictions")
    return [json.loads(line) for rel in files
            for line in store.read_bytes(f"predictions/{rel}").decode().splitlines()]


def test_flushes_at_max_rows_and_hashes_text(tmp_path):
    store = LocalArtifactStore(tmp_path)
    log = PredictionLog(store, worker="host:1", max_rows=3, max_age_s=3600, background=False,
                        clock=lambda: 1_700_000_000.0)
    log.record(job_id="j", start=10, texts=["a", "b"], results=[RESULT, RESULT])
    assert store.files("predictions") == {}
    log.record(job_id="j", start=12, texts=["c"], results=[RESULT])
    files = list(store.files("predictions"))
    assert len(files) == 1 and files[0].startswith("date=2023-11-14/hour=22/worker=host_1/part-")
    got = rows(store)
    assert [r["index"] for r in got] == [10, 11, 12]
    assert got[0]["text_sha256"] == hashlib.sha256(b"a").hexdigest() and "text" not in got[0]
    assert got[0]["model_version"] == "v1" and got[0]["timestamp"].startswith("2023-11-14T22:13")


def test_age_and_close_flush_and_text_modes(tmp_path):
    now = [1_700_000_000.0]
    store = LocalArtifactStore(tmp_path)
    log = PredictionLog(store, worker="w", text_mode="text", max_rows=100, max_age_s=5,
                        background=False, clock=lambda: now[0])
    log.record(job_id="j", start=0, texts=["hello"], results=[RESULT])
    assert not log._due()
    now[0] += 6
    assert log._due() and log.flush() == 1
    log.record(job_id="j", start=1, texts=["x"], results=[RESULT])
    log.close()
    assert len(store.files("predictions")) == 2  # one file per flush, never appended to
    assert sorted(r["text"] for r in rows(store)) == ["hello", "x"]
    none = PredictionLog(LocalArtifactStore(tmp_path / "n"), worker="w", text_mode="none",
                         background=False)
    none.record(job_id="j", start=0, texts=["secret"], results=[RESULT])
    none.close()
    assert "secret" not in json.dumps(rows(none.store))


def test_failed_write_keeps_rows_for_the_next_flush(tmp_path):
    class Flaky(LocalArtifactStore):
        fail = True

        def write_bytes_atomic(self, path, data):
            if self.fail:
                raise OSError("disk full")
            super().write_bytes_atomic(path, data)

    store = Flaky(tmp_path)
    log = PredictionLog(store, worker="w", max_rows=100, background=False)
    log.record(job_id="j", start=0, texts=["a", "b"], results=[RESULT, RESULT])
    assert log.flush() == 0
    store.fail = False
    assert log.flush() == 2 and len(rows(store)) == 2
