"""Celery Flower against the real worker: behind basic auth, it sees the worker and its tasks."""

from __future__ import annotations

import sys
import time

import pytest
import requests

from scripts.local_services import Process, free_port, wait_until
from spamq.samples import SAMPLES
from spamq.settings import Settings

CHUNK_SIZE = Settings().chunk_size

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
    # a job of two chunks: chunk messages send task events (interactive group messages,
    # the /v1/predict path, do not: Flower's task list is for bulk work)
    texts = [SAMPLES[i % len(SAMPLES)] for i in range(CHUNK_SIZE + 1)]
    job = requests.post(api_url + "/v1/jobs", json={"texts": texts}, timeout=30).json()
    wait_until(lambda: requests.get(f"{api_url}/v1/jobs/{job['id']}", timeout=10)
               .json()["status"] == "done", timeout=60, what="the two-chunk job")

    deadline = time.monotonic() + 30
    tasks: dict = {}
    while time.monotonic() < deadline:
        tasks = requests.get(flower_url + "/api/tasks", auth=AUTH, timeout=10).json()
        mine = [t for t in tasks.values() if job["id"] in str(t.get("args"))]
        if len(mine) == 2 and all(t.get("state") == "SUCCESS" for t in mine):
            break
        time.sleep(0.2)
    assert len(mine) == 2, tasks
    for task in mine:
        assert task["name"] == "spamq.score_chunk"
        assert task["state"] == "SUCCESS"
        assert 0 < task["runtime"] < 30
        assert task["worker"].startswith("w1@")
