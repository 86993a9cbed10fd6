"""Webhooks under hostile input and a hostile receiver, over the whole service: real Redis,
Celery worker, gunicorn API and deliverer process (tests/integration/conftest.py).

- a URL that is not valid Unicode (a lone surrogate) is a 422 naming ``webhook.url``, before
  any job: the Idempotency-Key stays free for the corrected request;
- a key without a signing secret is a 422 naming ``webhook``;
- a non-ASCII path is delivered percent-encoded;
- key A's receiver that accepts connections and never answers (a tarpit) holds only A's
  delivery slots: key B's events arrive within a second or so of B's job ending.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import uuid

import pytest
import requests

from scripts.local_services import wait_until
from spamq.secrets.api_keys import hash_key, key_id
from tests.helpers.receiver import Receiver
from tests.integration.conftest import API_KEY, API_KEY_2, WEBHOOK_SECRET

pytestmark = pytest.mark.integration
KEY_2 = {"X-API-Key": API_KEY_2}


class Tarpit:
    """Accepts every connection and never answers; counts the connections open at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.most = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
                self.most = max(self.most, len(self.conns))
                threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        try:
            while conn.recv(65536):  # read and drop the request, answer nothing
                pass
        except OSError:
            pass
        with self.lock:
            if conn in self.conns:
                self.conns.remove(conn)

    def open(self) -> int:
        with self.lock:
            return len(self.conns)

    def close(self) -> None:
        self.sock.close()
        with self.lock:
            for conn in self.conns:
                conn.close()
            self.conns.clear()


def _post(api_url: str, body: dict, **kwargs) -> requests.Response:
    return requests.post(api_url + "/v1/jobs", json=body, timeout=30, **kwargs)


def _submitted(api_url: str, body: dict, headers: dict | None = None) -> str:
    """The new job's id; a 429 (the key's share of the queue) is waited out."""
    for _ in range(200):
        resp = _post(api_url, body, headers=headers or {})
        if resp.status_code != 429:
            assert resp.status_code == 202, resp.text
            return resp.json()["id"]
        time.sleep(0.1)
    raise AssertionError("still 429 after 20 s")


def _finished_at(api_url: str, job_id: str, headers: dict | None = None) -> float:
    found: dict = {}

    def done() -> bool:
        view = requests.get(f"{api_url}/v1/jobs/{job_id}", headers=headers or {},
                            timeout=10).json()
        found.update(view)
        return view["status"] in ("done", "failed")

    wait_until(done, timeout=120, what=f"job {job_id}")
    assert found["status"] == "done", found
    return dt.datetime.fromisoformat(found["finished_at"]).timestamp()


SURROGATE = {"url": "http://127.0.0.1:9/hook\ud800", "events": ["job.completed"]}


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/predict", "upload"])
def test_a_lone_surrogate_is_422_and_the_key_stays_usable(api_url, webhook_deliverer, path):
    idem = {"Idempotency-Key": f"surrogate-{uuid.uuid4().hex}"}
    if path == "upload":
        resp = requests.post(api_url + "/v1/jobs", headers=idem, timeout=30,
                             files={"file": ("in.csv", b"text\nhello\n")},
                             data={"webhook": json.dumps(SURROGATE)})
    else:
        resp = requests.post(api_url + path, json={"texts": ["hi"], "webhook": SURROGATE},
                             headers=idem, timeout=30)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert (body["error"], body["field"]) == ("invalid_request", "webhook.url")
    receiver = Receiver(secret=WEBHOOK_SECRET)
    try:
        hook = {"url": receiver.url(), "events": ["job.completed"]}
        again = _post(api_url, {"texts": ["hi"], "webhook": hook}, headers=idem)
        assert again.status_code == 202, again.text  # a new job: the key was not burnt
        assert "existing" not in again.json()
        wait_until(lambda: bool(receiver.processed()), timeout=90, what="job.completed")
    finally:
        receiver.close()


def test_a_key_without_a_signing_secret_is_422(service_env, services_dir, worker):
    """An API whose secret source has API_KEY's webhook secret only: API_KEY_2's webhook is
    refused before its job exists; without a webhook, API_KEY_2 is served."""
    from scripts.local_services import start_api

    env = {**service_env, "SPAMQ_WEBHOOK_SECRETS": json.dumps(
        {key_id(hash_key(API_KEY)): {"current": WEBHOOK_SECRET}})}
    proc, base = start_api(env, log=services_dir / "api-one-secret.log")
    try:
        hook = {"url": "http://127.0.0.1:9/hook", "events": ["job.completed"]}
        idem = {**KEY_2, "Idempotency-Key": f"nosecret-{uuid.uuid4().hex}"}
        for path in ("/v1/jobs", "/v1/predict"):
            resp = requests.post(base + path, json={"texts": ["hi"], "webhook": hook},
                                 headers=idem, timeout=30)
            assert resp.status_code == 422, resp.text
            body = resp.json()
            assert (body["error"], body["field"]) == ("invalid_request", "webhook")
            assert "signing secret" in body["message"]
        resp = requests.post(base + "/v1/jobs", json={"texts": ["hi"]}, headers=idem, timeout=30)
        assert resp.status_code == 202, resp.text  # the same key, no webhook: a new job
        assert _post(base, {"texts": ["hi"], "webhook": hook}).status_code == 202  # API_KEY
    finally:
        proc.stop()


def test_a_non_ascii_path_is_delivered_percent_encoded(api_url, webhook_deliverer):
    receiver = Receiver(secret=WEBHOOK_SECRET)
    try:
        url = f"http://127.0.0.1:{receiver.port}/h\u00e9/\u6f22?q=\u00fc"
        job_id = _submitted(api_url, {"texts": ["hi"],
                                      "webhook": {"url": url, "events": ["job.completed"]}})
        wait_until(lambda: bool(receiver.processed()), timeout=90, what="job.completed")
        [req] = receiver.processed().values()
        assert req["path"] == "/h%C3%A9/%E6%BC%A2?q=%C3%BC"
        assert json.loads(req["body"])["data"]["id"] == job_id
    finally:
        receiver.close()


def test_a_tarpit_receiver_of_key_a_does_not_delay_key_b(api_url, webhook_deliverer):
    """Key A (API_KEY_2) has 40 jobs whose receiver accepts and never answers; key B
    (API_KEY)'s events still arrive within a few seconds of its jobs ending, and A's receiver
    never holds more than A's share of the deliverer (webhook_key_concurrency, 2)."""
    tarpit = Tarpit()
    receiver = Receiver(secret=WEBHOOK_SECRET)
    try:
        hook_a = {"url": f"http://127.0.0.1:{tarpit.port}/hook", "events": ["job.completed"]}
        a_jobs = [_submitted(api_url, {"texts": [f"A's text {i}"], "webhook": hook_a}, KEY_2)
                  for i in range(40)]
        for job_id in a_jobs:
            _finished_at(api_url, job_id, KEY_2)
        wait_until(lambda: tarpit.open() >= 2, timeout=30, what="A's attempts in the tarpit")
        latencies = []
        hook_b = {"url": receiver.url(), "events": ["job.completed"]}
        for i in range(5):
            job_id = _submitted(api_url, {"texts": [f"B's text {i}"], "webhook": hook_b})
            finished = _finished_at(api_url, job_id)
            wait_until(lambda j=job_id: any(json.loads(r["body"])["data"]["id"] == j
                                            for r in receiver.processed().values()),
                       timeout=60, what=f"B's event for {job_id}")
            [req] = [r for r in receiver.processed().values()
                     if json.loads(r["body"])["data"]["id"] == job_id]
            latencies.append(req["at"] - finished)
        print(f"\nkey B delivery latency under key A's tarpit (40 jobs): "
              f"{', '.join(f'{s:.2f}' for s in latencies)} s; max {max(latencies):.2f} s; "
              f"A's connections at once: at most {tarpit.most}")
        assert max(latencies) < 3.0, latencies
        assert tarpit.most <= 2, tarpit.most
    finally:
        tarpit.close()
        receiver.close()
