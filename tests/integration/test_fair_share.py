"""Per-key shares against real processes: while key A floods, key B is still served.

One stack for the module: its own redis-server, a Celery worker and the API under gunicorn,
with a small queue-depth limit (40 tasks) and a small bulk window, so that A's flood of store
jobs fills the queue in a second. Rate limits are raised: a 429 here is the share's.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from api.auth import hash_key
from scripts.local_services import start_api, start_redis, start_worker
from tests.integration.conftest import API_KEY, API_KEY_2, HOME, HOME_2

pytestmark = [pytest.mark.integration, pytest.mark.slow]

A, B = {"X-API-Key": API_KEY}, {"X-API-Key": API_KEY_2}
FLOOD_S = 8.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory, trained_model_dir):
    root = tmp_path_factory.mktemp("fair")
    store = root / "store"
    for home, files, rows in ((HOME, 20, 400), (HOME_2, 1, 40)):
        (store / home / "in").mkdir(parents=True)
        for f in range(files):
            (store / home / "in" / f"part-{f:02d}.jsonl").write_text("".join(
                json.dumps({"text": f"message {f}-{i}: call now to claim your prize"}) + "\n"
                for i in range(rows)))
    redis_proc, url = start_redis(root / "redis")
    env = {
        "SPAMQ_REDIS_URL": url, "SPAMQ_MODEL_DIR": str(trained_model_dir),
        "SPAMQ_AUTH_REQUIRED": "true", "SPAMQ_PRECISION": "fp32",
        "SPAMQ_API_KEYS": f"{hash_key(API_KEY)},{hash_key(API_KEY_2)}",
        "SPAMQ_ARTIFACT_DIR": str(store), "SPAMQ_WORKER_HEARTBEAT_S": "0.5",
        "SPAMQ_MAX_QUEUE_DEPTH": "40", "SPAMQ_QUEUE_SHARE_FLOOR": "4",
        "SPAMQ_BULK_WINDOW_CHUNKS": "4", "SPAMQ_SPLIT_BYTES": "4000",
        "SPAMQ_BULK_MAX_IN_FLIGHT": "2",
        "SPAMQ_RATE_LIMIT_PER_S": "5000", "SPAMQ_RATE_LIMIT_BURST": "5000",
        "SPAMQ_PREDICT_TIMEOUT_S": "5",
    }
    worker = start_worker(env, log=root / "worker.log", name="fair")
    api, base = start_api(env, log=root / "api.log")
    yield base
    api.stop()
    worker.stop()
    redis_proc.stop()


def _flood(stop: threading.Event, post, codes: dict, ids: list) -> None:
    """Key A's submissions, until ``stop`` or FLOOD_S: each answer's status (and 429 kind)."""
    end = time.monotonic() + FLOOD_S
    while not stop.is_set() and time.monotonic() < end:
        resp = post()
        kind = resp.json().get("error", "") if resp.status_code == 429 else ""
        codes[(resp.status_code, kind)] = codes.get((resp.status_code, kind), 0) + 1
        if resp.status_code == 202:
            ids.append(resp.json()["id"])


def _cancel(base: str, ids: list) -> None:
    for job_id in ids:
        requests.delete(f"{base}/v1/jobs/{job_id}", headers=A, timeout=10)


def test_a_store_job_flood_is_refused_to_its_key_and_not_to_the_others(stack):
    base = stack
    n = iter(range(10_000))
    codes: dict = {}
    ids: list = []
    stop = threading.Event()

    def store_job():
        return requests.post(f"{base}/v1/jobs", headers=A, timeout=30, json={
            "hdfs_input": f"{HOME}/in/*.jsonl", "hdfs_output": f"{HOME}/out/{next(n)}"})

    flood = threading.Thread(target=_flood, args=(stop, store_job, codes, ids))
    flood.start()
    b_codes = []
    try:
        deadline = time.monotonic() + FLOOD_S
        while not codes.get((429, "overloaded")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert codes.get((429, "overloaded")), codes  # the queue is full, of A's splits
        for i in range(5):  # B, while A floods: a store job and a texts job each time
            resp = requests.post(f"{base}/v1/jobs", headers=B, timeout=30, json={
                "hdfs_input": f"{HOME_2}/in/part-00.jsonl", "hdfs_output": f"{HOME_2}/out/{i}"})
            b_codes.append(resp.status_code)
            resp = requests.post(f"{base}/v1/jobs", headers=B, timeout=30,
                                 json={"texts": ["are you coming tonight?"]})
            b_codes.append(resp.status_code)
            time.sleep(0.1)
    finally:
        stop.set()
        flood.join(60)
        _cancel(base, ids)
    print(f"\nkey A: {codes}; key B: {b_codes}")
    assert b_codes == [202] * 10
    assert codes.get((429, "overloaded"), 0) >= 1 and codes.get((202, ""), 0) >= 5


def test_an_interactive_flood_does_not_time_out_another_keys_predict(stack):
    base = stack
    codes: dict = {}
    ids: list = []
    stop = threading.Event()
    texts = [f"hey, are we still on for dinner at {i}? call me back when you can"
             for i in range(256)]

    def small_job():
        return requests.post(f"{base}/v1/jobs", headers=A, timeout=30, json={"texts": texts})

    b: list[tuple[int, float]] = []
    with ThreadPoolExecutor(8) as pool:
        floods = [pool.submit(_flood, stop, small_job, codes, ids) for _ in range(8)]
        try:
            time.sleep(1.0)  # A's backlog builds first
            end = time.monotonic() + FLOOD_S - 2
            while time.monotonic() < end:
                t0 = time.monotonic()
                resp = requests.post(f"{base}/v1/predict", headers=B, timeout=30,
                                     json={"texts": ["free entry! text WIN to 80085 now"]})
                b.append((resp.status_code, time.monotonic() - t0))
                time.sleep(0.2)
        finally:
            stop.set()
            for f in floods:
                f.result(60)
    _cancel(base, ids)
    latencies = sorted(s for _, s in b)
    print(f"\nkey A: {codes}; key B: {len(b)} predicts, codes "
          f"{sorted({c for c, _ in b})}, p50 {latencies[len(b) // 2]:.3f}s, "
          f"max {latencies[-1]:.3f}s")
    assert codes.get((202, ""), 0) >= 30  # A did flood
    assert [c for c, _ in b] == [200] * len(b)  # no 504 for B (its timeout: 5 s)
    assert latencies[-1] < 5.0


def _committed(base: str, ids: list) -> int:
    """Splits committed so far over key A's jobs ``ids``."""
    return sum(requests.get(f"{base}/v1/jobs/{i}", headers=A, timeout=10).json()["chunks"]["done"]
               for i in ids)


def test_another_keys_store_job_waits_behind_one_window_of_a_flooders_splits(stack):
    """Key A's store jobs hold at most one window (SPAMQ_BULK_WINDOW_CHUNKS, 4) of splits in
    the broker, across all of them; the rest wait parked. Key B's one-split job then waits
    behind at most that window, not behind every window A queued (9 jobs x 4 before)."""
    base = stack
    ids, totals = [], 0
    for i in range(9):  # 9 jobs x 100 splits (20 files of 5 splits each)
        resp = requests.post(f"{base}/v1/jobs", headers=A, timeout=30, json={
            "hdfs_input": f"{HOME}/in/*.jsonl", "hdfs_output": f"{HOME}/out/parked-{i}"})
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])
    try:
        view = requests.get(f"{base}/v1/jobs/{ids[-1]}", headers=A, timeout=10).json()
        totals = view["chunks"]["total"] * len(ids)
        assert view["status"] == "queued" and view["queue_position"] >= 1  # parked
        before = _committed(base, ids)
        resp = requests.post(f"{base}/v1/jobs", headers=B, timeout=30, json={
            "hdfs_input": f"{HOME_2}/in/part-00.jsonl", "hdfs_output": f"{HOME_2}/out/parked"})
        assert resp.status_code == 202, resp.text
        b_url = f"{base}{resp.json()['status_url']}"
        end = time.monotonic() + 120
        while (b := requests.get(b_url, headers=B, timeout=10).json())["status"] != "done":
            assert b["status"] in ("queued", "running") and time.monotonic() < end, b
            time.sleep(0.05)
        during = _committed(base, ids) - before
    finally:
        _cancel(base, ids)
    from datetime import datetime

    waited = (datetime.fromisoformat(b["finished_at"])
              - datetime.fromisoformat(b["created_at"])).total_seconds()
    print(f"\nkey B's store job: {waited:.2f}s from created to finished; key A committed "
          f"{during} of its {totals} splits meanwhile ({before} before)")
    assert during <= 12, during  # its window (4) and what ran beside B's split; not 9 x 4
    assert before + during < totals / 2  # long before A's backlog is half done
