"""Feedback as a training source: the explicit choice of keys, the time split, near-duplicates
kept on the evaluation side, and excluded texts dropped (spamq/training/feedback.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from spamq.feedback.store import READ_SCHEMA, text_sha256, write_feedback
from spamq.settings import Settings
from spamq.storage.artifacts import LocalArtifactStore
from spamq.training import feedback as fb
from spamq.training.data import Example
from spamq.training.exclude import drop_excluded, excluded_hash, load_excluded

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
KEY_A, KEY_B = "a" * 16, "b" * 16
WORDS = ("zero", "one", "two", "three", "four")


def _table(rows: list[tuple[str, str, datetime]], tenant: str = KEY_A) -> pa.Table:
    """A read_feedback-shaped table of (text, label, received_at)."""
    cols: dict[str, list] = {f.name: [] for f in READ_SCHEMA}
    for text, label, at in rows:
        for name, value in (("text_sha256", text_sha256(text)), ("text", text), ("label", label),
                            ("category", None), ("note", None), ("source", "text"),
                            ("job_id", None), ("row", None), ("model_version", None),
                            ("received_at", at), ("tenant", tenant)):
            cols[name].append(value)
    return pa.Table.from_pydict(cols, schema=READ_SCHEMA)


def _rows(n: int) -> list[tuple[str, str, datetime]]:
    return [(f"message number {chr(65 + i)} about lunch plans", "spam" if i % 2 else "ham",
             T0 + timedelta(hours=i)) for i in range(n)]


def test_newest_share_evaluates_and_older_trains() -> None:
    rows, stats = fb.prepare(_table(list(reversed(_rows(10)))), frozenset())
    split = fb.split_by_time(rows, 0.2, stats)
    assert [r.received_at for r in split.holdout] == [T0 + timedelta(hours=8),
                                                      T0 + timedelta(hours=9)]
    assert [r.received_at for r in split.train] == [T0 + timedelta(hours=i) for i in range(8)]
    assert split.cutoff == T0 + timedelta(hours=8) and split.until == T0 + timedelta(hours=9)
    assert split.stats["train"] == {"total": 8, "ham": 4, "spam": 4}
    assert split.stats["holdout"]["total"] == 2
    assert fb.split_by_time(rows, 0.0).holdout == []


def test_items_received_at_the_cutoff_instant_all_evaluate() -> None:
    data = _rows(10)
    data[7] = (data[7][0], data[7][1], data[8][2])  # same instant as the cutoff item
    split = fb.split_by_time(fb.prepare(_table(data), frozenset())[0], 0.2)
    assert len(split.holdout) == 3 and len(split.train) == 7
    assert min(r.received_at for r in split.holdout) > max(r.received_at for r in split.train)


def test_near_duplicates_stay_on_the_evaluation_side() -> None:
    old_dup = ("Debit of $450 has been made from your account, call 0800 123 456 "
               "https://bit.ly/x1", "spam", T0)
    old_same = ("DEBIT of $450   has been made from your account, call 0800 123 456 "
                "https://bit.ly/x1", "spam", T0 + timedelta(minutes=1))
    other = ("see you at the station at 6", "ham", T0 + timedelta(minutes=2))
    new = ("Debit of $97 has been made from your account, call 0800 999 000 https://t.co/y",
           "spam", T0 + timedelta(hours=5))
    assert fb.near_key(old_dup[0]) == fb.near_key(new[0])
    assert fb.near_key(other[0]) != fb.near_key(new[0])
    split = fb.split_by_time(fb.prepare(_table([old_dup, old_same, other, new]),
                                        frozenset())[0], 0.25)
    assert [r.text for r in split.holdout] == [new[0]]
    assert [r.text for r in split.train] == [other[0]]
    assert split.stats["near_duplicates_dropped_from_training"] == 2


def test_excluded_texts_are_dropped_on_both_sides(tmp_path: Path) -> None:
    data = _rows(10)
    listed = tmp_path / "exclude-sha256.txt"
    # the README's rule: whitespace collapsed, lower-cased; one old and one new text listed
    listed.write_text(excluded_hash("MESSAGE number B  about lunch plans") + "\n"
                      + excluded_hash(data[9][0]) + "\nnot-a-hash\n")
    excluded = load_excluded(listed)
    assert len(excluded) == 2
    rows, stats = fb.prepare(_table(data), excluded)
    split = fb.split_by_time(rows, 0.2, stats)
    texts = {r.text for r in split.train + split.holdout}
    assert data[1][0] not in texts and data[9][0] not in texts and len(texts) == 8
    assert split.stats["excluded"] == 2
    assert [r.text for r in split.holdout] == [data[7][0], data[8][0]]
    kept, n = drop_excluded([Example(data[1][0], 1), Example(data[2][0], 0)], excluded)
    assert [e.text for e in kept] == [data[2][0]] and n == 1
    assert load_excluded(tmp_path / "absent.txt") == frozenset()


def test_the_real_exclusion_list_refuses_its_texts_in_feedback() -> None:
    path = Settings().exclude_sha256_path
    if not path.is_file():
        pytest.skip(f"{path} not present")
    listed = next(iter(load_excluded(path)))
    rows, stats = fb.prepare(_table(_rows(3)), frozenset({listed, excluded_hash(_rows(3)[0][0])}))
    assert stats["excluded"] == 1 and len(rows) == 2


def test_across_keys_the_newest_item_of_a_text_wins() -> None:
    text = "call me back when you can"
    table = pa.concat_tables([_table([(text, "spam", T0)], KEY_A),
                              _table([(text, "ham", T0 + timedelta(days=1))], KEY_B)])
    rows, stats = fb.prepare(table, frozenset())
    assert [(r.label, r.tenant) for r in rows] == [(0, KEY_B)]
    assert stats["duplicates_across_keys"] == 1


def test_the_source_is_an_explicit_choice() -> None:
    assert fb.parse_source(f"tenants={KEY_A}, {KEY_B},{KEY_A}").tenants == (KEY_A, KEY_B)
    for bad in ("tenants=", "tenants=../x", "tenants=ABC", ""):
        with pytest.raises(ValueError):
            fb.parse_source(bad)
    assert fb.parse_source("/data/fb").path == "/data/fb"


@pytest.fixture
def store_settings(tmp_path: Path) -> Settings:
    settings = Settings(artifact_dir=tmp_path / "store", hdfs_url=None)
    store = LocalArtifactStore(settings.artifact_dir)
    for key, prefix in ((KEY_A, "a"), (KEY_B, "b")):
        for i in range(5):
            text = f"{prefix} text {WORDS[i]} x"
            write_feedback(store, key, [{"text_sha256": text_sha256(text), "text": text,
                                         "label": "spam" if i % 2 else "ham",
                                         "source": "text"}],
                           root=settings.feedback_root, now=T0 + timedelta(days=i))
    return settings


def test_only_the_keys_named_are_read(store_settings: Settings) -> None:
    source, split = fb.load_split(f"tenants={KEY_A}", store_settings, holdout=0.2,
                                  excluded=frozenset())
    texts = [r.text for r in split.train + split.holdout]
    assert sorted(texts) == sorted(f"a text {w} x" for w in WORDS)
    assert [r.text for r in split.holdout] == ["a text four x"]
    assert source.describe() == {"spec": f"tenants={KEY_A}", "tenants": [KEY_A]}
    # one key's directory as a local path reads that key alone too
    one = store_settings.artifact_dir / "feedback" / f"tenant={KEY_B}"
    source, split = fb.load_split(str(one), store_settings, excluded=frozenset())
    assert source.tenants == (KEY_B,)
    assert {r.text for r in split.train + split.holdout} == {f"b text {w} x" for w in WORDS}
    with pytest.raises(ValueError, match="no tenant"):
        fb.load_split(str(store_settings.artifact_dir), store_settings)


def test_the_gate_re_reads_the_candidates_holdout(store_settings: Settings) -> None:
    source, split = fb.load_split(f"tenants={KEY_A},{KEY_B}", store_settings, holdout=0.4,
                                  excluded=frozenset())
    record = split.record(source)
    # feedback that arrives after training is not in the candidate's holdout
    write_feedback(LocalArtifactStore(store_settings.artifact_dir), KEY_A,
                   [{"text_sha256": text_sha256("late"), "text": "late", "label": "spam",
                     "source": "text"}], now=T0 + timedelta(days=30))
    texts, labels, cats = fb.holdout_of(record, store_settings, excluded=frozenset())
    assert sorted(texts) == sorted(r.text for r in split.holdout)
    assert sorted(texts) == ["a text four x", "a text three x", "b text four x", "b text three x"]
    assert labels == [r.label for r in split.holdout] and set(cats) == {"feedback"}
    assert fb.holdout_of(None, store_settings) is None
    # --feedback on the gate: the newest share of what is there now
    now_texts, _, _ = fb.holdout_of(None, store_settings, excluded=frozenset(),
                                    spec=f"tenants={KEY_A}", holdout=0.2)
    assert now_texts == ["a text four x", "late"]  # ceil(0.2 x 6) newest


def test_join_training_keeps_the_evaluation_side_apart() -> None:
    rows = [fb.FeedbackRow("win a prize at www.prizes.com now 1", 1, T0, KEY_A),
            fb.FeedbackRow("lunch at noon?", 0, T0 + timedelta(hours=1), KEY_A),
            fb.FeedbackRow("win a prize at www.prizes.com now 22", 1, T0 + timedelta(days=1),
                           KEY_A)]
    split = fb.split_by_time(rows, 0.3)
    assert [r.text for r in split.train] == ["lunch at noon?"]
    uci = [Example("Win a prize at http://x.co/abc now 7", 1), Example("ok see you", 0)]
    joined, info = fb.join_training(uci, split, ["LUNCH at noon?"], Example)
    # a UCI training text near the held-out feedback is dropped; the feedback training
    # text that equals a validation/test text is not trained on
    assert [e.text for e in joined] == ["ok see you"]
    assert info == {"training_rows_dropped_near_holdout": 1,
                    "feedback_dropped_near_evaluation": 1, "feedback_trained": 0}


def test_train_flags_name_the_feedback_and_none_is_the_default() -> None:
    import argparse

    from spamq import training

    parser = argparse.ArgumentParser()
    training.add_arguments(parser)
    defaults = parser.parse_args([])
    assert defaults.feedback is None and defaults.feedback_holdout == 0.2
    args = parser.parse_args(["--feedback", f"tenants={KEY_A}", "--feedback-holdout", "0.3"])
    assert (args.feedback, args.feedback_holdout) == (f"tenants={KEY_A}", 0.3)
    for bad in ("1", "-0.1", "x"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--feedback-holdout", bad])


def test_spamq_train_feedback_reads_the_named_keys_and_prints_per_source(
        store_settings: Settings, monkeypatch, capsys) -> None:
    import argparse

    import spamq.settings
    from spamq import training
    from spamq.training import evaluation, pipeline

    seen: dict = {}
    uci = evaluation.set_metrics([0.9, 0.1], [1, 0], ["uci", "uci"], 0.5)

    def fake_train(config, **kwargs):
        seen.update(kwargs, config=config)
        ci = [0.9, 1.0]
        return {"spam_f1": 1.0, "spam_f1_ci95": ci, "spam_precision": 1.0, "spam_recall": 1.0,
                "mcc": 1.0, "threshold": 0.5, "training_time_s": 1.0, "total_time_s": 1.0,
                "out_dir": "x", "version": "v", "sources": {"uci_test": uci, "feedback": uci},
                "baseline": {"spam_f1": 0.9, "spam_f1_ci95": ci}}

    monkeypatch.setattr(pipeline, "train", fake_train)
    monkeypatch.setattr(spamq.settings, "get_settings", lambda: store_settings)
    parser = argparse.ArgumentParser()
    training.add_arguments(parser)
    assert training.run(parser.parse_args(["--feedback", f"tenants={KEY_B}"])) == 0
    split, source = seen["feedback"], seen["feedback_source"]
    assert source.tenants == (KEY_B,)
    assert {r.tenant for r in split.train + split.holdout} == {KEY_B}
    assert [r.text for r in split.holdout] == ["b text four x"]
    out = capsys.readouterr().out
    assert f"feedback tenants={KEY_B} (keys {KEY_B}): 5 read, 0 excluded" in out
    assert "| feedback | 2 | 1.000" in out
    assert training.run(parser.parse_args([])) == 0 and seen["feedback"] is None
