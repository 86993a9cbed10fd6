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
from scripts.local_services import free_port, start_api, start_redis, start_worker, wait_until
from spamq.jobs.queue import SCORE_CHUNK, make_celery
from spamq.jobs.store import JobStore
from spamq.settings import Settings
from tests.helpers.fault_counts import write_counts
from tests.integration.conftest import API_KEY, API_KEY_2

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POISON = "@@poison@@"
COUNTS = {"faults_injected": 0, "jobs_submitted": 0, "items_submitted": 0, "items_lost": 0,
          "items_duplicated": 0, "faults": [], "recovery_s": {}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, trained_model_dir):
    # Recovery is measured with the default heartbeat, lease, visibility timeout and sweeper
    # settings; only sizes (chunk, concurrency, the per-key quota) are made small.
    root = tmp_path_factory.mktemp("faults")
    port = free_port()
    redis_proc, url = start_redis(root / "redis", port=port, aof=True)
    env = {
        "SPAMQ_REDIS_URL": url, "SPAMQ_MODEL_DIR": str(trained_model_dir),
        "SPAMQ_AUTH_REQUIRED": "true",
        "SPAMQ_API_KEYS": f"{hash_key(API_KEY)},{hash_key(API_KEY_2)}",
        "SPAMQ_CHUNK_SIZE": "16", "SPAMQ_TEST_POISON_MARKER": POISON,
        "SPAMQ_MAX_PENDING_ROWS_PER_KEY": "6000",
        "SPAMQ_REDIS_TIMEOUT_S": "1", "SPAMQ_MAX_TEXTS_PER_REQUEST": "5000",
        "SPAMQ_WORKER_CONCURRENCY": "4", "SPAMQ_BULK_MAX_IN_FLIGHT": "1000",
        "SPAMQ_PREDICT_TIMEOUT_S": "30",
    }
    s = {"root": root, "port": port, "url": url, "env": env, "redis": redis_proc}
    s["worker"] = start_worker(env, log=root / "worker-1.log", name="f1")
    s["worker_b"] = start_worker(env, log=root / "worker-b.log", name="fb")
    s["api"], s["base"] = start_api(env, log=root / "api-1.log")
    yield s
    for name in ("api", "worker", "worker_b", "redis"):
        s[name].stop()
    write_counts("faults", COUNTS)
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
    wait_until(lambda: store.jobs.get(job_id).finished, timeout=timeout, what=f"job {job_id}",
               proc=worker.proc, log=worker.log)


def audit(stack, job_id: str) -> list[dict]:
    """Every item has exactly one result: count the lost and duplicated ones."""
    store = store_of(stack)
    job = store.jobs.get(job_id)
    results = store.results.results(job_id)
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


def test_worker_sigkilled_mid_job_recovers_in_seconds(stack):
    """The killed worker's leased chunks are re-sent once its heartbeat lapses (default
    settings: 2 s beats, 6 s to lapse, a sweep every 2 s), not after the hour-long
    visibility timeout; the other worker finishes the job."""
    store = store_of(stack)
    job = submit(stack["base"], texts(3000, "kill"))
    wait_until(lambda: store.jobs.get(job["id"]).chunks_done >= 3, timeout=60, what="some chunks")
    sent = list(range(store.jobs.get(job["id"]).chunks_sent))
    held = [v for v in store.leases.lease_holders(job["id"], sent) if v]
    proc = stack["worker"].proc
    os.killpg(proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    proc.wait(10)
    _fault("worker SIGKILL mid-job")
    assert not store.jobs.get(job["id"]).finished
    stack["worker"].stop()
    stack["worker"] = stack["worker_b"]  # wait_done watches the live worker
    wait_done(stack, job["id"], timeout=120)
    recovery = time.monotonic() - killed
    COUNTS["recovery_s"]["worker SIGKILL: kill to job done (3000 rows)"] = round(recovery, 1)
    COUNTS["recovery_s"]["worker SIGKILL: chunks leased at the kill"] = len(held)
    audit(stack, job["id"])
    assert recovery <= 30, recovery
    stack["worker_b"] = start_worker(stack["env"], log=stack["root"] / "worker-2.log", name="f2")


def test_one_key_cannot_close_the_service_to_another(stack):
    """Key 1 submits bulk work until its quota answers 429; key 2's /v1/predict and key 2's
    own bulk job still go through, the bulk one interleaved with key 1's backlog."""
    base, store = stack["base"], store_of(stack)
    flood = []
    for _ in range(40):
        resp = requests.post(base + "/v1/jobs", json={"texts": texts(1500, "flood")}, timeout=30)
        if resp.status_code == 429:
            break
        assert resp.status_code == 202, resp.text
        flood.append(resp.json()["id"])
    assert resp.status_code == 429 and resp.json()["error"] == "over_quota", resp.text
    assert int(resp.headers["Retry-After"]) > 0
    other = {"X-API-Key": API_KEY_2}
    started = time.monotonic()
    quick = requests.post(base + "/v1/predict", json={"texts": ["are we still on for 5?"]},
                          headers=other, timeout=30)
    assert quick.status_code == 200 and quick.json()["results"][0]["label"] in ("spam", "ham")
    bulk = requests.post(base + "/v1/jobs", json={"texts": texts(320, "fair")}, headers=other,
                         timeout=30)
    assert bulk.status_code == 202, bulk.text
    wait_until(lambda: store.jobs.get(bulk.json()["id"]).finished, timeout=120, what="key 2's job")
    key2_s = time.monotonic() - started
    left = sum(store.jobs.get(j).total - store.jobs.get(j).done for j in flood)
    COUNTS["recovery_s"]["fair share: key 2's 320-row job while key 1's backlog waits"] = round(
        key2_s, 1)
    assert left > 0, "key 1's backlog finished first: no interleaving shown"
    for j in flood:
        requests.delete(f"{base}/v1/jobs/{j}", timeout=10)


def test_redis_killed_and_restarted_keeps_jobs_and_the_api_recovers(stack):
    done = submit(stack["base"], texts(20, "before"))
    wait_done(stack, done["id"])
    before = store_of(stack).results.results(done["id"])
    pending = submit(stack["base"], texts(600, "during"))
    wait_until(lambda: store_of(stack).jobs.get(pending["id"]).chunks_done >= 2, timeout=60,
               what="some chunks")
    stack["redis"].stop(signal.SIGKILL)
    _fault("redis SIGKILL + restart")
    started = time.monotonic()
    resp = requests.get(stack["base"] + done["status_url"], timeout=10)
    assert resp.status_code == 503 and time.monotonic() - started < 5
    assert requests.post(stack["base"] + "/v1/jobs", json={"texts": ["x"]},
                         timeout=10).status_code == 503
    stack["redis"], _ = start_redis(stack["root"] / "redis", port=stack["port"], aof=True)
    restarted = time.monotonic()
    wait_until(lambda: requests.get(stack["base"] + done["status_url"], timeout=5).ok,
               timeout=30, what="API answering again")
    assert store_of(stack).results.results(done["id"]) == before
    wait_done(stack, pending["id"], timeout=120)  # queued work survived; the worker reconnected
    recovery = time.monotonic() - restarted
    COUNTS["recovery_s"]["redis SIGKILL + restart: restart to job done (600 rows)"] = round(
        recovery, 1)
    audit(stack, pending["id"])
    assert recovery <= 30, recovery


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
    assert store.jobs.get(job["id"]).done < 200
    wait_done(stack, big["id"], timeout=180)
    audit(stack, big["id"])


def test_fault_logs_hold_no_secret(stack):
    text = "".join(p.read_text(errors="replace") for p in Path(stack["root"]).glob("*.log"))
    assert API_KEY not in text and hash_key(API_KEY) not in text
