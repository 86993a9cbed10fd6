"""The workers as Redis sees them: their heartbeats and dynamic-batching counters."""

from __future__ import annotations

import json
from typing import Any

from spamq.jobs.part import RedisPart, text
from spamq.jobs.schema import BATCH_STATS_PREFIX, WORKER_PREFIX


class Workers(RedisPart):
    """Heartbeats (each visible while its TTL runs) and batch stats, per worker name."""

    def beat(self, worker: str, info: dict[str, Any], *, ttl_s: int) -> None:
        """A worker's heartbeat: ``info`` stays visible for ``ttl_s`` seconds."""
        self._r.set(WORKER_PREFIX + worker, json.dumps(info), ex=ttl_s)

    def forget(self, worker: str) -> None:
        """The worker stopped: its heartbeat goes at once."""
        self._r.delete(WORKER_PREFIX + worker)

    def heartbeats(self) -> list[dict[str, Any]]:
        """Heartbeats of the workers alive now."""
        keys = sorted(self._r.scan_iter(match=WORKER_PREFIX + "*", count=100))
        values = self._r.mget(keys) if keys else []
        return [json.loads(v) for v in values if v is not None]

    def live(self) -> set[str]:
        """Names of the workers whose heartbeat has not lapsed."""
        return {text(k)[len(WORKER_PREFIX):]
                for k in self._r.scan_iter(match=WORKER_PREFIX + "*", count=100)}

    def set_batch_stats(self, worker: str, stats: dict[str, Any], *, ttl_s: int) -> None:
        """A worker's dynamic-batching counters (forward passes, rows per pass)."""
        self._r.set(BATCH_STATS_PREFIX + worker, json.dumps(stats), ex=ttl_s)

    def batch_stats(self) -> dict[str, dict[str, Any]]:
        keys = sorted(self._r.scan_iter(match=BATCH_STATS_PREFIX + "*", count=100))
        values = self._r.mget(keys) if keys else []
        return {
            text(k)[len(BATCH_STATS_PREFIX):]: json.loads(v)
            for k, v in zip(keys, values, strict=True) if v is not None
        }
