"""Webhooks over the whole service: real Redis, Celery worker, gunicorn API and deliverer
process (tests/integration/conftest.py); a job submitted with a webhook is told to a real
receiver on 127.0.0.1, signed with its key's secret, once."""

from __future__ import annotations

import json
import time

import pytest
import requests

from scripts.local_services import wait_until
from spamq.samples import SAMPLES
from tests.helpers.receiver import Receiver
from tests.integration.conftest import API_KEY_2, WEBHOOK_SECRET

pytestmark = pytest.mark.integration


def test_a_job_with_a_webhook_is_told_once_signed(api_url, webhook_deliverer):
    receiver = Receiver(secret=WEBHOOK_SECRET)
    try:
        hook = {"url": receiver.url(), "events": ["job.completed", "job.failed"]}
        resp = requests.post(api_url + "/v1/jobs", json={"texts": SAMPLES, "webhook": hook},
                             timeout=10)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        wait_until(lambda: bool(receiver.processed()), timeout=90, what="job.completed")
        time.sleep(1.0)  # a few more polls of the watch: nothing more is sent
        [req] = receiver.requests
        assert req["valid"], "signature"
        body = json.loads(req["body"])
        assert (body["type"], body["data"]["id"], body["data"]["status"]) == (
            "job.completed", job_id, "done")
        assert body["data"]["progress"] == {"done": len(SAMPLES), "total": len(SAMPLES)}
        assert body["data"]["results_url"] == f"/v1/jobs/{job_id}/results"
        assert "results" not in body["data"]

        resp = requests.get(f"{api_url}/v1/jobs/{job_id}/webhooks", timeout=5)
        assert resp.status_code == 200, resp.text
        [attempt] = resp.json()["attempts"]
        assert (attempt["event_id"], attempt["type"], attempt["status"], attempt["outcome"]) == (
            req["headers"]["webhook-id"], "job.completed", 200, "delivered")
        other = requests.get(f"{api_url}/v1/jobs/{job_id}/webhooks",
                             headers={"X-API-Key": API_KEY_2}, timeout=5)
        assert other.status_code == 404 and other.json()["error"] == "not_found"
    finally:
        receiver.close()


@pytest.mark.parametrize(("hook", "field"), [
    ({"url": "http://169.254.169.254/latest/meta-data/", "events": ["job.completed"]},
     "webhook.url"),
    ({"url": "http://127.0.0.1:9/h", "events": ["job.exploded"]}, "webhook.events[0]"),
    ("http://127.0.0.1:9/h", "webhook"),
])
def test_a_refused_webhook_is_422_naming_the_field(api_url, hook, field):
    resp = requests.post(api_url + "/v1/jobs", json={"texts": ["hi"], "webhook": hook},
                         timeout=10)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert (body["error"], body["field"]) == ("invalid_request", field)
    assert "169.254.169.254/latest" not in body["message"]
