"""Read the SMS Spam Collection TSV, remove duplicates, split train/validation/test.

The file uses no CSV quoting (some texts start with ``"``), so every line is split on its
first TAB by hand. Duplicates are removed on the *normalised* text (which implies exact
duplicates), so no input the model sees is in two splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spamq.text import normalize
from spamq.training.exclude import drop_excluded

LABELS = ("ham", "spam")
LABEL2ID = {name: i for i, name in enumerate(LABELS)}


@dataclass(frozen=True)
class Example:
    text: str  # as in the file
    label: int  # 0 ham, 1 spam
    augmented: bool = False
    weight: float = 1.0  # the row's weight in the training loss


@dataclass
class Splits:
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    seed: int
    stats: dict = field(default_factory=dict)

    def sizes(self) -> dict[str, dict[str, int]]:
        out = {}
        for name in ("train", "validation", "test"):
            rows = getattr(self, name)
            spam = sum(e.label for e in rows)
            out[name] = {"total": len(rows), "ham": len(rows) - spam, "spam": spam}
        return out


def read_tsv(path: Path) -> list[Example]:
    """Rows of ``label<TAB>text`` under a ``label<TAB>text`` header, quoting off."""
    rows: list[Example] = []
    with open(path, encoding="utf-8", newline="\n") as fh:
        header = fh.readline().rstrip("\n")
        if header.split("\t") != ["label", "text"]:
            raise ValueError(f"{path}: expected header 'label<TAB>text', got {header!r}")
        for lineno, line in enumerate(fh, start=2):
            line = line.rstrip("\n")
            if not line:
                continue
            label, sep, text = line.partition("\t")
            if not sep or label not in LABEL2ID:
                raise ValueError(f"{path}:{lineno}: bad row {line[:60]!r}")
            rows.append(Example(text=text, label=LABEL2ID[label]))
    return rows


def dedupe(rows: list[Example]) -> tuple[list[Example], int]:
    """Keep the first row of each normalised text; drop texts labelled both ways.

    Returns (rows, number of conflicting texts dropped).
    """
    first: dict[str, Example] = {}
    labels: dict[str, set[int]] = {}
    for row in rows:
        key = normalize(row.text)
        labels.setdefault(key, set()).add(row.label)
        first.setdefault(key, row)
    conflicts = {k for k, v in labels.items() if len(v) > 1}
    return [r for k, r in first.items() if k not in conflicts], len(conflicts)


def split(
    rows: list[Example],
    *,
    seed: int,
    validation_size: float = 0.15,
    test_size: float = 0.15,
    limit: int | None = None,
) -> Splits:
    """Dedupe, optionally subsample ``limit`` rows (stratified), then a stratified 3-way split."""
    from sklearn.model_selection import train_test_split

    n_read = len(rows)
    rows, n_conflicts = dedupe(rows)
    n_distinct = len(rows)
    if limit is not None and limit < len(rows):
        rows, _ = train_test_split(
            rows, train_size=limit, random_state=seed, stratify=[r.label for r in rows]
        )
    y = [r.label for r in rows]
    rest, test = train_test_split(rows, test_size=test_size, random_state=seed, stratify=y)
    train, validation = train_test_split(
        rest,
        test_size=validation_size / (1.0 - test_size),
        random_state=seed,
        stratify=[r.label for r in rest],
    )
    stats = {
        "rows_read": n_read,
        "distinct_normalized_texts": n_distinct,
        "conflicting_labels_dropped": n_conflicts,
        "limit": limit,
        "fractions": {"validation": validation_size, "test": test_size},
    }
    return Splits(train=train, validation=validation, test=test, seed=seed, stats=stats)


def split_excluding(rows: list[Example], excluded: frozenset[str], *, seed: int,
                    validation_size: float = 0.15, test_size: float = 0.15,
                    limit: int | None = None) -> Splits:
    """:func:`split`, then every excluded text dropped from all three splits.

    Texts are dropped after splitting, so the rest of each split is the same as without the
    list; ``stats["excluded"]`` counts the drops per split. The training and evaluation code
    both take the UCI test split from here, so they score the same texts.
    """
    s = split(rows, seed=seed, validation_size=validation_size, test_size=test_size,
              limit=limit)
    dropped = {}
    for name in ("train", "validation", "test"):
        kept, dropped[name] = drop_excluded(getattr(s, name), excluded)
        setattr(s, name, kept)
    s.stats["excluded"] = dropped
    return s


def check_apart(texts: Sequence[str], eval_texts: Sequence[str], what: str = "trained on") -> None:
    """Raise if any evaluation text equals (after normalisation) one of ``texts``."""
    seen = {normalize(t) for t in texts}
    clash = [t for t in eval_texts if normalize(t) in seen]
    if clash:
        raise ValueError(f"{len(clash)} evaluation texts are also {what}, e.g. {clash[0]!r}")
