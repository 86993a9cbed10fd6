"""The shadow's state and its rows, shared by the workers (worker/shadow.py) and the CLI
(``spamq models shadow``, ``shadow stop``, ``shadow-report``).

The state is ONE Redis key, :data:`SHADOW_KEY`: ``{"model", "version", "sample",
"started_at"}`` of checked values. The rows are Parquet files of :func:`schema` under
``<shadow_root>/candidate=<version>/date=YYYY-MM-DD/hour=HH/worker=<name>/``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spamq.storage.artifacts import ArtifactNotFound

if TYPE_CHECKING:
    import pyarrow as pa
    import redis

    from spamq.storage.artifacts import ArtifactStore

SHADOW_KEY = "spamq:shadow"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # as the registry's names


@cache
def schema() -> pa.Schema:
    """The rows' columns (pyarrow is imported on first use: an idle worker never loads it)."""
    import pyarrow as pa

    return pa.schema([
        pa.field("at", pa.timestamp("ms", tz="UTC"), nullable=False),
        # "texts": a texts job's chunk (either queue); "store": a store job's split
        pa.field("source", pa.string(), nullable=False),
        pa.field("text_sha256", pa.string(), nullable=False),  # of the normalised text
        pa.field("production_version", pa.string(), nullable=False),
        pa.field("production_probability", pa.float64(), nullable=False),
        pa.field("production_label", pa.string(), nullable=False),
        pa.field("candidate_version", pa.string(), nullable=False),
        pa.field("candidate_probability", pa.float64(), nullable=False),
        pa.field("candidate_label", pa.string(), nullable=False),
    ])


@dataclass(frozen=True)
class ShadowState:
    """What the key holds: the candidate ``model``/``version``, the sampled share, the start."""

    model: str
    version: str
    sample: float
    started_at: float  # unix seconds

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def check_state(model: str, version: str, sample: float, started_at: float) -> ShadowState:
    """A ShadowState of checked values; ValueError naming the bad one."""
    for what, value in (("model", model), ("version", version)):
        if not isinstance(value, str) or not _NAME.match(value):
            raise ValueError(f"shadow {what}: letters, digits, '.', '_', '-' only")
    if isinstance(sample, bool) or not isinstance(sample, int | float) or not (
            0.0 < float(sample) <= 1.0):
        raise ValueError("shadow sample: a share in (0, 1]")
    if isinstance(started_at, bool) or not isinstance(started_at, int | float) or not (
            math.isfinite(started_at) and started_at > 0):
        raise ValueError("shadow started_at: a unix time")
    return ShadowState(model, version, float(sample), float(started_at))


def parse_state(raw: bytes | str | None) -> ShadowState | None:
    """The key's value checked again (None when absent; ValueError when it is not valid)."""
    if raw is None:
        return None
    try:
        body = json.loads(raw)
        return check_state(body["model"], body["version"], body["sample"], body["started_at"])
    except (TypeError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{SHADOW_KEY} is not a valid shadow state") from exc


def read_state(client: redis.Redis) -> ShadowState | None:
    return parse_state(client.get(SHADOW_KEY))


def write_state(client: redis.Redis, state: ShadowState) -> None:
    client.set(SHADOW_KEY, state.to_json())


def clear_state(client: redis.Redis) -> ShadowState | None:
    """Delete the key; the state it held (None if none)."""
    raw = client.getdel(SHADOW_KEY)
    try:
        return parse_state(raw)
    except ValueError:
        return None


def sampled(sha256_hex: str, sample: float) -> bool:
    """Whether a text (by its :func:`text_sha256`) is in a ``sample`` share: the first 64 bits
    of the hash as a fraction of 2**64, below ``sample``. The same text is always in or out."""
    return int(sha256_hex[:16], 16) < sample * 2.0 ** 64


def partition_dir(root: str, version: str) -> str:
    if not _NAME.match(version):
        raise ValueError("shadow version: letters, digits, '.', '_', '-' only")
    return f"{root.strip('/')}/candidate={version}"




# --- the report ---------------------------------------------------------------------------

_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_HOUR_DIR = re.compile(r"^hour=\d{2}$")
_WORKER_DIR = re.compile(r"^worker=[A-Za-z0-9._-]+$")
_PART = re.compile(r"^part-[0-9a-f]{32}\.parquet$")
BINS = 20


def read_rows(store: ArtifactStore, root: str, version: str, *,
              since: datetime | None = None) -> pa.Table:
    """The shadow rows of candidate ``version`` written at or after ``since``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    cols = schema()

    base = partition_dir(root, version)
    tables = []
    for day in store.list(base):
        m = _DATE_DIR.match(day)
        if not m or (since is not None and m.group(1) < f"{since:%Y-%m-%d}"):
            continue
        for hour in (h for h in store.list(f"{base}/{day}") if _HOUR_DIR.match(h)):
            for worker in (w for w in store.list(f"{base}/{day}/{hour}") if _WORKER_DIR.match(w)):
                where = f"{base}/{day}/{hour}/{worker}"
                for name in (f for f in store.list(where) if _PART.match(f)):
                    try:
                        table = pq.read_table(pa.BufferReader(store.read_bytes(f"{where}/{name}")))
                        tables.append(table.select(cols.names).cast(cols))
                    except (ArtifactNotFound, pa.ArrowException, KeyError, ValueError):
                        continue  # deleted meanwhile, or not a shadow file
    if not tables:
        return cols.empty_table()
    table = pa.concat_tables(tables)
    if since is not None:
        at = pa.scalar(since, cols.field("at").type)
        table = table.filter(pc.greater_equal(table["at"], at))
    return table


def summarize(table: pa.Table) -> dict[str, Any]:
    """Agreement, label flips each way, score differences and histograms of both scores."""
    import numpy as np

    prod = np.asarray(table["production_probability"].to_pylist(), dtype=float)
    cand = np.asarray(table["candidate_probability"].to_pylist(), dtype=float)
    pl = np.asarray(table["production_label"].to_pylist())
    cl = np.asarray(table["candidate_label"].to_pylist())
    n = len(prod)
    edges = np.linspace(0.0, 1.0, BINS + 1)
    counts: dict[str, int] = {}
    for src in table["source"].to_pylist():
        counts[src] = counts.get(src, 0) + 1
    versions: dict[str, int] = {}
    for v in table["production_version"].to_pylist():
        versions[v] = versions.get(v, 0) + 1
    return {
        "rows": n, "by_source": counts, "production_versions": versions,
        "distinct_texts": len(set(table["text_sha256"].to_pylist())),
        "agreement": float(np.mean(pl == cl)) if n else None,
        "flips": {"ham_to_spam": int(np.sum((pl == "ham") & (cl == "spam"))),
                  "spam_to_ham": int(np.sum((pl == "spam") & (cl == "ham")))},
        "spam_share": {"production": float(np.mean(pl == "spam")) if n else None,
                       "candidate": float(np.mean(cl == "spam")) if n else None},
        "mean_abs_difference": float(np.mean(np.abs(prod - cand))) if n else None,
        "histogram": {"edges": [round(float(e), 4) for e in edges],
                      "production": np.histogram(prod, edges)[0].tolist(),
                      "candidate": np.histogram(cand, edges)[0].tolist()},
    }


def histogram_png(summary: dict[str, Any], path: Path, *, title: str) -> Path:
    """Both score histograms in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = summary["histogram"]
    edges = hist["edges"]
    width = edges[1] - edges[0]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(edges[:-1], hist["production"], width=width, align="edge", alpha=0.5,
           label="production")
    ax.bar(edges[:-1], hist["candidate"], width=width, align="edge", alpha=0.5,
           label="candidate")
    ax.set_yscale("symlog")
    ax.set_xlabel("spam probability")
    ax.set_ylabel("sampled texts")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_report(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    s = report["shadow"]
    lines = [f"# Shadow report: candidate {report['candidate']}", "",
             f"- started {report['started_at']}, sample {report['sample']}, "
             f"{'running' if report['running'] else 'stopped'}",
             f"- sampled rows {s['rows']} ({s['by_source']}), distinct texts "
             f"{s['distinct_texts']}, production versions {s['production_versions']}",
             f"- agreement {s['agreement']}; flips ham->spam {s['flips']['ham_to_spam']}, "
             f"spam->ham {s['flips']['spam_to_ham']}; mean |difference| "
             f"{s['mean_abs_difference']}",
             f"- spam share: production {s['spam_share']['production']}, candidate "
             f"{s['spam_share']['candidate']}", f"- histograms: {report['histogram_png']}"]
    workers = report.get("workers")
    if workers:
        lines.append(f"- live workers: {workers}")
    fb = report.get("feedback")
    if fb:
        lines += ["", f"## Feedback received since the start ({fb['items']} items, "
                  f"{fb['spam']} spam; {fb['logged_by_the_shadow']} seen by the shadow)", ""]
        rows = [(k, v) for k, v in fb.items() if isinstance(v, dict)]
        if rows:
            lines += ["| model | version | spam F1 | spam recall | ham FPR |",
                      "|---|---|---|---|---|"]
            lines += [f"| {k} | {v['version']} | {v['spam_f1']:.3f} | {v['spam_recall']} | "
                      f"{v['ham_fpr']} |" for k, v in rows]
    return "\n".join(lines) + "\n"
