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
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import redis
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from spamq.settings import Settings

#: how long a command keeps retrying through the sentinels while no master answers
FAILOVER_RETRY_S = 12.0
_BACKOFF_BASE_S, _BACKOFF_CAP_S = 0.05, 0.5


def sentinel_addresses(settings: Settings) -> list[tuple[str, int]]:
    """``redis_sentinels`` as (host, port) pairs; empty when Sentinel is not used."""
    pairs = []
    for item in filter(None, (s.strip() for s in settings.redis_sentinels.split(","))):
        host, _, port = item.rpartition(":")
        pairs.append((host, int(port)))
    return pairs


def _failover_retry() -> Retry:
    """Exponential backoff from 50 ms, capped at 0.5 s, for about FAILOVER_RETRY_S in all."""
    waited, delay, retries = 0.0, _BACKOFF_BASE_S, 0
    while waited < FAILOVER_RETRY_S:
        waited += delay
        delay = min(delay * 2, _BACKOFF_CAP_S)
        retries += 1
    return Retry(ExponentialBackoff(cap=_BACKOFF_CAP_S, base=_BACKOFF_BASE_S), retries)


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
                              db=url.get("db", 0), retry=_failover_retry(), **auth)


def celery_broker_settings(settings: Settings) -> dict[str, Any]:
    """Celery configuration naming the broker: ``broker_url``, and with Sentinel the
    ``sentinel://`` URLs, ``master_name`` and a publish retry that outlasts a failover.
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
