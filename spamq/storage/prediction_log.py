"""Prediction log: every scored item as a JSON line in partitioned files of the artifact store.

Layout (``root`` default ``predictions``)::

    predictions/date=YYYY-MM-DD/hour=HH/worker=<name>/part-<uuid>.jsonl

Rows are buffered in memory and written as a new file (temporary name, then rename: no
file is ever appended to or rewritten) when ``max_rows`` rows are buffered, when the oldest
buffered row is ``max_age_s`` old, and at :meth:`close`. A failed write keeps the rows for
the next flush (bounded: beyond ``10 * max_rows`` the oldest are dropped, with a warning).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from spamq.storage.artifacts import ArtifactError, ArtifactStore

logger = logging.getLogger(__name__)

TextMode = Literal["text", "sha256", "none"]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class PredictionLog:
    """Buffers prediction rows and writes them out in complete, partitioned JSONL files."""

    def __init__(
        self,
        store: ArtifactStore,
        *,
        worker: str,
        root: str = "predictions",
        text_mode: TextMode = "sha256",
        max_rows: int = 10_000,
        max_age_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        background: bool = True,
    ) -> None:
        self.store = store
        self.worker = _UNSAFE.sub("_", worker)
        self.root = root.strip("/")
        self.text_mode = text_mode
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._oldest: float | None = None
        self._stop = threading.Event()
        self.files_written = 0
        self.rows_written = 0
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._loop, name="spamq-prediction-log",
                                            daemon=True)
            self._thread.start()

    def record(
        self, *, job_id: str, start: int, texts: Sequence[str], results: Sequence[dict[str, Any]]
    ) -> None:
        """Buffer one stored chunk: ``results[i]`` scored ``texts[i]``, item ``start + i``."""
        now = self._clock()
        at = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
        rows = []
        for i, (text, r) in enumerate(zip(texts, results, strict=True)):
            row: dict[str, Any] = {"job_id": job_id, "index": start + i}
            if self.text_mode == "text":
                row["text"] = text
            elif self.text_mode == "sha256":
                row["text_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
            row.update(label=r["label"], spam_probability=r["spam_probability"],
                       model_version=r["model_version"], timestamp=at, ts=now)
            rows.append(row)
        with self._lock:
            if not self._rows:
                self._oldest = now
            self._rows.extend(rows)
            full = len(self._rows) >= self.max_rows
        if full:
            self.flush()

    def _due(self) -> bool:
        with self._lock:
            return bool(self._rows) and self._oldest is not None and (
                self._clock() - self._oldest >= self.max_age_s)

    def _loop(self) -> None:
        tick = min(1.0, max(0.05, self.max_age_s / 4))
        while not self._stop.wait(tick):
            if self._due():
                self.flush()

    def flush(self) -> int:
        """Write every buffered row (one file per hour partition); return rows written."""
        with self._flush_lock:
            with self._lock:
                rows, self._rows, self._oldest = self._rows, [], None
            if not rows:
                return 0
            parts: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for row in rows:
                dt = datetime.fromtimestamp(row["ts"], UTC)
                parts.setdefault((dt.strftime("%Y-%m-%d"), dt.strftime("%H")), []).append(row)
            written = 0
            for (date, hour), part in parts.items():
                for start in range(0, len(part), self.max_rows):
                    chunk = part[start:start + self.max_rows]
                    path = (f"{self.root}/date={date}/hour={hour}/worker={self.worker}/"
                            f"part-{uuid.uuid4().hex}.jsonl")
                    body = "".join(
                        json.dumps({k: v for k, v in r.items() if k != "ts"}) + "\n" for r in chunk
                    ).encode()
                    try:
                        self.store.write_bytes_atomic(path, body)
                    except (ArtifactError, OSError) as exc:
                        logger.warning("prediction log: %d rows not written to %s: %s",
                                       len(chunk), path, exc)
                        self._keep([r for p in list(parts.values()) for r in p][written:])
                        return written
                    written += len(chunk)
                    self.files_written += 1
                    self.rows_written += len(chunk)
                    logger.debug("prediction log: %d rows -> %s", len(chunk), path)
            return written

    def _keep(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            merged = rows + self._rows
            cap = 10 * self.max_rows
            if len(merged) > cap:
                logger.warning("prediction log: dropping %d unwritten rows", len(merged) - cap)
                merged = merged[-cap:]
            self._rows = merged
            self._oldest = merged[0]["ts"] if merged else None

    def close(self) -> None:
        """Stop the timer and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush()
