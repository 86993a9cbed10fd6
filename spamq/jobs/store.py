"""The Redis job store: one client and TTL, and the store's parts, one per concern.

- ``jobs`` (:class:`Jobs`, records.py): a job's record, its reservations, its life;
- ``leases`` (:class:`Leases`, leases.py): chunk leases, the sweeper's turn, the fair bulk
  window (parked jobs, refill, admission), resuming;
- ``results`` (:class:`Results`, results.py): claims of texts, results stored once, waits;
- ``workers`` (:class:`Workers`, workers.py): heartbeats and batch stats.

Keys, statuses and the Lua scripts are defined in spamq/jobs/schema.py; what the parts hand
out (Job, Chunk, Claim, Load) in model.py. Store jobs (files of the artifact store) add their
own records on the same keys (store_jobs.py).
"""

from __future__ import annotations

import redis

from spamq.jobs.leases import Leases
from spamq.jobs.model import (
    Chunk,
    Claim,
    DuplicateJob,
    Job,
    Load,
    OutputTaken,
    chunk_plan,
)
from spamq.jobs.records import Jobs
from spamq.jobs.results import Results
from spamq.jobs.schema import JobNotFound
from spamq.jobs.workers import Workers
from spamq.redis_client import redis_client
from spamq.settings import Settings

__all__ = ["Chunk", "Claim", "DuplicateJob", "Job", "JobNotFound", "JobStore", "Load",
           "OutputTaken", "chunk_plan"]


class JobStore:
    """Jobs in Redis. The client is handed in; nothing connects until a method is called."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self._r = client
        self.ttl_s = ttl_s
        self.jobs = Jobs(client, ttl_s=ttl_s)
        self.leases = Leases(client, self.jobs, ttl_s=ttl_s)
        self.results = Results(client, ttl_s=ttl_s)
        self.workers = Workers(client, ttl_s=ttl_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> JobStore:
        """The store on the settings' Redis (or Sentinel master), with their timeouts. Connects
        to nothing yet."""
        return cls(redis_client(settings), ttl_s=settings.job_ttl_s)

    @property
    def redis(self) -> redis.Redis:
        """The client: the broker's queues live in the same Redis (see api/metrics.py)."""
        return self._r
