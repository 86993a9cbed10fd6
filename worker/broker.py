"""The worker's Redis broker transport: a Redis restart with tasks in flight is a connection
loss, not the end of the worker.

kombu 5.7 on Redis: when the broker connection breaks while acked-late messages are still
unacknowledged, Celery first ``collect()``s the connection, which detaches the transport from
its client; closing the old channel, or rejecting/acking one of its messages afterwards,
then builds a Redis pool from that missing client and raises ``AttributeError`` (in
``Channel._connparams``). Celery expects only connection errors there, so the
AttributeError became an "Unrecoverable error" and the worker exited: the Redis SIGKILL
fault test lost its worker that way in CI and in one run of four here.

This channel raises a Redis ``ConnectionError`` instead, which Celery already handles: the
teardown goes on and the consumer reconnects. Nothing is lost: those messages stay in Redis's
unacked index and the transport restores them after the visibility timeout (and the stall
sweeper re-sends any chunk still missing).

With Redis Sentinel (``SPAMQ_REDIS_SENTINELS``) every process, the worker included, uses
spamq/jobs/sentinel_broker.py: the same fix over kombu's Sentinel channel.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection was already closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel

