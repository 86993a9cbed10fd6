"""spamq/feedback/store.py: the Parquet layout, newest-wins dedup, deletion and retention."""

from datetime import UTC, date, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from spamq.feedback import store as fs
from spamq.storage.artifacts import LocalArtifactStore

A, B = "0123456789abcdef", "fedcba9876543210"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def item(text, label, **more):
    return {"text": text, "label": label, "source": "text",
            "text_sha256": fs.text_sha256(text), **more}


@pytest.fixture
def store(tmp_path):
    return LocalArtifactStore(tmp_path)


def test_the_hash_is_of_the_normalised_text():
    assert fs.text_sha256("ＦＲＥＥ  prize\u200b") == fs.text_sha256("FREE prize")
    assert fs.text_sha256("free prize") != fs.text_sha256("FREE prize")


def test_a_request_is_one_parquet_file_in_its_tenant_and_date_partition(store, tmp_path):
    path = fs.write_feedback(store, A, [item("win cash", "spam", category="prize")], now=NOW)
    assert path is not None
    head, name = path.rsplit("/", 1)
    assert head == f"feedback/tenant={A}/date=2026-12-07"
    assert name.startswith(f"part-{int(NOW.timestamp() * 1000)}-") and name.endswith(".parquet")
    table = pq.read_table(tmp_path / path)
    assert table.schema == fs.SCHEMA
    row = table.to_pylist()[0]
    assert (row["text"], row["label"], row["category"], row["source"]) == (
        "win cash", "spam", "prize", "text")
    assert row["received_at"] == NOW and row["job_id"] is None and row["row"] is None


def test_within_a_request_the_last_item_of_a_text_wins():
    kept, dropped = fs.dedupe([item("a", "spam"), item("b", "ham"), item(" a ", "ham")])
    assert dropped == 1
    assert [(k["text"], k["label"]) for k in kept] == [("b", "ham"), (" a ", "ham")]


def test_readers_keep_the_newest_item_per_text_and_never_merge_tenants(store):
    fs.write_feedback(store, A, [item("hello", "spam"), item("bye", "ham")],
                      now=NOW - timedelta(days=3))
    fs.write_feedback(store, A, [item("hello", "ham", note="my mum")], now=NOW)
    fs.write_feedback(store, B, [item("hello", "spam")], now=NOW)
    table = fs.read_feedback(store, [A])
    assert table.schema == fs.READ_SCHEMA
    rows = {r["text"]: r for r in table.to_pylist()}
    assert set(rows) == {"hello", "bye"}
    assert rows["hello"]["label"] == "ham" and rows["hello"]["note"] == "my mum"
    assert table["text"].to_pylist() == ["bye", "hello"]  # oldest first
    both = fs.read_feedback(store, None)
    assert sorted((r["tenant"], r["text"], r["label"]) for r in both.to_pylist()) == [
        (A, "bye", "ham"), (A, "hello", "ham"), (B, "hello", "spam")]
    # a time window: only what was received in [since, until)
    assert fs.read_feedback(store, [A], since=NOW.date())["text"].to_pylist() == ["hello"]
    assert fs.read_feedback(store, [A], until=NOW)["label"].to_pylist() == ["spam", "ham"]


def test_the_same_millisecond_the_later_file_wins(store):
    fs.write_feedback(store, A, [item("x", "spam")], now=NOW)
    first = fs.read_feedback(store, [A])["label"].to_pylist()
    fs.write_feedback(store, A, [item("x", "ham")], now=NOW)
    labels = fs.read_feedback(store, [A])["label"].to_pylist()
    assert first == ["spam"] and len(labels) == 1  # one item per text whichever file sorts last


def test_a_tenant_is_a_key_id_never_a_path(store):
    for bad in ("../x", "tenants/abc", "ABCDEF0123456789", ""):
        with pytest.raises(ValueError):
            fs.write_feedback(store, bad, [item("a", "spam")])
        with pytest.raises(ValueError):
            fs.read_feedback(store, [bad])


def test_deleting_one_text_rewrites_files_and_deleting_all_removes_the_tenant(store, tmp_path):
    fs.write_feedback(store, A, [item("a", "spam"), item("b", "ham")], now=NOW)
    fs.write_feedback(store, A, [item("a", "ham")], now=NOW + timedelta(days=1))
    fs.write_feedback(store, B, [item("a", "spam")], now=NOW)
    assert fs.delete_feedback(store, A, text_sha256=fs.text_sha256("a")) == 1  # one text
    assert fs.read_feedback(store, [A])["text"].to_pylist() == ["b"]
    assert len(list((tmp_path / "feedback" / f"tenant={A}").rglob("*.parquet"))) == 1
    assert fs.delete_feedback(store, A, text_sha256=fs.text_sha256("zzz")) == 0
    assert fs.delete_feedback(store, A) == 1
    assert not (tmp_path / "feedback" / f"tenant={A}").exists()
    assert fs.read_feedback(store, [B]).num_rows == 1  # the other key's stays


def test_retention_deletes_only_date_partitions_older_than_it(store, tmp_path):
    fs.write_feedback(store, A, [item("old", "spam")], now=NOW - timedelta(days=31))
    fs.write_feedback(store, A, [item("edge", "spam")], now=NOW - timedelta(days=30))
    fs.write_feedback(store, B, [item("new", "ham")], now=NOW)
    assert fs.sweep_retention(store, retention_days=30, now=NOW) == 1
    assert fs.read_feedback(store, None)["text"].to_pylist() == ["edge", "new"]
    assert not (tmp_path / f"feedback/tenant={A}/date={(NOW - timedelta(days=31)).date()}").exists()
    assert fs.sweep_retention(store, retention_days=30, now=NOW) == 0


def test_stats_count_by_label_category_and_day(store):
    fs.write_feedback(store, A, [item("a", "spam", category="prize"), item("b", "spam")],
                      now=NOW - timedelta(days=1))
    fs.write_feedback(store, A, [item("b", "ham", category="bank")], now=NOW)
    got = fs.stats(fs.read_feedback(store, [A]))
    assert got == {"total": 2, "by_label": {"spam": 1, "ham": 1},
                   "by_category": {"bank": 1, "prize": 1},
                   "by_day": {str(NOW.date() - timedelta(days=1)): 1, str(NOW.date()): 1}}
    assert fs.stats(fs.read_feedback(store, [B]))["by_label"] == {"spam": 0, "ham": 0}


def test_an_unreadable_file_is_skipped_not_fatal(store, tmp_path):
    fs.write_feedback(store, A, [item("a", "spam")], now=NOW)
    bad = (tmp_path / f"feedback/tenant={A}/date={date(2026, 12, 6)}"
           / "part-0000000000000-00000000.parquet")
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not parquet")
    assert fs.read_feedback(store, [A])["text"].to_pylist() == ["a"]
