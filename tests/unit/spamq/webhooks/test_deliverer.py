"""The deliverer with a fake transport on fakeredis: outcomes, signing, the guard at delivery,
metrics."""

from __future__ import annotations

import json
import threading
import time

import fakeredis
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from spamq.secrets.sources import EnvSecretSource
from spamq.settings import Settings
from spamq.webhooks.deliverer import Deliverer
from spamq.webhooks.metrics import WebhookCollector
from spamq.webhooks.request import Webhook
from spamq.webhooks.secrets import WebhookSecrets
from spamq.webhooks.signing import verify
from tests.helpers.webhooks import JOB, VIEW, Clock

KID = "0123456789abcdef"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver:
    """A transport: answers ``statuses`` in turn (an exception is raised)."""

    def __init__(self, *statuses):
        self.statuses, self.calls = list(statuses), []

    def __call__(self, target, headers, body, *, timeout_s, max_response_bytes):
        self.calls.append((target, headers, body))
        status = self.statuses.pop(0)
        if isinstance(status, Exception):
            raise status
        return status


def make(*statuses, resolve=("93.184.216.34",), **settings):
    s = Settings(webhook_max_attempts=3, webhook_backoff_base_s=10, webhook_backoff_max_s=100,
                 webhook_secrets=json.dumps({KID: {"current": SECRET}}), **settings)
    clock, receiver = Clock(), Receiver(*statuses)
    addresses = list(resolve)
    deliverer = Deliverer(fakeredis.FakeRedis(), s, WebhookSecrets(EnvSecretSource(s)),
                          transport=receiver, resolver=lambda host, port: addresses,
                          clock=clock, rng=lambda: 0.5)
    deliverer.outbox.subscribe(JOB, Webhook("https://hooks.example.com/in?t=1",
                                            ("job.completed",)), KID)
    event_id = deliverer.outbox.notify(JOB, "job.completed", VIEW)
    return deliverer, receiver, clock, event_id, addresses


def run_until_idle(deliverer, clock, steps=10):
    for _ in range(steps):
        if not deliverer.run_once():
            clock.now += 1000  # past any backoff
            if not deliverer.run_once():
                return


def test_signed_request_to_the_checked_address():
    deliverer, receiver, clock, event_id, _ = make(204)
    assert deliverer.run_once() == 1
    [(target, headers, body)] = receiver.calls
    assert (target.host, target.addresses, target.path) == (
        "hooks.example.com", ("93.184.216.34",), "/in?t=1")
    assert headers["webhook-id"] == event_id
    assert headers["webhook-timestamp"] == str(int(clock.now))
    assert verify(SECRET, headers, body, now=clock.now)
    [a] = deliverer.outbox.attempts(JOB)
    assert (a["attempt"], a["status"], a["outcome"], a["error"]) == (1, 204, "delivered", None)


def test_5xx_and_errors_retry_with_the_same_id_then_deliver():
    deliverer, receiver, clock, event_id, _ = make(500, ConnectionRefusedError(), 200)
    run_until_idle(deliverer, clock)
    assert [h["webhook-id"] for _, h, _ in receiver.calls] == [event_id] * 3
    assert len({b for _, _, b in receiver.calls}) == 1  # the same body every time
    rows = deliverer.outbox.attempts(JOB)
    assert [(r["attempt"], r["status"], r["error"], r["outcome"]) for r in rows] == [
        (1, 500, None, "retry"), (2, None, "connection failed", "retry"),
        (3, 200, None, "delivered")]
    assert rows[0]["next_at"] - rows[0]["at"] == pytest.approx(5.0, abs=0.01)  # 0.5 * 10
    assert rows[1]["next_at"] - rows[1]["at"] == pytest.approx(10.0, abs=0.01)  # 0.5 * 20


def test_redirects_are_failures_and_the_last_one_is_dead():
    deliverer, receiver, clock, event_id, _ = make(302, 301, 307)
    run_until_idle(deliverer, clock)
    assert len(receiver.calls) == 3
    assert [r["outcome"] for r in deliverer.outbox.attempts(JOB)] == ["retry", "retry", "dead"]
    assert [d["id"] for d in deliverer.outbox.dead()] == [event_id]
    assert deliverer.outbox.stats() == {"delivered": 0, "retry": 2, "gone": 0, "dead": 1}


def test_410_stops_at_once():
    deliverer, receiver, clock, _, _ = make(410)
    run_until_idle(deliverer, clock)
    assert [(r["status"], r["outcome"]) for r in deliverer.outbox.attempts(JOB)] == [
        (410, "gone")]
    assert deliverer.outbox.notify(JOB, "job.completed", VIEW) is None


def test_dns_rebinding_is_caught_at_delivery():
    """The name resolved to a public address at submission; now it points at the metadata
    service: the attempt fails without a connection."""
    deliverer, receiver, clock, _, addresses = make(200)
    addresses[:] = ["169.254.169.254"]
    deliverer.run_once()
    assert receiver.calls == []
    [a] = deliverer.outbox.attempts(JOB)
    assert (a["error"], a["outcome"]) == ("url refused", "retry")


def test_no_secret_no_delivery():
    deliverer, receiver, clock, _, _ = make(200)
    deliverer._secrets = WebhookSecrets(EnvSecretSource(Settings()))
    deliverer.run_once()
    assert receiver.calls == [] and deliverer.outbox.attempts(JOB)[0]["error"] == (
        "no signing secret")


def test_nothing_about_the_url_query_or_body_is_logged(caplog):
    deliverer, _, clock, event_id, _ = make(500, 200)
    with caplog.at_level("INFO"):
        run_until_idle(deliverer, clock)
    text = caplog.text
    assert event_id in text and "https://hooks.example.com:443" in text
    assert "t=1" not in text and "/in" not in text and "results_url" not in text


def test_metrics_from_redis():
    deliverer, _, clock, _, _ = make(500, 200)
    deliverer.run_once()
    clock.now += 2
    registry = CollectorRegistry()
    registry.register(WebhookCollector(deliverer.outbox))
    text = generate_latest(registry).decode()
    assert 'spamq_webhook_deliveries_total{outcome="retry"} 1.0' in text
    assert 'spamq_webhook_deliveries_total{outcome="delivered"} 0.0' in text
    assert "spamq_webhook_oldest_undelivered_age_seconds 2.0" in text
    assert "spamq_webhook_dead_letters 0.0" in text


@pytest.mark.parametrize(("failure", "error"), [
    (ConnectionRefusedError(111, "refused"), "connection failed"),
    (ConnectionResetError(104, "reset"), "connection failed"),
    (TimeoutError("no complete answer"), "timeout"),
    (__import__("http.client").client.BadStatusLine("SSH-2.0"), "connection failed"),
])
def test_attempt_records_are_coarse_no_port_probe(failure, error):
    """What the client reads says "connection failed" or "timeout": no exception class that
    tells a closed port from a non-HTTP service, and no duration for an unanswered attempt."""
    deliverer, _, clock, _, _ = make(failure, 503)
    run_until_idle(deliverer, clock)
    first, second = deliverer.outbox.attempts(JOB)
    assert (first["status"], first["error"], first["duration_ms"]) == (None, error, None)
    assert (second["status"], second["error"]) == (503, None)
    assert isinstance(second["duration_ms"], int)  # an answer's time, whole milliseconds
    assert type(failure).__name__ not in json.dumps([first, second])


class Tarpit:
    """A transport: key A's receiver accepts and never answers (until ``release``); the others
    answer 200 at once. Counts A's attempts in flight."""

    def __init__(self):
        self.release, self.lock = threading.Event(), threading.Lock()
        self.a_now = self.a_most = 0
        self.delivered: dict[str, float] = {}

    def __call__(self, target, headers, body, *, timeout_s, max_response_bytes):
        if target.path.startswith("/a"):
            with self.lock:
                self.a_now += 1
                self.a_most = max(self.a_most, self.a_now)
            self.release.wait(10)
            with self.lock:
                self.a_now -= 1
            return 200
        self.delivered[headers["webhook-id"]] = time.monotonic()
        return 200


def test_a_silent_receiver_of_one_key_does_not_hold_another_keys_events():
    kid_b = "fedcba9876543210"
    s = Settings(webhook_secrets=json.dumps({KID: {"current": SECRET},
                                             kid_b: {"current": SECRET}}),
                 webhook_concurrency=8, webhook_key_concurrency=2, webhook_poll_s=0.05,
                 webhook_timeout_s=10, webhook_lease_s=30)
    tarpit = Tarpit()
    deliverer = Deliverer(fakeredis.FakeRedis(), s, WebhookSecrets(EnvSecretSource(s)),
                          transport=tarpit, resolver=lambda host, port: ["93.184.216.34"])
    outbox = deliverer.outbox
    for i in range(40):  # key A's 40 jobs, first in the queue
        job = f"{i:032x}"
        outbox.subscribe(job, Webhook("https://a.example/a", ("job.completed",)), KID)
        outbox.notify(job, "job.completed", {**VIEW, "id": job})
    stop = threading.Event()
    runner = threading.Thread(target=deliverer.run_forever, args=(stop,))
    runner.start()
    try:
        time.sleep(0.3)  # A's receiver now holds A's slots
        waits = []
        for i in range(5):
            job = f"b{i:031x}"
            outbox.subscribe(job, Webhook("https://b.example/b", ("job.completed",)), kid_b)
            sent = time.monotonic()
            event_id = outbox.notify(job, "job.completed", {**VIEW, "id": job})
            deadline = sent + 5
            while event_id not in tarpit.delivered and time.monotonic() < deadline:
                time.sleep(0.01)
            assert event_id in tarpit.delivered, "key B's event waited on key A's receiver"
            waits.append(tarpit.delivered[event_id] - sent)
        assert max(waits) < 1.0, waits
        assert tarpit.a_most == 2  # A's share of the slots, never more
    finally:
        tarpit.release.set()
        stop.set()
        runner.join(15)
    assert not runner.is_alive()
