"""Celery's broker over Redis Sentinel, for every process that talks to it (API, workers,
Flower): kombu's Sentinel transport, with three changes. Importing this module makes it
the transport of ``sentinel://`` URLs (:func:`spamq.jobs.queue.make_celery` does so when
``redis_sentinels`` is set); the URL keeps its scheme, so Flower's queue view knows it.

- Every (re)connect asks the sentinels for the master (:class:`FollowMasterConnection`); a
  new channel, and a publish, keep asking for about a failover's length
  (:func:`failover_retry`): a worker's consumer is back as soon as the replica is promoted,
  not at Celery's next reconnect (2 s, then 4 s, 6 s... later), and a retried publish
  reaches the new master. The event loop's commands do not retry (see ``_connparams``).
- A channel whose connection was closed already raises a Redis ``ConnectionError``, which
  Celery recovers from, instead of kombu 5.7's ``AttributeError`` (see worker/broker.py).
- kombu resolves the ``sentinel`` scheme through its alias table, also when it switches to
  the next sentinel after a connection error: the alias points here.
"""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from spamq.redis_client import FollowMasterConnection, failover_retry

NAME = "spamq.jobs.sentinel_broker:SentinelTransport"


class SentinelChannel(kombu_redis.SentinelChannel):
    connection_class = FollowMasterConnection

    def _connparams(self, asynchronous: bool = False) -> dict:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection was already closed")
        params = super()._connparams(asynchronous=asynchronous)
        # The event loop's client (BRPOP, the fanout SUBSCRIBE, the channel's first PING) must
        # fail at once: a command retried on a new socket (the promoted master's) is read from
        # a socket the poller does not watch, and a SUBSCRIBE read retried that way blocked the
        # worker's event loop for good. Its error restarts the consumer, whose new channel
        # waits for the master (SentinelTransport.create_channel). Publishing waits itself.
        params["retry"] = Retry(NoBackoff(), 0) if asynchronous else failover_retry()
        return params


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel

    def create_channel(self, connection: object) -> SentinelChannel:
        """A channel, once a master answers its PING: during a failover, the promoted
        replica (for up to about FAILOVER_RETRY_S)."""
        def create() -> SentinelChannel:
            return super(SentinelTransport, self).create_channel(connection)

        return failover_retry().call_with_retry(create, lambda _error: None)


TRANSPORT_ALIASES["sentinel"] = NAME
