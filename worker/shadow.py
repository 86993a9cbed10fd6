"""Shadow scoring: a candidate model version scores a sample of live traffic beside production.

The shadow is ONE small Redis key, ``spamq:shadow`` (spamq/models/shadow.py), holding
``{"model", "version", "sample", "started_at"}`` (written by ``spamq models shadow``, built
from checked values only; :func:`parse_state` checks it again on read). Each worker process
reads it with its heartbeat (:meth:`ShadowTap.poll`), and its shadow thread pulls the
candidate from the registry (verified against its manifest, as production is), loads it once
and drops it when the key goes (``spamq models shadow stop``) or names another version.

Production comes first: :meth:`ShadowTap.offer` is called after the production results are
stored, costs a length check and a queue append (nothing when no candidate is loaded), and a
full queue drops the rows (``dropped`` counts them). The shadow thread picks the sample by
text hash (:func:`sampled`: the same text is always in or out), scores it with the
candidate and buffers one row per sampled text, written as Parquet files::

    <shadow_root>/candidate=<version>/date=YYYY-MM-DD/hour=HH/worker=<name>/part-<uuid>.parquet

(spamq.models.shadow.schema(); nothing per row goes to Redis). ``spamq models shadow-report``
reads them.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from spamq.models.shadow import ShadowState, partition_dir, read_state, sampled, schema
from spamq.storage.artifacts import ArtifactError

if TYPE_CHECKING:
    import redis

    from spamq.storage.artifacts import ArtifactStore
    from worker.runner import BatchClassifier

logger = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ShadowWriter:
    """Buffers shadow rows and writes them as new Parquet files (temporary name, then rename)
    when ``max_rows`` are buffered, when the oldest is ``max_age_s`` old, and at :meth:`flush`.
    A failed write keeps the rows for the next try (at most ``10 * max_rows``)."""

    def __init__(self, store: ArtifactStore, *, worker: str, root: str = "shadow",
                 max_rows: int = 10_000, max_age_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.worker, self.root = store, _UNSAFE.sub("_", worker) or "worker", root
        self.max_rows, self.max_age_s, self._clock = max_rows, max_age_s, clock
        self._rows: list[dict[str, Any]] = []
        self._oldest: float | None = None
        self.rows_written = 0
        self.files_written = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        if rows and not self._rows:
            self._oldest = self._clock()
        self._rows.extend(rows)
        if len(self._rows) >= self.max_rows:
            self.flush()

    def due(self) -> bool:
        return bool(self._rows) and self._oldest is not None and (
            self._clock() - self._oldest >= self.max_age_s)

    def flush(self) -> int:
        import pyarrow as pa  # here: an idle worker (no shadow) never loads pyarrow
        import pyarrow.parquet as pq

        rows, self._rows, self._oldest = self._rows, [], None
        written = 0
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for row in rows:
            at = row["at"]
            groups.setdefault((row["candidate_version"], f"{at:%Y-%m-%d}", f"{at:%H}"),
                              []).append(row)
        for (version, day, hour), group in groups.items():
            path = (f"{partition_dir(self.root, version)}/date={day}/hour={hour}/"
                    f"worker={self.worker}/part-{uuid.uuid4().hex}.parquet")
            buf = io.BytesIO()
            pq.write_table(pa.Table.from_pylist(group, schema=schema()), buf,
                           compression="zstd")
            try:
                self.store.write_bytes_atomic(path, buf.getvalue())
            except (ArtifactError, OSError) as exc:
                logger.warning("shadow: %d rows not written (%s); kept for the next try",
                               len(group), type(exc).__name__)
                keep = [r for g in groups.values() for r in g][written:]
                self._rows = (keep + self._rows)[-10 * self.max_rows:]
                self._oldest = self._clock()
                return written
            written += len(group)
            self.rows_written += len(group)
            self.files_written += 1
        return written


@dataclass
class _Offer:
    texts: Sequence[str]
    probabilities: Sequence[float | None]
    labels: Sequence[str | None]
    versions: Sequence[str | None]
    source: str


class ShadowTap:
    """A worker process's shadow: :meth:`poll` (heartbeat) follows the key, :meth:`offer`
    (after production results are stored) queues rows, a daemon thread scores the sample.

    ``load(model, version)`` returns the candidate's runner, pulled and verified (the worker
    process passes the registry's pull and :func:`worker.model_source.build_runner`).
    """

    def __init__(self, load: Callable[[str, str], BatchClassifier], writer: ShadowWriter, *,
                 model: str, queue_rows: int = 20_000, idle_s: float = 0.5) -> None:
        self._load, self.writer, self.model = load, writer, model
        self.queue_rows, self.idle_s = queue_rows, idle_s
        self._wanted: ShadowState | None = None
        self.state: ShadowState | None = None  # the loaded candidate's
        self.runner: BatchClassifier | None = None
        self._queue: deque[_Offer] = deque()
        self._queued = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failed: ShadowState | None = None  # do not pull a refused version every poll
        self.offered = self.sampled = self.scored = self.dropped = self.errors = 0
        self._thread: threading.Thread | None = None

    # --- the heartbeat's side ---------------------------------------------------------------
    def poll(self, client: redis.Redis) -> None:
        """Read the key (one GET); the shadow thread acts on a change."""
        try:
            state = read_state(client)
        except ValueError as exc:
            logger.warning("shadow: %s; ignored", exc)
            state = None
        if state is not None and state.model != self.model:
            state = None  # another model's shadow
        if state != self._wanted:
            self._wanted = state
            self._wake.set()

    # --- the task's side (production results already stored) ---------------------------------
    def offer(self, texts: Sequence[str], probabilities: Sequence[float | None],
              labels: Sequence[str | None], versions: Sequence[str | None], *,
              source: str) -> bool:
        """Queue stored production results for the candidate; False when no candidate is
        loaded or the queue is full (the rows are dropped and counted)."""
        if self.runner is None or not texts:
            return False
        n = len(texts)
        with self._lock:
            self.offered += n
            if self._queued + n > self.queue_rows:
                self.dropped += n
                return False
            self._queue.append(_Offer(texts, probabilities, labels, versions, source))
            self._queued += n
        self._wake.set()
        return True

    def offer_rows(self, texts: Sequence[str], results: Sequence[dict[str, Any]], *,
                   source: str = "texts") -> bool:
        """:meth:`offer` for result dicts (a texts job's stored chunk, either queue)."""
        if self.runner is None:
            return False
        return self.offer(texts, [r.get("spam_probability") for r in results],
                          [r.get("label") for r in results],
                          [r.get("model_version") for r in results], source=source)

    def offer_columns(self, texts: Sequence[str], columns: dict[str, list[Any]], *,
                      source: str = "store") -> bool:
        """:meth:`offer` for result columns (a store job's scored batch)."""
        if self.runner is None:
            return False
        n = len(texts)
        return self.offer(texts, columns.get("spam_probability") or [None] * n,
                          columns.get("label") or [None] * n,
                          columns.get("model_version") or [None] * n, source=source)

    def stats(self) -> dict[str, Any]:
        state = self.state
        return {"version": state.version if state else None, "offered": self.offered,
                "sampled": self.sampled, "scored": self.scored, "dropped": self.dropped,
                "errors": self.errors, "queued": self._queued,
                "rows_written": self.writer.rows_written}

    # --- the shadow thread ------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spamq-shadow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        self._flush()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.idle_s)
            self._wake.clear()
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the shadow must never take the worker down
                self.errors += 1
                logger.exception("shadow: a step failed; going on")

    def step(self) -> None:
        """Follow the wanted state, score what is queued, write what is due."""
        self._follow()
        while True:
            with self._lock:
                if not self._queue:
                    break
                item = self._queue.popleft()
                self._queued -= len(item.texts)
            self._score(item)
        if self.writer.due():
            self.writer.flush()

    def _follow(self) -> None:
        wanted = self._wanted
        if wanted == self.state or (wanted is not None and wanted == self._failed):
            return
        if self.state is not None:  # stopped or replaced: drop the candidate and its queue
            logger.info("shadow of %s ended", self.state.version)
            self.runner, self.state = None, None
            with self._lock:
                self._queue.clear()
                self._queued = 0
            self._flush()
        if wanted is None:
            return
        logger.info("shadow: loading candidate %s/%s (sample %.3g)", wanted.model,
                    wanted.version, wanted.sample)
        try:
            runner = self._load(wanted.model, wanted.version)
            if runner.version != wanted.version:
                raise ValueError(f"the loaded model is {runner.version}, not {wanted.version}")
        except Exception as exc:  # noqa: BLE001 - refused or unreachable: production goes on
            self._failed = wanted
            self.errors += 1
            logger.warning("shadow: candidate %s not loaded: %s", wanted.version, exc)
            return
        self.state, self.runner, self._failed = wanted, runner, None
        logger.info("shadow: candidate %s ready", wanted.version)

    def _score(self, item: _Offer) -> None:
        from spamq.feedback.store import text_sha256  # (imports pyarrow: not in an idle worker)

        state, runner = self.state, self.runner
        if state is None or runner is None:
            return
        picked: list[tuple[int, str]] = []
        for i, text in enumerate(item.texts):
            p, version = item.probabilities[i], item.versions[i]
            if p is None or not version or version == state.version:
                continue  # a failed row, or production is the candidate already
            digest = text_sha256(text)
            if sampled(digest, state.sample):
                picked.append((i, digest))
        if not picked:
            return
        self.sampled += len(picked)
        predictions = runner.predict([item.texts[i] for i, _ in picked])
        at = datetime.now(UTC)
        rows = []
        for (i, digest), pred in zip(picked, predictions, strict=True):
            p = float(item.probabilities[i])  # type: ignore[arg-type]
            label = item.labels[i] or ("spam" if p >= 0.5 else "ham")
            rows.append({
                "at": at, "source": item.source, "text_sha256": digest,
                "production_version": str(item.versions[i]), "production_probability": p,
                "production_label": str(label), "candidate_version": state.version,
                "candidate_probability": float(pred.spam_probability),
                "candidate_label": pred.label})
        self.scored += len(rows)
        self.writer.add(rows)

    def _flush(self) -> None:
        try:
            self.writer.flush()
        except Exception:  # noqa: BLE001 - logged; the rows stay buffered
            logger.exception("shadow: flush failed")
