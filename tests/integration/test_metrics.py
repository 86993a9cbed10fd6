"""/metrics over the real gunicorn (two worker processes merged) and the real Celery worker."""

from __future__ import annotations

import time

import pytest
import requests

from spamq.models.manifest import verify_model_dir
from spamq.samples import SAMPLES
from tests.integration.conftest import METRICS_TOKEN

pytestmark = pytest.mark.integration


def scrape(api_url: str) -> dict[str, float]:
    resp = requests.get(api_url + "/metrics", timeout=10,
                        headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert resp.status_code == 200, resp.text
    text = resp.text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def test_metrics_count_every_request_across_gunicorn_workers(api_url, trained_model_dir):
    key = 'spamq_http_requests_total{endpoint="/v1/predict",method="POST",status="200"}'
    before = scrape(api_url).get(key, 0.0)
    for _ in range(12):  # spread over both gunicorn workers
        assert requests.post(api_url + "/v1/predict", json={"texts": SAMPLES[:1]},
                             timeout=30).status_code == 200
    after = scrape(api_url)
    assert after[key] - before == 12
    version = verify_model_dir(trained_model_dir)
    models = [k for k in after if k.startswith("spamq_worker_model{")]
    assert models and all(f'model_version="{version}"' in k for k in models)
    assert after["spamq_workers_ready"] >= 1
    assert after['spamq_queue_depth{queue="spamq.interactive"}'] >= 0
    assert after['spamq_jobs_total{event="done"}'] >= 12

    deadline = time.monotonic() + 15  # batch counters are published every heartbeat
    while time.monotonic() < deadline:
        items = sum(v for k, v in scrape(api_url).items()
                    if k.startswith("spamq_worker_items_total"))
        if items >= 12:
            break
        time.sleep(0.5)
    assert items >= 12


def test_metrics_are_for_the_operator_only(api_url):
    """Cluster-wide figures: an API key (any tenant's) gets 403, as does no credential."""
    for headers in ({}, {"Authorization": "Bearer wrong"}):  # {}: the test API key is sent
        resp = requests.get(api_url + "/metrics", headers=headers, timeout=10)
        assert resp.status_code == 403 and "spamq_jobs" not in resp.text, resp.text
        assert resp.json()["error"] == "forbidden"
