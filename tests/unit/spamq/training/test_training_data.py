"""Reading, de-duplication, the stratified split and training-only augmentation."""

from __future__ import annotations

from pathlib import Path

import pytest

from spamq.settings import Settings
from spamq.text import normalize
from spamq.training.augment import augment_spam
from spamq.training.data import Example, dedupe, read_tsv, split

DATA = Settings().data_path
needs_data = pytest.mark.skipif(not DATA.is_file(), reason=f"{DATA} not present")


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "d.tsv"
    path.write_text("label\ttext\n" + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_read_tsv_keeps_quotes_literally(tmp_path: Path) -> None:
    path = _write(tmp_path, ['ham\t"Hi" he said', 'spam\t"WIN now', "ham\tok\tthen"])
    rows = read_tsv(path)
    assert [r.text for r in rows] == ['"Hi" he said', '"WIN now', "ok\tthen"]
    assert [r.label for r in rows] == [0, 1, 0]


def test_read_tsv_rejects_bad_header_and_labels(tmp_path: Path) -> None:
    bad = tmp_path / "b.tsv"
    bad.write_text("v1\tv2\nham\thi\n")
    with pytest.raises(ValueError, match="header"):
        read_tsv(bad)
    with pytest.raises(ValueError, match="bad row"):
        read_tsv(_write(tmp_path, ["eggs\thi"]))


def test_dedupe_on_normalised_text_and_drops_conflicts() -> None:
    rows = [
        Example("hello there", 0), Example("hello  there ", 0), Example("F R E E", 1),
        Example("FREE", 1), Example("same", 0), Example("same", 1), Example("other", 0),
    ]
    kept, conflicts = dedupe(rows)
    assert [r.text for r in kept] == ["hello there", "F R E E", "other"]
    assert conflicts == 1


@needs_data
def test_real_file_counts() -> None:
    rows = read_tsv(DATA)
    assert len(rows) == 5029
    assert sum(r.label for r in rows) == 674
    assert len({r.text for r in rows}) == 4655


@pytest.fixture(scope="module")
def splits():
    if not DATA.is_file():
        pytest.skip(f"{DATA} not present")
    return split(read_tsv(DATA), seed=13)


def test_no_text_in_two_splits(splits) -> None:
    sets = [
        {normalize(e.text) for e in rows}
        for rows in (splits.train, splits.validation, splits.test)
    ]
    assert sum(map(len, sets)) == len(splits.train) + len(splits.validation) + len(splits.test)
    assert not sets[0] & sets[1]
    assert not sets[0] & sets[2]
    assert not sets[1] & sets[2]
    assert sum(map(len, sets)) == 4647  # distinct normalised texts, no label conflicts


def test_split_is_stratified(splits) -> None:
    sizes = splits.sizes()
    total = sum(s["total"] for s in sizes.values())
    spam_rate = sum(s["spam"] for s in sizes.values()) / total
    assert sizes["test"]["total"] == pytest.approx(0.15 * total, abs=2)
    assert sizes["validation"]["total"] == pytest.approx(0.15 * total, abs=2)
    for s in sizes.values():
        assert s["spam"] / s["total"] == pytest.approx(spam_rate, abs=0.005)


def test_split_is_deterministic_and_seeded(splits) -> None:
    again = split(read_tsv(DATA), seed=13)
    assert [e.text for e in again.test] == [e.text for e in splits.test]
    other = split(read_tsv(DATA), seed=14)
    assert [e.text for e in other.test] != [e.text for e in splits.test]


def test_limit_is_a_stratified_subsample() -> None:
    if not DATA.is_file():
        pytest.skip(f"{DATA} not present")
    small = split(read_tsv(DATA), seed=13, limit=400)
    sizes = small.sizes()
    assert sum(s["total"] for s in sizes.values()) == 400
    assert all(s["spam"] > 0 for s in sizes.values())


def test_augmentation_only_adds_new_training_spam(splits) -> None:
    train = splits.train[:600]
    held_out = {normalize(e.text) for e in splits.validation + splits.test}
    extra = augment_spam(train, factor=2, seed=13, exclude=held_out)
    n_spam = sum(e.label for e in train)
    assert 0.8 * n_spam <= len(extra) <= 2 * n_spam
    assert all(e.label == 1 and e.augmented for e in extra)
    keys = [normalize(e.text) for e in extra]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & held_out
    assert not set(keys) & {normalize(e.text) for e in train}
    # the split itself is untouched: nothing augmented in validation/test
    assert not any(e.augmented for e in splits.validation + splits.test)
    # deterministic for a seed
    assert [e.text for e in augment_spam(train, factor=2, seed=13, exclude=held_out)] == [
        e.text for e in extra
    ]


def test_augmentation_respects_the_exclusion_set() -> None:
    train = [Example("WIN a FREE prize now, call 0800", 1), Example("see you at 5", 0)]
    first = augment_spam(train, factor=8, seed=1)
    blocked = {normalize(e.text) for e in first}
    again = augment_spam(train, factor=8, seed=1, exclude=blocked)
    assert first and not again
    assert augment_spam(train, factor=0, seed=1) == []


def test_augmentation_does_not_follow_the_hash_seed() -> None:
    """One seed, one training set: nlpaug's spelling candidates come out of a set, whose order
    follows PYTHONHASHSEED; two interpreters with different hash seeds must agree."""
    import os
    import subprocess
    import sys

    code = ("from spamq.training.augment import augment_spam\n"
            "from spamq.training.data import Example\n"
            "rows = [Example(t, 1) for t in ('Your account has been suspended please verify "
            "your details today', 'Congratulations you have won a free holiday claim your "
            "prize before the offer expires', 'Your parcel could not be delivered because "
            "the customs fee was not paid')]\n"
            "for e in augment_spam(rows, factor=8, seed=5): print(e.text)\n")
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout
            for h in (1, 2, 3)]
    assert outs[0].count("\n") >= 12
    assert outs[0] == outs[1] == outs[2]
