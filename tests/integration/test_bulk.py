"""Bulk scoring and dynamic batching over real processes: gunicorn, Redis, a Celery worker."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from spamq.jobs.store import JobStore
from tests.helpers.data import csv_file, sms_texts
from tests.integration.conftest import API_KEY, wait_for_job

pytestmark = pytest.mark.integration


def test_file_upload_job_rows_equal_results_plus_rejected(api_url):
    texts = sms_texts(700, seed=3)
    texts[5] = ""
    texts[300] = "   "
    texts[650] = "y" * 6000  # over max_chars_per_text
    resp = requests.post(api_url + "/v1/jobs", files={"file": ("in.csv", csv_file(texts))},
                         data={"column": "message", "id_column": "id"}, timeout=30)
    assert resp.status_code == 202, resp.text
    job = wait_for_job(api_url, resp.json()["status_url"])
    assert job["status"] == "done", job
    assert job["input_rows"] == 700 and job["rejected"] == 3
    download = requests.get(api_url + job["results_url"] + "?format=jsonl", timeout=30)
    results = [json.loads(line) for line in download.text.splitlines()]
    rejected = [json.loads(line) for line in requests.get(
        api_url + job["rejected_url"], timeout=5).text.splitlines()]
    assert len(results) + len(rejected) == 700
    ids = sorted(int(r["id"]) for r in results + rejected)
    assert ids == list(range(700))  # every row exactly once, joinable by its id
    assert [int(r["id"]) for r in rejected] == [5, 300, 650]
    assert job["rate"]["rows_per_s"] > 0 and job["chunks"]["failed"] == 0
    table = list(csv.DictReader(io.StringIO(
        requests.get(api_url + job["results_url"] + "?format=csv", timeout=30).text)))
    assert len(table) == 697 and {r["label"] for r in table} <= {"ham", "spam"}


def test_cancel_stops_the_remaining_chunks(api_url):
    texts = sms_texts(30_000, seed=4)
    resp = requests.post(api_url + "/v1/jobs", files={"file": ("big.csv", csv_file(texts))},
                         data={"column": "message"}, timeout=60)
    created = resp.json()
    wait_for_job(api_url, created["status_url"], statuses=("running",))
    cancel = requests.delete(api_url + created["status_url"], timeout=5)
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    time.sleep(1.5)  # chunks in flight when cancelled may still store their results
    settled = requests.get(api_url + created["status_url"], timeout=5).json()
    time.sleep(1.0)
    job = requests.get(api_url + created["status_url"], timeout=5).json()
    assert job["status"] == "cancelled"
    assert job["progress"]["done"] == settled["progress"]["done"] < 30_000  # nothing more scored
    parts = requests.get(api_url + job["parts_url"], timeout=5).json()["parts"]
    assert sum(p["rows"] for p in parts) < 30_000  # the split in flight committed no part
    assert requests.delete(api_url + created["status_url"], timeout=5).status_code == 409


def test_idempotent_resubmission_returns_the_same_job(api_url):
    body = csv_file(sms_texts(600, seed=5))
    headers = {"Idempotency-Key": f"test-{time.time()}"}
    first = requests.post(api_url + "/v1/jobs", files={"file": ("a.csv", body)},
                          data={"column": "message"}, headers=headers, timeout=30)
    assert first.status_code == 202
    job = wait_for_job(api_url, first.json()["status_url"])
    assert job["status"] == "done"
    again = requests.post(api_url + "/v1/jobs", files={"file": ("a.csv", body)},
                          data={"column": "message"}, headers=headers, timeout=30)
    assert again.status_code == 200
    assert again.json()["id"] == job["id"] and again.json()["resent_chunks"] == 0
    later = requests.get(api_url + first.json()["status_url"], timeout=5).json()
    assert later["finished_at"] == job["finished_at"]  # not scored again


def test_concurrent_single_texts_share_forward_passes(api_url, redis_url):
    store = JobStore(redis.Redis.from_url(redis_url), ttl_s=60)

    def stats() -> dict:
        return next(iter(store.workers.batch_stats().values()), {})

    time.sleep(1.2)  # let the worker publish its counters
    before = stats()
    texts = sms_texts(160, seed=6)  # within the per-key rate limit's burst

    def one(text: str) -> str:
        resp = requests.post(api_url + "/v1/predict", json={"texts": [text]}, timeout=60)
        assert resp.status_code == 200, resp.text
        return resp.json()["results"][0]["label"]

    with ThreadPoolExecutor(16) as pool:
        labels = list(pool.map(one, texts))
    assert len(labels) == 160
    time.sleep(1.5)
    after = stats()
    rows = after["rows"] - before.get("rows", 0)
    passes = after["batches"] - before.get("batches", 0)
    assert rows >= 160
    # fewer forward passes than texts: the coalescer groups the requests that arrive while
    # one is being published, and a group is one submission to the batcher
    assert passes < rows
    assert after["max_rows"] > 1


def test_cli_scores_a_file_and_resumes_by_idempotency_key(api_url, tmp_path):
    source = tmp_path / "in.tsv"
    source.write_text("text\n" + "\n".join(t.replace("\t", " ").replace("\n", " ")
                                             for t in sms_texts(300, seed=7)) + "\n\n")
    out = tmp_path / "out.csv"
    argv = [sys.executable, "-m", "spamq.cli", "score", str(source), "--output", str(out),
            "--url", api_url, "--no-progress", "--poll", "0.1"]
    env = {**os.environ, "SPAMQ_CLIENT_API_KEY": API_KEY}
    run = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(out.open()))
    refs = [int(r["ref"]) for r in rows]  # each row's byte offset in the input
    assert len(rows) == 300 and refs == sorted(refs) and len(set(refs)) == 300
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert rerun.returncode == 0 and "resuming job" in rerun.stderr
