"""spamq.redis_client: the one place a Redis client and Celery's broker URL are built."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import redis
from pydantic import ValidationError
from redis.sentinel import SentinelConnectionPool

from spamq.jobs.queue import make_celery
from spamq.jobs.store import JobStore
from spamq.redis_client import (
    FAILOVER_RETRY_S,
    FailoverRetry,
    FollowMasterConnection,
    celery_broker_settings,
    redis_client,
    sentinel_addresses,
)
from spamq.settings import Settings

SENTINELS = "10.0.0.1:26379,sentinel-b:26380,10.0.0.3:26381"


def sentinel_settings(**kw) -> Settings:
    return Settings(redis_sentinels=SENTINELS, redis_master="spamq-main",
                    redis_url="redis://:s3cr%40t@ignored:6379/3", redis_timeout_s=1.5, **kw)


def test_a_plain_url_gives_a_plain_client_and_broker_unchanged():
    s = Settings(redis_url="redis://127.0.0.1:6390/2", redis_timeout_s=1.5)
    client = redis_client(s)
    assert not isinstance(client.connection_pool, SentinelConnectionPool)
    kw = client.connection_pool.connection_kwargs
    assert (kw["host"], kw["port"], kw["db"], kw["socket_timeout"]) == ("127.0.0.1", 6390, 2, 1.5)
    conf = celery_broker_settings(s)
    assert conf["broker_url"] == "redis://127.0.0.1:6390/2"
    assert "master_name" not in conf["broker_transport_options"]
    assert conf["task_publish_retry_policy"]["max_retries"] == 2
    app = make_celery(s)
    assert app.conf.broker_url == "redis://127.0.0.1:6390/2"
    assert app.conf.broker_transport_options["queue_order_strategy"] == "priority"


def test_sentinel_settings_give_a_sentinel_backed_client_of_the_named_master():
    s = sentinel_settings()
    assert sentinel_addresses(s) == [("10.0.0.1", 26379), ("sentinel-b", 26380),
                                     ("10.0.0.3", 26381)]
    client = redis_client(s)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "spamq-main" and pool.is_master
    known = [c.connection_pool.connection_kwargs for c in pool.sentinel_manager.sentinels]
    assert [(k["host"], k["port"]) for k in known] == sentinel_addresses(s)
    kw = pool.connection_kwargs
    assert (kw["db"], kw["password"], kw["socket_timeout"]) == (3, "s3cr@t", 1.5)
    # a command keeps retrying through the sentinels for a failover's length, bounded in time
    assert isinstance(kw["retry"], FailoverRetry) and kw["retry"].seconds == FAILOVER_RETRY_S
    assert pool.connection_class is FollowMasterConnection
    # the job store (API, workers, sweeper, deliverer) takes the same client
    assert isinstance(JobStore.from_settings(s).redis.connection_pool, SentinelConnectionPool)


def test_sentinel_settings_give_celery_sentinel_broker_urls_and_the_master_name():
    s = sentinel_settings()
    conf = celery_broker_settings(s)
    assert conf["broker_url"] == ("sentinel://:s3cr%40t@10.0.0.1:26379/3;"
                                  "sentinel://:s3cr%40t@sentinel-b:26380/3;"
                                  "sentinel://:s3cr%40t@10.0.0.3:26381/3")
    options = conf["broker_transport_options"]
    assert options["master_name"] == "spamq-main"
    assert options["sentinel_kwargs"] == {"socket_timeout": 1.5, "socket_connect_timeout": 1.5}
    assert options["visibility_timeout"] == s.broker_visibility_timeout_s
    assert conf["task_publish_retry_policy"]["max_retries"] > 2
    app = make_celery(s)  # Flower's app and the API's are this one
    assert app.conf.broker_url == conf["broker_url"]
    assert app.conf.broker_transport_options["master_name"] == "spamq-main"
    with app.connection_for_write() as conn:  # kombu reads all three sentinels, connects to none
        assert conn.transport_cls == "sentinel"
        assert [u.split("@")[1] for u in conn.alt] == ["10.0.0.1:26379/3", "sentinel-b:26380/3",
                                                        "10.0.0.3:26381/3"]
        assert conn.transport_options["master_name"] == "spamq-main"


def test_every_celery_app_on_sentinel_uses_the_transport_that_follows_the_master():
    from kombu.transport import TRANSPORT_ALIASES, resolve_transport

    from spamq.jobs.sentinel_broker import SentinelChannel, SentinelTransport

    app = make_celery(sentinel_settings())  # the API's, Flower's and the worker's
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, SentinelTransport)
        assert conn.as_uri().startswith("sentinel://")  # Flower's queue view knows the scheme
    assert SentinelTransport.Channel is SentinelChannel
    assert SentinelChannel.connection_class is FollowMasterConnection
    # kombu re-resolves "sentinel" when it switches to the next sentinel: still ours
    assert TRANSPORT_ALIASES["sentinel"] == "spamq.jobs.sentinel_broker:SentinelTransport"
    assert resolve_transport("sentinel") is SentinelTransport


@pytest.mark.parametrize("connection", [None, SimpleNamespace(client=None)])
def test_a_closed_sentinel_channel_raises_a_connection_error(connection):
    from spamq.jobs.sentinel_broker import SentinelChannel, SentinelTransport

    channel = object.__new__(SentinelChannel)
    channel.connection = connection  # closed (None) or collected (client None)
    with pytest.raises(SentinelTransport.connection_errors, match="already closed"):
        channel._connparams()


@pytest.mark.parametrize("bad", ["host", "host:port", "h:1,", "h:1;h:2", " h:1"])
def test_malformed_sentinels_are_refused_at_startup(bad):
    with pytest.raises(ValidationError, match="redis_sentinels"):
        Settings(redis_sentinels=bad)


def test_no_connection_is_made_while_building(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("connected")

    monkeypatch.setattr(redis.Connection, "connect", refuse)
    redis_client(sentinel_settings())
    redis_client(Settings())


def test_the_failover_retry_is_bounded_in_time_not_in_tries(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("spamq.redis_client.time.monotonic", lambda: clock[0])
    monkeypatch.setattr("spamq.redis_client.time.sleep",
                        lambda s: clock.__setitem__(0, clock[0] + s))
    tries, failed = [], []

    def down():
        tries.append(clock[0])
        clock[0] += 2.0  # each try waits out a connect timeout
        raise redis.ConnectionError("partitioned")

    with pytest.raises(redis.ConnectionError):
        FailoverRetry(12.0).call_with_retry(down, failed.append)
    assert clock[0] <= 12.0 + 2.5 and 4 <= len(tries) <= 7 and len(failed) == len(tries)

    clock[0], calls = 0.0, []

    def comes_back():
        calls.append(clock[0])
        if clock[0] < 3.0:
            raise redis.ConnectionError("no master yet")
        return "PONG"

    assert FailoverRetry(12.0).call_with_retry(comes_back, lambda _e: None) == "PONG"
    assert 3.0 <= calls[-1] < 3.6  # backoff capped at 0.5 s: back within half a second

    with pytest.raises(redis.ResponseError):  # not a connection error: at once
        FailoverRetry(12.0).call_with_retry(
            lambda: (_ for _ in ()).throw(redis.ResponseError("WRONGTYPE")), lambda _e: None)


def test_a_reconnect_asks_the_sentinels_for_the_master_again():
    s = sentinel_settings()
    client = redis_client(s)
    pool = client.connection_pool
    conn = pool.make_connection()
    conn.host, conn.port = "127.0.0.1", 1  # the dead master's address from the last connect
    asked = []

    def promoted():
        asked.append(True)
        raise redis.sentinel.MasterNotFoundError("no master for spamq-main")

    conn.connection_pool.get_master_address = promoted  # the pool's proxy, as redis-py asks
    with pytest.raises(redis.sentinel.MasterNotFoundError):
        conn.connect_check_health(check_health=False)
    assert asked == [True]  # not a connect to 127.0.0.1:1


def test_the_event_loops_broker_connections_fail_at_once_the_others_wait_for_a_master():
    from kombu import Connection

    from spamq.jobs.sentinel_broker import SentinelTransport

    conf = celery_broker_settings(sentinel_settings())
    with Connection(conf["broker_url"], transport_options=conf["broker_transport_options"]) as c:
        assert isinstance(c.transport, SentinelTransport)
        channel = object.__new__(SentinelTransport.Channel)
        channel.connection = c.transport
        for name in ("max_connections", "socket_timeout", "socket_connect_timeout",
                     "socket_keepalive", "socket_keepalive_options", "health_check_interval",
                     "retry_on_timeout", "client_name"):
            setattr(channel, name, getattr(SentinelTransport.Channel, name, None))
        assert isinstance(channel._connparams()["retry"], FailoverRetry)
        looped = channel._connparams(asynchronous=True)["retry"]
        assert not isinstance(looped, FailoverRetry) and looped.get_retries() == 0


def test_a_new_broker_channel_waits_for_the_promoted_master(monkeypatch):
    from kombu.transport import redis as kombu_redis

    from spamq.jobs.sentinel_broker import SentinelTransport

    tries = []

    def create_channel(self, connection):
        tries.append(connection)
        if len(tries) < 3:  # the sentinels have no master yet: the election runs
            raise redis.sentinel.MasterNotFoundError("No master found for 'mymaster'")
        return "channel"

    monkeypatch.setattr(kombu_redis.SentinelTransport, "create_channel", create_channel)
    monkeypatch.setattr("spamq.redis_client.time.sleep", lambda _s: None)
    transport = object.__new__(SentinelTransport)
    assert transport.create_channel("conn") == "channel" and tries == ["conn"] * 3
