"""Bounded planning over real processes (gunicorn, Redis, a Celery worker) and the local
artifact store: a Parquet input of more one-row row groups than max_splits_per_job (default
10,000) with footers over plan_footers_max_bytes (default 1 MB) is answered at once, planned
by the worker's plan task within the cap, and every row is scored exactly once; a garbage
Parquet file is a 422 naming hdfs_input at submit, or fails the job with that reason when the
plan task meets it, and a refused submission leaves no job in Redis."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
import requests

from spamq.settings import Settings
from tests.integration.conftest import HOME, wait_for_job

pytestmark = pytest.mark.integration

GROUPS = 5_500  # one-row row groups per file: 2 files are 11,000, over the default cap
GARBAGE = b"PAR1" + b"\x07 not parquet at all " * 40 + (300).to_bytes(4, "little") + b"PAR1"


def one_row_groups(first: int, n: int) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(first, first + n)),
                             "text": [f"hello {i}, see you at lunch" for i in range(first,
                                                                                   first + n)]}),
                   sink, row_group_size=1)
    return sink.getvalue()


@pytest.fixture
def run_dir(service_env):
    env = {**os.environ, **service_env}
    assert not env.get("SPAMQ_HDFS_URL"), "this test writes to the local store"
    root = Path(env.get("SPAMQ_ARTIFACT_DIR") or Settings().artifact_dir)
    run = f"plan-{uuid.uuid4().hex[:8]}"
    (root / HOME / run / "in").mkdir(parents=True)
    yield root / HOME / run, f"{HOME}/{run}"
    shutil.rmtree(root / HOME / run, ignore_errors=True)


def job_hashes(r: redis.Redis) -> set[bytes]:
    return {k for k in r.scan_iter("spamq:job:*", count=1000) if k.count(b":") == 2}


def test_many_tiny_row_groups_are_planned_by_the_worker_within_the_cap(api_url, redis_url,
                                                                       run_dir):
    local, path = run_dir
    for k in range(2):
        (local / "in" / f"part-{k}.parquet").write_bytes(one_row_groups(k * GROUPS, GROUPS))
    t0 = time.monotonic()
    resp = requests.post(api_url + "/v1/jobs", json={
        "hdfs_input": f"{path}/in", "hdfs_output": f"{path}/out", "id_column": "id",
        "output_format": "jsonl"}, timeout=30)
    took = time.monotonic() - t0
    assert resp.status_code == 202, resp.text
    assert took < 2.0, took  # no footer read in the request (the bench measures < 1 s)
    job = wait_for_job(api_url, resp.json()["status_url"], timeout=300)
    assert job["status"] == "done", job
    assert job["chunks"]["total"] <= Settings().max_splits_per_job
    assert job["chunks"]["total"] < 2 * GROUPS  # row groups merged, not one split each
    ids = [json.loads(line)["id"] for part in sorted((local / "out").glob("part-*.jsonl"))
           for line in part.read_text().splitlines()]
    assert ids == list(range(2 * GROUPS))  # every row exactly once, in order
    assert job["input_rows"] == 2 * GROUPS and job["rejected"] == 0


def test_a_garbage_parquet_file_is_a_422_and_leaves_no_job(api_url, redis_url, run_dir):
    local, path = run_dir
    secret = b"SECRET-ROW-CONTENT " * 100
    (local / "in" / "bad.parquet").write_bytes(secret)
    r = redis.Redis.from_url(redis_url)
    before = job_hashes(r)
    key = f"plan-{uuid.uuid4().hex}"
    resp = requests.post(api_url + "/v1/jobs", json={
        "hdfs_input": f"{path}/in/bad.parquet", "hdfs_output": f"{path}/out"},
        headers={"Idempotency-Key": key}, timeout=30)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["field"] == "hdfs_input" and "not a readable Parquet file" in body["message"]
    assert "SECRET" not in resp.text and str(local) not in resp.text
    assert job_hashes(r) == before  # no job stored for it
    # the Idempotency-Key was not burnt: a good input with it makes a job
    (local / "in" / "good.parquet").write_bytes(one_row_groups(0, 5))
    resp = requests.post(api_url + "/v1/jobs", json={
        "hdfs_input": f"{path}/in/good.parquet", "hdfs_output": f"{path}/out"},
        headers={"Idempotency-Key": key}, timeout=30)
    assert resp.status_code == 202 and not resp.json().get("existing"), resp.text


def test_a_garbage_parquet_file_met_by_the_plan_task_fails_the_job_with_the_reason(
        api_url, run_dir):
    local, path = run_dir
    (local / "in" / "part-0.parquet").write_bytes(one_row_groups(0, GROUPS))  # > 1 MB footer
    (local / "in" / "part-1.parquet").write_bytes(GARBAGE)  # ends like Parquet: probe passes
    resp = requests.post(api_url + "/v1/jobs", json={
        "hdfs_input": f"{path}/in", "hdfs_output": f"{path}/out"}, timeout=30)
    assert resp.status_code == 202, resp.text
    job = wait_for_job(api_url, resp.json()["status_url"], timeout=120)
    assert job["status"] == "failed", job
    assert job["error"] == "planning failed: hdfs_input: an input file is not a readable " \
                           "Parquet file", job
    assert "not parquet at all" not in json.dumps(job)
