"""Webhooks end to end: a real redis-server, a real HTTP receiver on 127.0.0.1 (allowed through
``webhook_allow_http`` + ``webhook_allow_hosts``), the deliverer in-process and as its own
process (``python -m spamq.webhooks``), SIGKILLed mid-delivery; jobs of the real JobStore whose
end the deliverer's job watch tells; the signing secret created and rotated in a real OpenBao
by ``spamq keys webhook-secret``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from api.auth import hash_key, key_id
from scripts.local_services import REPO, Process, free_port, wait_until
from spamq.cli.ops import webhooks_dead, webhooks_resend
from spamq.jobs.store import JobStore
from spamq.secrets.sources import (
    EnvSecretSource,
    VaultSecretSource,
    bootstrap_vault,
    mint_secret_id,
)
from spamq.settings import Settings
from spamq.webhooks.deliverer import Deliverer
from spamq.webhooks.outbox import Outbox
from spamq.webhooks.request import Webhook, check_webhook
from spamq.webhooks.secrets import WebhookSecrets
from spamq.webhooks.signing import new_secret, signed_headers, verify
from spamq.webhooks.urls import UrlRefused
from tests.helpers.receiver import Receiver
from tests.helpers.services import Bao

pytestmark = pytest.mark.integration

KID = "00112233445566ff"
SECRET = new_secret()


def settings(redis_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = dict(
        redis_url=redis_url, webhook_allow_http=True, webhook_allow_hosts=["127.0.0.1"],
        webhook_secrets=json.dumps({KID: {"current": SECRET}}), webhook_max_attempts=3,
        webhook_backoff_base_s=0.2, webhook_backoff_max_s=0.4, webhook_poll_s=0.02,
        webhook_timeout_s=2.0, webhook_lease_s=3.0)
    return Settings(**{**values, **extra})


def env(s: Settings) -> dict[str, str]:
    """The same settings for a deliverer process."""
    names = ("redis_url", "webhook_allow_http", "webhook_max_attempts", "webhook_backoff_base_s",
             "webhook_backoff_max_s", "webhook_poll_s", "webhook_timeout_s", "webhook_lease_s")
    out = {f"SPAMQ_{n.upper()}": str(getattr(s, n)) for n in names}
    assert s.webhook_secrets is not None
    out.update(SPAMQ_WEBHOOK_ALLOW_HOSTS=json.dumps(s.webhook_allow_hosts),
               SPAMQ_WEBHOOK_SECRETS=s.webhook_secrets.get_secret_value())
    return out


@contextmanager
def deliverer(s: Settings) -> Iterator[Deliverer]:
    d = Deliverer(Outbox.from_settings(s)._r, s, WebhookSecrets(EnvSecretSource(s)))
    stop = threading.Event()
    thread = threading.Thread(target=d.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        yield d
    finally:
        stop.set()
        thread.join(10)


def submit(outbox: Outbox, s: Settings, url: str, events: list[str]) -> str:
    """What the API does at POST /v1/jobs with a "webhook" object: the job's id."""
    job_id = uuid.uuid4().hex
    outbox.subscribe(job_id, check_webhook(Webhook(url, tuple(events)), s), KID)
    return job_id


def view(job_id: str, status: str = "done") -> dict[str, Any]:
    return {"id": job_id, "status": status, "progress": {"done": 2, "total": 2}, "rejected": 0,
            "model_version": "tiny-1", "output": None,
            "results_url": f"/v1/jobs/{job_id}/results", "results": [{"label": "ham"}] * 2}


def timeline(title: str, outbox: Outbox, job_id: str, receiver: Receiver | None = None) -> None:
    rows = outbox.attempts(job_id)
    t0 = min([rows[0]["at"]] + [r["at"] for r in (receiver.requests if receiver else [])])
    print(f"\n--- {title}: job {job_id}")
    for r in rows:
        nxt = f" next in {r['next_at'] - r['at']:.3f}s" if "next_at" in r else ""
        print(f"  attempt {r['attempt']} at +{r['at'] - t0:.3f}s {r['event_id']}: "
              f"status={r['status']} error={r['error']} {r['duration_ms'] or '-'} ms "
              f"-> {r['outcome']}{nxt}")
    for req in (receiver.requests if receiver else []):
        print(f"  receiver +{req['at'] - t0:.3f}s {req['headers']['webhook-id']} "
              f"answered {req['status']} signature valid={req['valid']}")


def test_signed_events_arrive_once_each(redis_url):
    s = settings(redis_url)
    receiver, outbox = Receiver(secret=SECRET), Outbox.from_settings(s)
    try:
        with pytest.raises(UrlRefused, match="loopback"):  # not the allowed host name
            check_webhook(Webhook(receiver.url().replace("127.0.0.1", "localhost"),
                                  ("job.completed",)), s)
        jobs = [submit(outbox, s, receiver.url(), ["job.completed", "job.failed"])
                for _ in range(4)]
        quiet = submit(outbox, s, receiver.url(), ["job.failed"])
        assert outbox.notify(quiet, "job.completed", view(quiet)) is None
        ids = {outbox.notify(j, "job.completed", view(j)): j for j in jobs}
        with deliverer(s):
            wait_until(lambda: len(receiver.processed()) == 4 and outbox.oldest_age_s() == 0,
                       timeout=15, what="4 deliveries")
        seen = receiver.processed()
        assert set(seen) == set(ids) and len(receiver.requests) == 4
        for event_id, req in seen.items():
            h = {k.lower(): v for k, v in req["headers"].items()}
            assert h["content-type"] == "application/json"
            assert h["webhook-signature"].startswith("v1,") and abs(
                int(h["webhook-timestamp"]) - time.time()) < 30
            assert req["path"] == "/hook?token=query-secret"
            body = json.loads(req["body"])
            assert body["type"] == "job.completed" and body["data"]["id"] == ids[event_id]
            assert "results" not in body["data"] and body["data"]["model_version"] == "tiny-1"
            assert [(a["attempt"], a["status"], a["outcome"]) for a in
                    outbox.attempts(ids[event_id])] == [(1, 200, "delivered")]
        req = next(iter(seen.values()))
        print("\n--- one delivery's headers")
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature", "Content-Type"):
            print(f"  {name}: {req['headers'][name]}")
        print(f"  body: {req['body'].decode()}")
        print(f"  verify(secret, headers, body) = {verify(SECRET, req['headers'], req['body'])}; "
              f"with another secret = {verify(new_secret(), req['headers'], req['body'])}")
        assert not verify(new_secret(), req["headers"], req["body"])
    finally:
        receiver.close()


def test_jobs_driven_to_their_end_are_told_once_each(redis_url):
    """The job watch, in the deliverer's loop: done, failed and cancelled jobs of the real
    JobStore each yield one end event, delivered once; a job still running yields none."""
    s = settings(redis_url)
    receiver = Receiver(secret=SECRET)
    outbox, jobs = Outbox.from_settings(s), JobStore.from_settings(s)
    hook = check_webhook(Webhook(receiver.url(), (
        "job.completed", "job.failed", "job.cancelled")), s)
    ids = []
    for _ in range(4):
        job, _ = jobs.jobs.create(["hi", "there"], chunk_size=1, queue="q", owner=KID)
        outbox.subscribe(job.id, hook, KID)
        ids.append(job.id)
    done, failed, cancelled, running = ids
    result = {"label": "ham", "spam_probability": 0.1, "truncated": False,
              "model_version": "tiny-1"}
    try:
        with deliverer(s):
            for job_id in (done, running):
                jobs.results.store_chunk_next(job_id, 0, [result], model_version="tiny-1")
            jobs.results.store_chunk_next(done, 1, [result], model_version="tiny-1")
            jobs.jobs.fail(failed, "the model broke")
            jobs.jobs.cancel(cancelled)
            wait_until(lambda: len(receiver.processed()) == 3 and outbox.oldest_age_s() == 0,
                       timeout=15, what="3 end events")
            time.sleep(3 * s.webhook_poll_s + 0.2)  # more polls: nothing more is sent
        bodies = {json.loads(r["body"])["data"]["id"]: json.loads(r["body"])
                  for r in receiver.processed().values()}
        assert len(receiver.requests) == 3 and set(bodies) == {done, failed, cancelled}
        assert {j: b["type"] for j, b in bodies.items()} == {
            done: "job.completed", failed: "job.failed", cancelled: "job.cancelled"}
        assert bodies[done]["data"]["progress"] == {"done": 2, "total": 2}
        assert bodies[failed]["data"]["error"] == "the model broke"
        assert all(outbox.attempts(j)[0]["outcome"] == "delivered" for j in bodies)
        assert outbox.attempts(running) == []
    finally:
        receiver.close()


def test_two_500s_then_200_is_three_attempts_one_delivery(redis_url):
    s = settings(redis_url)
    receiver = Receiver(secret=SECRET, script=[(500, 0.0), (500, 0.0)])
    outbox = Outbox.from_settings(s)
    try:
        job = submit(outbox, s, receiver.url(), ["job.completed"])
        event_id = outbox.notify(job, "job.completed", view(job))
        with deliverer(s):
            wait_until(lambda: bool(receiver.processed()), timeout=15, what="the delivery")
        assert [r["headers"]["webhook-id"] for r in receiver.requests] == [event_id] * 3
        assert len({r["body"] for r in receiver.requests}) == 1
        assert all(r["valid"] for r in receiver.requests)
        assert list(receiver.processed()) == [event_id]
        rows = outbox.attempts(job)
        assert [(r["attempt"], r["status"], r["outcome"]) for r in rows] == [
            (1, 500, "retry"), (2, 500, "retry"), (3, 200, "delivered")]
        for r, cap in zip(rows, (0.2, 0.4), strict=False):  # full jitter: [0, cap)
            # next_at counts from the attempt's end, at from its start: the attempt between
            assert 0 <= r["next_at"] - r["at"] <= cap + r["duration_ms"] / 1000 + 0.01
        gaps = [b["at"] - a["at"] for a, b in zip(receiver.requests, receiver.requests[1:],
                                                  strict=False)]
        assert all(g <= cap + 0.5 for g, cap in zip(gaps, (0.2, 0.4), strict=True)), gaps
        timeline("500, 500, 200", outbox, job, receiver)
    finally:
        receiver.close()


def test_receiver_down_dead_letter_then_resend(redis_url, capsys):
    s = settings(redis_url)
    port, outbox = free_port(), Outbox.from_settings(s)
    job = submit(outbox, s, f"http://127.0.0.1:{port}/hook?token=query-secret", ["job.failed"])
    event_id = outbox.notify(job, "job.failed", view(job, "failed"))
    with deliverer(s):
        wait_until(lambda: event_id in {d["id"] for d in outbox.dead()}, timeout=15,
                   what="the dead letter")
        rows = outbox.attempts(job)
        assert [(r["attempt"], r["error"], r["outcome"]) for r in rows] == [
            (1, "connection failed", "retry"), (2, "connection failed", "retry"),
            (3, "connection failed", "dead")]
        assert outbox.oldest_age_s() == 0
        ops = argparse.Namespace(settings=s, limit=100)
        assert webhooks_dead(ops) == 0
        listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert {"id": event_id, "job_id": job, "type": "job.failed", "attempts": 3}.items() <= (
            next(d for d in listed if d["id"] == event_id).items())

        receiver = Receiver(secret=SECRET, port=port)  # the receiver is back
        try:
            assert webhooks_resend(argparse.Namespace(settings=s, event_id=event_id)) == 0
            assert webhooks_resend(argparse.Namespace(settings=s, event_id=event_id)) == 1
            wait_until(lambda: bool(receiver.processed()), timeout=15, what="the resent delivery")
        finally:
            receiver.close()
    assert list(receiver.processed()) == [event_id]
    assert json.loads(receiver.requests[0]["body"])["type"] == "job.failed"
    assert [(r["attempt"], r["outcome"]) for r in outbox.attempts(job)][-1] == (4, "delivered")
    assert event_id not in {d["id"] for d in outbox.dead()}
    with capsys.disabled():
        timeline("receiver down, dead letter, resend", outbox, job, receiver)


def test_deliverer_process_killed_mid_delivery(redis_url, tmp_path):
    s = settings(redis_url, webhook_timeout_s=1.5, webhook_lease_s=2.0)
    # the first answer comes too late: killed by then
    receiver = Receiver(secret=SECRET, script=[(200, 1.2)])
    outbox = Outbox.from_settings(s)
    metrics_port = free_port()
    try:
        job = submit(outbox, s, receiver.url(), ["job.completed"])
        event_id = outbox.notify(job, "job.completed", view(job))
        argv = [sys.executable, "-m", "spamq.webhooks"]
        first = Process(argv, log=tmp_path / "deliverer-1.log", env=env(s))
        try:
            assert receiver.arrived.wait(20), (tmp_path / "deliverer-1.log").read_text()
        finally:
            first.stop(signal.SIGKILL)
        killed_at = time.time()
        assert outbox.attempts(job) == []  # the killed attempt never finished
        second = Process(argv, log=tmp_path / "deliverer-2.log",
                         env={**env(s), "SPAMQ_WEBHOOK_METRICS_PORT": str(metrics_port)})
        try:
            wait_until(lambda: bool(outbox.attempts(job)), timeout=20, what="redelivery",
                       proc=second.proc, log=second.log)
            text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        finally:
            second.stop()
    finally:
        receiver.close()
    assert [r["headers"]["webhook-id"] for r in receiver.requests] == [event_id, event_id]
    assert all(r["valid"] for r in receiver.requests)
    assert list(receiver.processed()) == [event_id]  # once, after dedupe by webhook-id
    [row] = outbox.attempts(job)
    assert (row["attempt"], row["status"], row["outcome"]) == (2, 200, "delivered")
    assert row["at"] - killed_at < 2.0 + 1.0  # taken up when the dead one's lease ended
    assert 'spamq_webhook_deliveries_total{outcome="delivered"}' in text
    assert "spamq_webhook_oldest_undelivered_age_seconds" in text
    assert "query-secret" not in (tmp_path / "deliverer-2.log").read_text()
    timeline("deliverer SIGKILLed mid-delivery", outbox, job, receiver)
    print(f"  killed at +{killed_at - receiver.requests[0]['at']:.3f}s after the first request")


def test_webhook_secret_in_vault_shown_and_rotated(openbao: Bao):  # noqa: F811
    """``spamq keys webhook-secret`` (operator AppRole) writes beside the key's hash; the
    deliverer's reader (api AppRole) signs with the new and, during the overlap, the old."""
    api_key = "spamq-webhook-test-" + "w" * 24
    kid = key_id(hash_key(api_key))
    role_ids = bootstrap_vault(openbao.client(), {"api_keys": hash_key(api_key)})
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPAMQ_")}

    def cli(*args: str) -> subprocess.CompletedProcess:
        env = {**clean, "SPAMQ_VAULT_ADDR": openbao.addr,
               "SPAMQ_VAULT_ROLE_ID": role_ids["operator"],
               "SPAMQ_VAULT_SECRET_ID": mint_secret_id(openbao.client(), "operator")}
        done = subprocess.run([sys.executable, "-m", "spamq.cli", "keys", "webhook-secret", *args],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    first = cli(kid).stdout.strip()
    assert first.startswith("whsec_") and cli(kid).stdout.strip() == first  # shown, not remade
    second = cli(kid, "--rotate").stdout.strip()
    assert second.startswith("whsec_") and second != first
    stored = openbao.client().secrets.kv.v2.read_secret_version(
        path="spamq/api", raise_on_deleted_version=False)["data"]["data"]
    assert stored["api_keys"] == hash_key(api_key)  # the key list is untouched
    assert json.loads(stored["webhook_secrets"])[kid]["previous"] == first

    source = VaultSecretSource(addr=openbao.addr, service="api", role_id=role_ids["api"],
                               secret_id=mint_secret_id(openbao.client(), "api"), cache_s=0)
    try:
        signing = WebhookSecrets(source).signing(kid)
    finally:
        source.close()
    assert signing == [second, first]
    headers = signed_headers(signing, "msg_x", int(time.time()), "{}")
    assert verify(first, headers, "{}") and verify(second, headers, "{}")
