"""Faults against real processes: nothing lost, nothing duplicated.

One stack for the module: its own redis-server (AOF on, a fixed port so it can be restarted),
a Celery worker with a short visibility timeout and the test-only poison marker, and the API
with a small queue-depth limit. Counts go to bench/results/faults.json.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import redis
import requests

from api.auth import hash_key
from spamq.jobs import JobStore
from spamq.local_services import REPO, free_port, start_api, start_redis, start_worker, wait_until
from spamq.queue import SCORE_CHUNK, make_celery
from spamq.settings import Settings
from tests.integration.conftest import API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POISON = "@@poison@@"
COUNTS = {"faults_injected": 0, "jobs_submitted": 0, "items_submitted": 0, "items_lost": 0,
          "items_duplicated": 0, "faults": []}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, trained_model_dir):
    root = tmp_path_factory.mktemp("faults")
    port = free_port()
    redis_proc, url = start_redis(root / "redis", port=port, aof=True)
    env = {
        "SPAMQ_REDIS_URL": url, "SPAMQ_MODEL_DIR": str(trained_model_dir),
        "SPAMQ_AUTH_REQUIRED": "true", "SPAMQ_API_KEYS": hash_key(API_KEY),
        "SPAMQ_WORKER_HEARTBEAT_S": "0.5", "SPAMQ_CHUNK_SIZE": "16",
        "SPAMQ_BROKER_VISIBILITY_TIMEOUT_S": "5", "SPAMQ_CHUNK_LEASE_S": "3",
        "SPAMQ_TEST_POISON_MARKER": POISON, "SPAMQ_MAX_QUEUE_DEPTH": "40",
        "SPAMQ_REDIS_TIMEOUT_S": "1", "SPAMQ_MAX_TEXTS_PER_REQUEST": "5000",
        "SPAMQ_WORKER_CONCURRENCY": "4", "SPAMQ_BULK_MAX_IN_FLIGHT": "1000",
        "SPAMQ_STALL_RESEND_S": "15",  # kombu can lose a message popped at the kill (sweeper)
    }
    s = {"root": root, "port": port, "url": url, "env": env, "redis": redis_proc}
    s["worker"] = start_worker(env, log=root / "worker-1.log", name="f1")
    s["api"], s["base"] = start_api(env, log=root / "api-1.log")
    yield s
    for name in ("api", "worker", "redis"):
        s[name].stop()
    out = REPO / "bench" / "results" / "faults.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**COUNTS, "at": time.time()}, indent=2) + "\n")
    print("\nfault summary: " + json.dumps({k: v for k, v in COUNTS.items() if k != "faults"}))


def _fault(name: str) -> None:
    COUNTS["faults_injected"] += 1
    COUNTS["faults"].append(name)


def submit(base: str, texts: list[str], **extra) -> dict:
    resp = requests.post(base + "/v1/jobs", json={"texts": texts, **extra}, timeout=10)
    assert resp.status_code == 202, resp.text
    COUNTS["jobs_submitted"] += 1
    COUNTS["items_submitted"] += len(texts)
    return resp.json()


def store_of(stack) -> JobStore:
    return JobStore(redis.Redis.from_url(stack["url"], socket_timeout=2), ttl_s=3600)


def wait_done(stack, job_id: str, timeout: float = 120) -> None:
    store, worker = store_of(stack), stack["worker"]  # a worker that died fails the wait at once
    wait_until(lambda: store.get(job_id).finished, timeout=timeout, what=f"job {job_id}",
               proc=worker.proc, log=worker.log)


def audit(stack, job_id: str) -> list[dict]:
    """Every item has exactly one result: count the lost and duplicated ones."""
    store = store_of(stack)
    job = store.get(job_id)
    results = store.results(job_id)
    stored_chunks = store.redis.hlen(f"spamq:job:{job_id}:results")
    lost = max(0, job.total - len(results))
    duplicated = max(0, len(results) - job.total) + max(0, job.done - job.total) + max(
        0, job.chunks_done - stored_chunks)
    COUNTS["items_lost"] += lost
    COUNTS["items_duplicated"] += duplicated
    assert job.status == "done", job
    assert (lost, duplicated) == (0, 0)
    assert job.done == job.total and job.chunks_done == job.chunks_total == stored_chunks
    return results


def texts(n: int, tag: str) -> list[str]:
    return [f"{tag} message number {i}, call 0800 now for a prize" for i in range(n)]


def test_poison_item_fails_alone_and_the_job_finishes(stack):
    batch = texts(40, "poison")
    batch[21] = f"hello {POISON} there"
    _fault("poison input")
    job = submit(stack["base"], batch)
    wait_done(stack, job["id"])
    results = audit(stack, job["id"])
    errors = [i for i, r in enumerate(results) if r.get("error")]
    assert errors == [21] and "poison" in results[21]["error"]
    assert all(r["label"] in ("spam", "ham") for i, r in enumerate(results) if i != 21)


def test_redelivered_chunks_while_the_first_attempt_runs_write_once(stack):
    job = submit(stack["base"], texts(64, "dup"))
    celery = make_celery(Settings(redis_url=stack["url"]))
    for index in range(4):  # the same messages again, as a visibility-timeout redelivery would
        celery.send_task(SCORE_CHUNK, args=[job["id"], index, index * 16, index * 16 + 16],
                         queue="spamq.interactive")
    _fault("duplicate delivery x4")
    wait_done(stack, job["id"])
    time.sleep(1.5)  # let the copies finish too
    audit(stack, job["id"])


def test_worker_sigkilled_mid_job_then_backpressure_then_redelivery(stack):
    store = store_of(stack)
    job = submit(stack["base"], texts(2000, "kill"))
    wait_until(lambda: store.get(job["id"]).chunks_done >= 3, timeout=60, what="some chunks")
    proc = stack["worker"].proc
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    _fault("worker SIGKILL mid-job")
    assert not store.get(job["id"]).finished
    # No worker: the queue holds more than max_queue_depth, so new work is refused.
    resp = requests.post(stack["base"] + "/v1/jobs", json={"texts": ["hi"]}, timeout=10)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    _fault("queue over max depth")
    time.sleep(5)  # past the visibility timeout: the killed worker's messages come back
    stack["worker"].stop()
    stack["worker"] = start_worker(stack["env"], log=stack["root"] / "worker-2.log", name="f2")
    wait_done(stack, job["id"], timeout=180)
    audit(stack, job["id"])


def test_redis_killed_and_restarted_keeps_jobs_and_the_api_recovers(stack):
    done = submit(stack["base"], texts(20, "before"))
    wait_done(stack, done["id"])
    before = store_of(stack).results(done["id"])
    pending = submit(stack["base"], texts(300, "during"))
    stack["redis"].stop(signal.SIGKILL)
    _fault("redis SIGKILL + restart")
    started = time.monotonic()
    resp = requests.get(stack["base"] + done["status_url"], timeout=10)
    assert resp.status_code == 503 and time.monotonic() - started < 5
    assert requests.post(stack["base"] + "/v1/jobs", json={"texts": ["x"]},
                         timeout=10).status_code == 503
    stack["redis"], _ = start_redis(stack["root"] / "redis", port=stack["port"], aof=True)
    wait_until(lambda: requests.get(stack["base"] + done["status_url"], timeout=5).ok,
               timeout=30, what="API answering again")
    assert store_of(stack).results(done["id"]) == before
    wait_done(stack, pending["id"], timeout=180)  # queued work survived; the worker reconnected
    audit(stack, pending["id"])


def test_api_restart_during_a_job_loses_nothing(stack):
    job = submit(stack["base"], texts(600, "api"))
    stack["api"].stop(signal.SIGKILL)
    _fault("API SIGKILL + restart")
    stack["api"], stack["base"] = start_api(stack["env"], log=stack["root"] / "api-2.log")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # polling resumes against the new process
        view = requests.get(stack["base"] + job["status_url"], timeout=5).json()
        if view["status"] == "done":
            break
        time.sleep(0.1)
    audit(stack, job["id"])


def test_a_job_past_its_deadline_expires(stack):
    store = store_of(stack)
    big = submit(stack["base"], texts(600, "busy"))  # 38 chunks ahead of it (under the depth limit)
    job = submit(stack["base"], texts(200, "late"), deadline_s=0.05)
    wait_done(stack, job["id"])
    view = requests.get(stack["base"] + job["status_url"], timeout=5).json()
    assert view["status"] == "expired" and "deadline" in view["error"]
    assert store.get(job["id"]).done < 200
    wait_done(stack, big["id"], timeout=180)
    audit(stack, big["id"])


def test_fault_logs_hold_no_secret(stack):
    text = "".join(p.read_text(errors="replace") for p in Path(stack["root"]).glob("*.log"))
    assert API_KEY not in text and hash_key(API_KEY) not in text
