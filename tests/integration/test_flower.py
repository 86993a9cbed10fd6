"""Celery Flower against the real worker: behind basic auth, it sees the worker and its tasks."""

from __future__ import annotations

import sys
import time

import pytest
import requests

from scripts.local_services import Process, free_port, wait_until
from spamq.samples import SAMPLES

pytestmark = pytest.mark.integration
AUTH = ("operator", "flower-test-password")


@pytest.fixture(scope="module")
def flower_url(service_env, services_dir, worker):
    port = free_port()
    env = {**service_env, "SPAMQ_FLOWER_PORT": str(port),
           "SPAMQ_FLOWER_BASIC_AUTH": ":".join(AUTH)}
    proc = Process([sys.executable, "-m", "spamq.cli", "flower"],
                   log=services_dir / "flower.log", env=env)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(base + "/healthcheck", timeout=1).text == "OK",
               timeout=30, what="flower", proc=proc.proc, log=proc.log)
    yield base
    proc.stop()


def test_flower_requires_credentials(flower_url):
    assert requests.get(flower_url + "/api/workers", timeout=5).status_code == 401
    wrong = requests.get(flower_url + "/api/workers", auth=("operator", "nope"), timeout=5)
    assert wrong.status_code == 401


def test_flower_shows_the_worker_and_task_runtimes(flower_url, api_url):
    def worker_names() -> list[str]:
        resp = requests.get(flower_url + "/api/workers?refresh=1", auth=AUTH, timeout=10)
        return list(resp.json()) if resp.ok else []

    wait_until(lambda: any(n.startswith("w1@") for n in worker_names()), timeout=30,
               what="worker in flower")
    job = requests.post(api_url + "/v1/predict", json={"texts": SAMPLES}, timeout=30).json()
    assert len(job["results"]) == 3

    deadline = time.monotonic() + 30
    tasks: dict = {}
    while time.monotonic() < deadline:
        tasks = requests.get(flower_url + "/api/tasks", auth=AUTH, timeout=10).json()
        mine = [t for t in tasks.values() if job["id"] in str(t.get("args"))]
        if mine and mine[0].get("state") == "SUCCESS":
            break
        time.sleep(0.2)
    assert mine, tasks
    assert mine[0]["name"] == "spamq.score_chunk"
    assert mine[0]["state"] == "SUCCESS"
    assert 0 < mine[0]["runtime"] < 30
    assert mine[0]["worker"].startswith("w1@")
