"""The worker's broker transport turns kombu's teardown AttributeError into a connection error."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kombu.transport import redis as kombu_redis

from worker.broker import Channel, Transport


@pytest.mark.parametrize("connection", [SimpleNamespace(client=None), None])
def test_a_channel_whose_connection_was_collected_raises_a_connection_error(connection):
    channel = object.__new__(Channel)
    channel.connection = connection  # what Connection.collect() leaves; None: channel closed
    with pytest.raises(Transport.connection_errors) as caught:
        channel._connparams()
    assert not isinstance(caught.value, AttributeError)
    assert "already closed" in str(caught.value)


def test_the_stock_channel_raises_the_attribute_error_we_guard_against():
    channel = object.__new__(kombu_redis.Channel)
    channel.connection = SimpleNamespace(client=None)
    with pytest.raises(AttributeError):  # if kombu fixes this, worker/broker.py can go
        channel._connparams()


def test_the_worker_app_uses_it():
    from worker.celery_app import app

    assert app.connection_for_write().get_transport_cls() is Transport
