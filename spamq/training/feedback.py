"""Operators' feedback as a training source: which keys' feedback, split by time.

Nothing crosses keys implicitly: the operator names the feedback with ``--feedback``,
either ``tenants=<key id>,<key id>`` (those keys' partitions under ``settings.feedback_root``
in the configured artifact store) or a path of partitions: a local directory, an
``hdfs://`` path, or a path inside the artifact store, being a feedback root (every key
under it, as the operator named it) or one key's ``tenant=<key id>`` directory.

The split is by time: the newest ``holdout`` share of the items (by ``received_at``; items
received at the cutoff instant all go with the newest) evaluates, the older ones train.
Near-duplicates stay on the evaluation side: an older item whose :func:`near_key` equals a
held-out item's is not trained on. :func:`near_key` is the normalised text (the
``text_sha256`` dedup key) further lower-cased, with every URL replaced by one token and every
run of digits by ``0``, so "Debit of $450 ... https://bit.ly/x1" and "Debit of $97 ...
https://t.co/y" are one text. Texts of the exclusion list (spamq/training/exclude.py) are
dropped on both sides. Across the keys chosen, the newest item per ``text_sha256`` wins (as
within one key).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from spamq.feedback.store import check_tenant, list_tenants, read_feedback
from spamq.storage.artifacts import (
    ArtifactStore,
    HdfsArtifactStore,
    LocalArtifactStore,
    artifact_store_from_settings,
)
from spamq.text import normalize
from spamq.training.exclude import is_excluded, load_excluded

if TYPE_CHECKING:
    import pyarrow as pa

    from spamq.settings import Settings

DEFAULT_HOLDOUT = 0.2
NEAR_DUPLICATE_RULE = ("spamq.text.normalize, lower-cased, URLs -> one token, digit runs -> "
                       "'0', whitespace collapsed")
_URL = re.compile(
    r"(?:https?://|www\.)\S+"
    r"|\b[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|net|org|info|biz|io|co|me|ly|gl|to|us|uk|"
    r"app|link|xyz|top|site|online|club|shop)\b(?:/\S*)?")
_DIGITS = re.compile(r"\d+")
_WS = re.compile(r"\s+")


def near_key(text: str) -> str:
    """The key near-duplicates share (see the module docstring)."""
    t = _URL.sub(" <url> ", normalize(text).lower())
    return _WS.sub(" ", _DIGITS.sub("0", t)).strip()


# --- where the feedback is ------------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackSource:
    """``tenants=a,b`` (keys under the configured feedback root) or a path of partitions
    (``tenants``: the keys found there once read, so a later read keeps to them)."""

    spec: str
    tenants: tuple[str, ...] = ()
    path: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "tenants": list(self.tenants)}


def parse_source(spec: str) -> FeedbackSource:
    """``--feedback`` value -> FeedbackSource; ValueError when it names no keys or no path."""
    spec = spec.strip()
    if spec.startswith("tenants="):
        tenants = tuple(dict.fromkeys(t.strip() for t in spec.removeprefix("tenants=").split(",")
                                      if t.strip()))
        if not tenants:
            raise ValueError("--feedback tenants= names no key id")
        return FeedbackSource(spec, tuple(check_tenant(t) for t in tenants))
    if not spec:
        raise ValueError("--feedback needs tenants=<key id>,... or a path")
    return FeedbackSource(spec, path=spec)


def _open(source: FeedbackSource, settings: Settings) -> tuple[ArtifactStore, str, list[str]]:
    """(store, feedback root inside it, tenants to read)."""
    if source.path is None:
        return artifact_store_from_settings(settings), settings.feedback_root, list(
            source.tenants)
    store: ArtifactStore
    if source.path.startswith("hdfs://"):
        if not settings.hdfs_url:
            raise ValueError("--feedback hdfs://...: set SPAMQ_HDFS_URL (WebHDFS)")
        full = PurePosixPath(urlparse(source.path).path)
        store = HdfsArtifactStore(settings.hdfs_url, user=settings.hdfs_user,
                                  root=str(full.parent.parent), timeout_s=settings.hdfs_timeout_s)
        rel = PurePosixPath(full.parent.name, full.name)
    elif Path(source.path).is_dir():
        full_local = Path(source.path).resolve()
        store = LocalArtifactStore(full_local.parent.parent)
        rel = PurePosixPath(full_local.parent.name, full_local.name)
    else:  # a path inside the configured artifact store
        store = artifact_store_from_settings(settings)
        rel = PurePosixPath(source.path.strip("/"))
    if rel.name.startswith("tenant="):  # one key's directory
        return store, str(rel.parent), [check_tenant(rel.name.removeprefix("tenant="))]
    tenants = list_tenants(store, str(rel))
    if not tenants:
        raise ValueError(f"--feedback {source.spec}: no tenant=<key id> partitions there")
    return store, str(rel), tenants


def read(source: FeedbackSource, settings: Settings, *,
         until: datetime | None = None) -> tuple[pa.Table, FeedbackSource]:
    """The feedback named, deduplicated per key, and the source with the keys read."""
    store, root, tenants = _open(source, settings)
    if source.path is not None and source.tenants:  # as recorded: those keys only
        tenants = [t for t in tenants if t in source.tenants]
    table = read_feedback(store, tenants, until=until, root=root)
    return table, FeedbackSource(source.spec, tuple(tenants), source.path)


# --- rows and the split ---------------------------------------------------------------------


@dataclass(frozen=True)
class FeedbackRow:
    text: str
    label: int  # 0 ham, 1 spam
    received_at: datetime
    tenant: str
    category: str | None = None


@dataclass
class FeedbackSplit:
    train: list[FeedbackRow]
    holdout: list[FeedbackRow]
    cutoff: datetime | None  # the holdout is every item received at or after it
    until: datetime | None  # the newest item read
    stats: dict[str, Any] = field(default_factory=dict)

    def holdout_keys(self) -> set[str]:
        return {near_key(r.text) for r in self.holdout}

    def record(self, source: FeedbackSource | None = None) -> dict[str, Any]:
        """What the manifest keeps: where, the cutoff and the counts (no text)."""
        return {"source": source.describe() if source else None,
                "cutoff": self.cutoff.isoformat() if self.cutoff else None,
                "until": self.until.isoformat() if self.until else None,
                "near_duplicate_rule": NEAR_DUPLICATE_RULE, **self.stats}


def _sizes(rows: list[FeedbackRow]) -> dict[str, int]:
    spam = sum(r.label for r in rows)
    return {"total": len(rows), "ham": len(rows) - spam, "spam": spam}


def prepare(table: pa.Table, excluded: frozenset[str]) -> tuple[list[FeedbackRow], dict]:
    """Rows oldest first: excluded texts dropped, then the newest per text_sha256 across the
    keys read (each key's own duplicates are gone already)."""
    cols = table.select(["text_sha256", "text", "label", "category", "received_at",
                         "tenant"]).to_pydict()
    newest: dict[str, tuple[datetime, int]] = {}
    n_excluded = 0
    keep: list[int] = []
    for i, (sha, text, at) in enumerate(zip(cols["text_sha256"], cols["text"],
                                            cols["received_at"], strict=True)):
        if is_excluded(text, excluded):
            n_excluded += 1
            continue
        keep.append(i)
        if sha not in newest or (at, i) >= newest[sha]:
            newest[sha] = (at, i)
    winners = sorted(i for _, i in newest.values())
    rows = [FeedbackRow(text=cols["text"][i], label=1 if cols["label"][i] == "spam" else 0,
                        received_at=cols["received_at"][i], tenant=cols["tenant"][i],
                        category=cols["category"][i]) for i in winners]
    rows.sort(key=lambda r: r.received_at)  # stable: file order within one instant
    return rows, {"rows_read": table.num_rows, "excluded": n_excluded,
                  "duplicates_across_keys": len(keep) - len(winners)}


def split_by_time(rows: list[FeedbackRow], holdout: float = DEFAULT_HOLDOUT,
                  stats: dict | None = None) -> FeedbackSplit:
    """The newest ``holdout`` share evaluates; older rows train unless a near-duplicate of a
    held-out row. ``rows`` oldest first (:func:`prepare`)."""
    if not 0.0 <= holdout < 1.0:
        raise ValueError("--feedback-holdout is a share in [0, 1)")
    rows = sorted(rows, key=lambda r: r.received_at)
    n_hold = min(len(rows), math.ceil(len(rows) * holdout))
    cutoff = rows[len(rows) - n_hold].received_at if n_hold else None
    held = [r for r in rows if cutoff is not None and r.received_at >= cutoff]
    older = rows[: len(rows) - len(held)]
    keys = {near_key(r.text) for r in held}
    train = [r for r in older if near_key(r.text) not in keys]
    info = {**(stats or {}), "holdout_fraction": holdout,
            "near_duplicates_dropped_from_training": len(older) - len(train),
            "train": _sizes(train), "holdout": _sizes(held)}
    return FeedbackSplit(train=train, holdout=held, cutoff=cutoff,
                         until=rows[-1].received_at if rows else None, stats=info)


def load_split(spec: str, settings: Settings, *, holdout: float = DEFAULT_HOLDOUT,
               excluded: frozenset[str] | None = None) -> tuple[FeedbackSource, FeedbackSplit]:
    """Read the named feedback and split it by time (``spamq train --feedback``)."""
    if excluded is None:
        excluded = load_excluded(settings.exclude_sha256_path)
    table, source = read(parse_source(spec), settings)
    rows, stats = prepare(table, excluded)
    return source, split_by_time(rows, holdout, stats)


def holdout_of(record: dict | None, settings: Settings, *,
               excluded: frozenset[str] | None = None, spec: str | None = None,
               holdout: float = DEFAULT_HOLDOUT) -> tuple[list[str], list[int], list[str]] | None:
    """The feedback evaluation set for the gate, as (texts, labels, categories).

    With ``spec`` (``--feedback`` on evaluate/promote): that feedback read now, its newest
    ``holdout`` share. Otherwise the candidate's own held-out feedback (its manifest's
    ``feedback`` record): re-read from the keys recorded, the items received in
    [cutoff, until]. None when there is neither.
    """
    if excluded is None:
        excluded = load_excluded(settings.exclude_sha256_path)
    if spec:
        table, _ = read(parse_source(spec), settings)
        rows, stats = prepare(table, excluded)
        held = split_by_time(rows, holdout, stats).holdout
    else:
        src = (record or {}).get("source")
        if not record or not src or not record.get("cutoff") or not record.get("until"):
            return None
        parsed = parse_source(src["spec"])
        source = FeedbackSource(parsed.spec, tuple(src.get("tenants") or parsed.tenants),
                                parsed.path)
        cutoff = datetime.fromisoformat(record["cutoff"])
        until = datetime.fromisoformat(record["until"]) + timedelta(milliseconds=1)
        table, _ = read(source, settings, until=until)
        rows, _ = prepare(table, excluded)
        held = [r for r in rows if r.received_at >= cutoff]
    return ([r.text for r in held], [r.label for r in held], ["feedback"] * len(held))


def join_training(train_rows: list, split: FeedbackSplit, evaluation_texts: list[str],
                  make) -> tuple[list, dict]:
    """Training rows with the feedback's training side added; the evaluation side wins.

    Other sources' training rows that are near-duplicates of a held-out feedback item are
    dropped, and so are feedback training items that are near-duplicates of any evaluation
    or validation text (``evaluation_texts``). ``make(text, label)`` builds a training row.
    """
    held = split.holdout_keys()
    kept = [r for r in train_rows if near_key(r.text) not in held]
    apart = {near_key(t) for t in evaluation_texts} | held
    fb = [make(r.text, r.label) for r in split.train if near_key(r.text) not in apart]
    return kept + fb, {"training_rows_dropped_near_holdout": len(train_rows) - len(kept),
                       "feedback_dropped_near_evaluation": len(split.train) - len(fb),
                       "feedback_trained": len(fb)}
