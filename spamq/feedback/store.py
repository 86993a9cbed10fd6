"""Feedback ("report spam" / "not spam") kept in the artifact store as Parquet partitions.

Layout (``root`` is ``settings.feedback_root``, default ``feedback``)::

    feedback/tenant=<key id>/date=YYYY-MM-DD/part-<unix ms>-<8 hex>.parquet

One file per accepted request, with the columns of :data:`SCHEMA`. ``<key id>`` is the
submitting API key's id (16 hex digits), or ``local`` with authentication off; it is never
client input. Nothing goes to Redis per item.

Within one key the newest item per ``text_sha256`` (the SHA-256 of the normalised text,
:func:`text_sha256`) wins: a request is deduplicated as it is written, and readers
(:func:`read_feedback`) deduplicate across requests. Deleting rewrites or removes files;
:func:`sweep_retention` removes date partitions older than the retention.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spamq.storage.artifacts import ArtifactError, ArtifactNotFound, ArtifactStore
from spamq.text import normalize

logger = logging.getLogger(__name__)

SCHEMA = pa.schema([
    pa.field("text_sha256", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("label", pa.string(), nullable=False),
    pa.field("category", pa.string()),
    pa.field("note", pa.string()),
    pa.field("source", pa.string(), nullable=False),
    pa.field("job_id", pa.string()),
    pa.field("row", pa.int64()),
    pa.field("model_version", pa.string()),
    pa.field("received_at", pa.timestamp("ms", tz="UTC"), nullable=False),
])
#: what :func:`read_feedback` returns: the stored columns plus the partition's ``tenant``
READ_SCHEMA = SCHEMA.append(pa.field("tenant", pa.string(), nullable=False))

LABELS = ("spam", "ham")
LOCAL_TENANT = "local"
_TENANT = re.compile(r"^(?:[0-9a-f]{16}|local)$")
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_PART = re.compile(r"^part-\d{13}-[0-9a-f]{8}\.parquet$")


def text_sha256(text: str) -> str:
    """The dedup key: SHA-256 hex of the text as the model sees it (spamq.text.normalize)."""
    return hashlib.sha256(normalize(text).encode("utf-8")).hexdigest()


def check_tenant(tenant: str) -> str:
    """``tenant`` if it is a key id (or ``local``); ValueError otherwise (never a path part)."""
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise ValueError("a feedback tenant is a 16-hex key id or 'local'")
    return tenant


def tenant_dir(root: str, tenant: str) -> str:
    return f"{root.strip('/')}/tenant={check_tenant(tenant)}"


def _utc(at: datetime | date) -> datetime:
    if isinstance(at, datetime):
        return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    return datetime(at.year, at.month, at.day, tzinfo=UTC)


def dedupe(items: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Items with one per ``text_sha256`` (the last one given wins), and how many were dropped."""
    last: dict[str, dict[str, Any]] = {}
    for item in items:
        last.pop(item["text_sha256"], None)
        last[item["text_sha256"]] = item
    return list(last.values()), len(items) - len(last)


def write_feedback(store: ArtifactStore, tenant: str, items: Sequence[dict[str, Any]], *,
                   root: str = "feedback", now: datetime | None = None) -> str | None:
    """Write ``items`` (dicts with the :data:`SCHEMA` columns but ``received_at``) as one new
    Parquet file of ``tenant`` and return its store path (None when there are no items).

    The caller deduplicates (:func:`dedupe`); each item gets ``received_at`` = ``now``.
    """
    if not items:
        return None
    at = _utc(now or datetime.now(UTC))
    cols: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}
    for item in items:
        for name, values in cols.items():
            values.append(at if name == "received_at" else item.get(name))
    table = pa.Table.from_pydict(cols, schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    ms = int(at.timestamp() * 1000)
    path = (f"{tenant_dir(root, tenant)}/date={at:%Y-%m-%d}/"
            f"part-{ms:013d}-{secrets.token_hex(4)}.parquet")
    store.write_bytes_atomic(path, buf.getvalue())
    return path


@dataclass(frozen=True)
class Part:
    tenant: str
    day: date
    path: str


def list_tenants(store: ArtifactStore, root: str = "feedback") -> list[str]:
    """Every tenant that has a feedback directory."""
    out = []
    for name in store.list(root.strip("/")):
        t = name.removeprefix("tenant=")
        if name.startswith("tenant=") and _TENANT.match(t):
            out.append(t)
    return out


def parts(store: ArtifactStore, tenant: str, *, root: str = "feedback",
          since: date | None = None, until: date | None = None) -> list[Part]:
    """The tenant's Parquet files, oldest first, in date partitions within [since, until]."""
    base = tenant_dir(root, tenant)
    out: list[Part] = []
    for name in store.list(base):
        m = _DATE_DIR.match(name)
        if not m:
            continue
        try:
            day = date.fromisoformat(m.group(1))
        except ValueError:
            continue
        if (since and day < since) or (until and day > until):
            continue
        out.extend(Part(tenant, day, f"{base}/{name}/{f}")
                   for f in store.list(f"{base}/{name}") if _PART.match(f))
    return sorted(out, key=lambda p: (p.day, p.path.rsplit("/", 1)[1]))


def _read_part(store: ArtifactStore, part: Part) -> pa.Table | None:
    try:
        table = pq.read_table(pa.BufferReader(store.read_bytes(part.path)))
        return table.select(SCHEMA.names).cast(SCHEMA)
    except ArtifactNotFound:  # deleted meanwhile
        return None
    except (pa.ArrowException, KeyError, ValueError) as exc:
        logger.warning("feedback: skipping unreadable file %s: %s", part.path, type(exc).__name__)
        return None


def read_feedback(store: ArtifactStore, tenants: list[str] | None, *,
                  since: datetime | date | None = None, until: datetime | date | None = None,
                  root: str = "feedback") -> pa.Table:
    """The feedback of ``tenants`` (None: every tenant), deduplicated, oldest first.

    Columns: :data:`READ_SCHEMA` (the stored ones plus ``tenant``). Only items received in
    ``[since, until)`` are read (a date means its midnight UTC); within one tenant the newest
    item per ``text_sha256`` among them wins (the later file, then the later row, on a tie).
    Nothing is deduplicated across tenants.
    """
    lo = _utc(since) if since is not None else None
    hi = _utc(until) if until is not None else None
    names = list_tenants(store, root) if tenants is None else [check_tenant(t) for t in tenants]
    tables = []
    for tenant in names:
        for part in parts(store, tenant, root=root, since=lo.date() if lo else None,
                          until=hi.date() if hi else None):
            table = _read_part(store, part)
            if table is not None and table.num_rows:
                tables.append(table.append_column(
                    "tenant", pa.array([tenant] * table.num_rows, pa.string())))
    if not tables:
        return READ_SCHEMA.empty_table()
    table = pa.concat_tables(tables)
    if lo is not None:
        table = table.filter(pc.greater_equal(table["received_at"], pa.scalar(lo, SCHEMA.field(
            "received_at").type)))
    if hi is not None:
        table = table.filter(pc.less(table["received_at"], pa.scalar(hi, SCHEMA.field(
            "received_at").type)))
    # newest wins: files are in time order, rows in order within a file, so the largest
    # position per (tenant, text_sha256) among rows sorted by received_at is the newest
    table = table.append_column("_pos", pa.array(range(table.num_rows), pa.int64()))
    table = table.sort_by([("received_at", "ascending"), ("_pos", "ascending")])
    table = table.set_column(table.schema.get_field_index("_pos"), "_pos",
                             pa.array(range(table.num_rows), pa.int64()))
    keep = table.group_by(["tenant", "text_sha256"]).aggregate([("_pos", "max")])
    idx = pc.sort_indices(keep["_pos_max"])
    return table.take(pc.take(keep["_pos_max"], idx)).drop_columns(["_pos"]).cast(READ_SCHEMA)



def delete_feedback(store: ArtifactStore, tenant: str, *, text_sha256: str | None = None,
                    root: str = "feedback") -> int:
    """Delete ``tenant``'s feedback: all of it, or only items of one ``text_sha256``.

    Returns how many texts had items removed (as the stats count them: a text reported
    twice is one). Files holding a matching item are rewritten without it (in place,
    atomically) or removed when nothing is left.
    """
    removed: set[str] = set()
    for part in parts(store, tenant, root=root):
        table = _read_part(store, part)
        if table is None:
            continue
        if text_sha256 is None:
            hit = table.num_rows
            rest = None
            removed.update(table["text_sha256"].to_pylist())
        else:
            mask = pc.equal(table["text_sha256"], text_sha256)
            hit = pc.sum(mask).as_py() or 0
            rest = table.filter(pc.invert(mask)) if hit else None
            if hit:
                removed.add(text_sha256)
        if text_sha256 is not None and not hit:
            continue
        if rest is None or rest.num_rows == 0:
            store.delete(part.path)
        else:
            buf = io.BytesIO()
            pq.write_table(rest, buf, compression="zstd")
            store.write_bytes_atomic(part.path, buf.getvalue())
    if text_sha256 is None:
        try:
            store.delete(tenant_dir(root, tenant), recursive=True)
        except ArtifactError as exc:  # files are gone; an empty directory may be left
            logger.warning("feedback: tenant directory not removed: %s", exc)
    return len(removed)


def sweep_retention(store: ArtifactStore, *, retention_days: int, root: str = "feedback",
                    now: datetime | None = None) -> int:
    """Delete every date partition older than ``retention_days`` days; return how many."""
    cutoff = (_utc(now or datetime.now(UTC)) - timedelta(days=retention_days)).date()
    deleted = 0
    for tenant in list_tenants(store, root):
        base = tenant_dir(root, tenant)
        for name in store.list(base):
            m = _DATE_DIR.match(name)
            try:
                old = m is not None and date.fromisoformat(m.group(1)) < cutoff
            except ValueError:
                continue
            if old and store.delete(f"{base}/{name}", recursive=True):
                deleted += 1
    return deleted


def stats(table: pa.Table) -> dict[str, Any]:
    """Counts by label, category (``null``: none given) and day received, of a read table."""
    def counts(values: Iterable[Any]) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in values:
            key = "none" if v is None else str(v)
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))

    days = [d.date().isoformat() for d in table["received_at"].to_pylist()]
    return {
        "total": table.num_rows,
        "by_label": {**dict.fromkeys(LABELS, 0), **counts(table["label"].to_pylist())},
        "by_category": counts(table["category"].to_pylist()),
        "by_day": counts(days),
    }
