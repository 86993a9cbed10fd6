"""Every Redis connection spamq makes starts here: the job store's client (API, workers,
sweeper, webhook deliverer, CLI) and Celery's broker (API, workers, Flower).

With ``redis_sentinels`` unset, both come from ``redis_url`` as before. With it set
(``SPAMQ_REDIS_SENTINELS=h1:26379,h2:26379,h3:26379``, ``SPAMQ_REDIS_MASTER=mymaster``), the
sentinels are asked for the current master on every (re)connect, so after a failover each
client finds the promoted replica by itself; ``redis_url`` then gives only the password,
username and db number. Creating a client connects to nothing.

During a failover the master is unreachable for sentinel's ``down-after-milliseconds`` plus
the election (about 2-4 s at ``down-after-milliseconds 1000``). A Sentinel-backed client
retries a failed command for up to about :data:`FAILOVER_RETRY_S` seconds (reconnecting
through the sentinels each time) instead of the plain client's ~2 s, and the API's Celery
publish retries as long, so a request in flight rides the failover out.

Replication is asynchronous: a write the old master acknowledged in its last moments may
not have reached the replica. What that costs, and how the job recovers:
- a chunk's results, a split's commit, a lease, a broker message: the chunk is sent but has
  no results, no lease and no message, so the sweeper re-sends it after ``lost_after_s``;
  results are stored once (HSETNX in one Lua script) and a split rewrites its own part file,
  so a copy that also ran writes nothing twice;
- a job's end (written by the same script as its last chunk's results): lost with them, and
  written again when that chunk is re-scored;
- the webhook outbox: a lost end event leaves its job watched, so the deliverer enqueues it
  again under the same id (derived from the job); a lost delivery record sends the event
  again (delivery is at least once; receivers dedupe by ``webhook-id``);
- a job accepted in that moment (its 202 sent): unknown after the failover (404); submit it
  again with the same Idempotency-Key (``spamq score`` does so by itself);
- scripts: the promoted replica may not hold them; a NOSCRIPT loads them and runs again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import redis
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from spamq.settings import Settings

#: how long a command keeps retrying through the sentinels while no master answers
FAILOVER_RETRY_S = 12.0
_BACKOFF_BASE_S, _BACKOFF_CAP_S = 0.05, 0.5
T = TypeVar("T")


def sentinel_addresses(settings: Settings) -> list[tuple[str, int]]:
    """``redis_sentinels`` as (host, port) pairs; empty when Sentinel is not used."""
    pairs = []
    for item in filter(None, (s.strip() for s in settings.redis_sentinels.split(","))):
        host, _, port = item.rpartition(":")
        pairs.append((host, int(port)))
    return pairs


class FailoverRetry(Retry):
    """Retries a command that failed on a connection error, with exponential backoff from
    50 ms capped at 0.5 s, for at most ``seconds`` of wall time: a bound in time, not in
    tries, so a partition (each try waiting out a connect timeout) fails as soon as a
    failover would (a 503 from the API) instead of tries x timeout later."""

    def __init__(self, seconds: float = FAILOVER_RETRY_S) -> None:
        super().__init__(ExponentialBackoff(cap=_BACKOFF_CAP_S, base=_BACKOFF_BASE_S),
                         retries=int(seconds / _BACKOFF_BASE_S))  # an upper bound, for show
        self.seconds = seconds

    def call_with_retry(self, do: Callable[[], T], fail: Callable[..., Any],
                        is_retryable: Callable[[Exception], bool] | None = None,
                        with_failure_count: bool = False) -> T:
        deadline = time.monotonic() + self.seconds
        failures = 0
        while True:
            try:
                return do()
            except self._supported_errors as error:
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                delay = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** (failures - 1))
                if (is_retryable is not None and not is_retryable(error)) or \
                        time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)


def failover_retry() -> Retry:
    return FailoverRetry()


class FollowMasterConnection(SentinelManagedConnection):
    """A connection to the Sentinel-named master that asks the sentinels again on every
    connect. redis-py's own reconnects a broken connection, inside a command's retries, at
    the address of its last connect (the dead master's: redis-py 8 calls
    ``connect_check_health`` there, not the sentinel-aware ``connect``), so a retried command
    never reached the promoted replica. The socket connect itself is not retried here: the
    command's :class:`FailoverRetry` is the one loop, bounded in time."""

    def connect_check_health(self, check_health: bool = True,
                             retry_socket_connect: bool = True) -> None:
        if not self._sock and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(check_health=check_health, retry_socket_connect=False)


def redis_client(settings: Settings) -> redis.Redis:
    """A client of the settings' Redis: the Sentinel-discovered master, or ``redis_url``."""
    timeouts: dict[str, Any] = {"socket_timeout": settings.redis_timeout_s,
                                "socket_connect_timeout": settings.redis_timeout_s}
    sentinels = sentinel_addresses(settings)
    if not sentinels:
        return redis.Redis.from_url(settings.redis_url, **timeouts)
    url = parse_url(settings.redis_url)
    auth = {k: url[k] for k in ("username", "password") if k in url}
    manager = Sentinel(sentinels, sentinel_kwargs=dict(timeouts), **timeouts)
    return manager.master_for(settings.redis_master, redis_class=redis.Redis,
                              connection_class=FollowMasterConnection,
                              db=url.get("db", 0), retry=failover_retry(), **auth)


def celery_broker_settings(settings: Settings) -> dict[str, Any]:
    """Celery configuration naming the broker: ``broker_url``, and with Sentinel the
    ``sentinel://`` URLs, ``master_name`` and a publish retry that outlasts a failover
    (:func:`spamq.jobs.queue.make_celery` also loads spamq/jobs/sentinel_broker.py, which
    serves the ``sentinel`` scheme).
    Merge into ``app.conf`` after the rest (``broker_transport_options`` is complete here).

    spamq keeps no Celery results (``task_ignore_result``; results live in the job store),
    so there is no result backend to point at the sentinels.
    """
    timeouts = {"socket_timeout": settings.redis_timeout_s,
                "socket_connect_timeout": settings.redis_timeout_s}
    options: dict[str, Any] = {
        "visibility_timeout": settings.broker_visibility_timeout_s,
        # Workers poll their queues in the order given (interactive first), not round robin.
        "queue_order_strategy": "priority",
        # BRPOP timeout: a queue the bulk gate re-adds is polled within 0.1 s, not 1 s.
        "polling_interval": 0.1,
        **timeouts,
    }
    sentinels = sentinel_addresses(settings)
    if not sentinels:
        return {"broker_url": settings.redis_url, "broker_transport_options": options,
                # A publish while Redis is down fails fast instead of hanging the request.
                "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0.1,
                                              "interval_step": 0.2}}
    url = parse_url(settings.redis_url)
    auth = ""
    if "password" in url:
        auth = f"{quote(url.get('username', ''), safe='')}:{quote(url['password'], safe='')}@"
    db = url.get("db", 0)
    broker = ";".join(f"sentinel://{auth}{host}:{port}/{db}" for host, port in sentinels)
    options.update(master_name=settings.redis_master, sentinel_kwargs=dict(timeouts))
    return {"broker_url": broker, "broker_transport_options": options,
            # a publish waits out a failover (~FAILOVER_RETRY_S), then fails with a 503
            "task_publish_retry_policy": {"max_retries": 24, "interval_start": 0.1,
                                          "interval_step": 0.2, "interval_max": 0.5}}
