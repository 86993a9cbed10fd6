"""Jobs reading their input from HDFS and writing part files back (spamq/bulk_io.py).

Real processes: redis-server, a celery worker and the gunicorn API, both on a real HDFS.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid

import pytest
import redis
import requests

from spamq.artifacts import HdfsArtifactStore
from spamq.local_services import start_api, start_redis, start_worker
from tests.integration.conftest import wait_for_job

try:
    from tests.integration.services_hdfs_vault import hdfs_url  # noqa: F401
except ImportError:  # rootdir-relative import when tests/ is not a package
    from services_hdfs_vault import hdfs_url  # type: ignore # noqa: F401

pytestmark = pytest.mark.integration

CHUNK = 100


@pytest.fixture(scope="module")
def hdfs_job_env(hdfs_url, service_env, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("bulk-hdfs")
    root = f"/spamq-test/{uuid.uuid4().hex}"
    store = HdfsArtifactStore(hdfs_url, user="spamq", root=root, timeout_s=10)
    rproc, rurl = start_redis(tmp / "redis")
    env = {**service_env, "SPAMQ_REDIS_URL": rurl, "SPAMQ_HDFS_URL": hdfs_url,
           "SPAMQ_HDFS_ROOT": root, "SPAMQ_CHUNK_SIZE": str(CHUNK),
           "SPAMQ_OUTPUT_WRITE_ATTEMPTS": "3", "SPAMQ_OUTPUT_WRITE_BACKOFF_S": "0.05"}
    worker = start_worker(env, log=tmp / "worker.log")
    api, base = start_api(env, log=tmp / "api.log")
    try:
        yield base, store, redis.Redis.from_url(rurl)
    finally:
        api.stop()
        worker.stop()
        rproc.stop()
        store.delete("", recursive=True)


def sample_csv(n: int, bad: set[int]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "text"])
    for i in range(n):
        text = "   " if i in bad else f"WINNER! claim your free prize now, call 0800 {i}" \
            if i % 3 == 0 else f"see you at lunch tomorrow? #{i}"
        writer.writerow([i, text])
    return buffer.getvalue().encode()


def all_results(base: str, job_id: str) -> list[dict]:
    r = requests.get(f"{base}/v1/jobs/{job_id}/results", params={"format": "jsonl"}, timeout=30)
    assert r.ok, r.text
    return [json.loads(line) for line in r.text.splitlines()]


def check_output(store: HdfsArtifactStore, base: str, job: dict, out: str, n: int,
                 bad: set[int]) -> None:
    names = store.list(out)  # a done job's output is complete: _SUCCESS is there already
    assert job["status"] == "done" and "_SUCCESS" in names, (job["status"], names)
    parts = sorted(x for x in names if x.startswith("part-"))
    assert parts == [f"part-{i:05d}.jsonl" for i in range(job["chunks"]["total"])], names
    assert not [x for x in names if x.startswith(".tmp-")], names  # no half-written files
    success = json.loads(store.read_bytes(f"{out}/_SUCCESS"))
    assert success == {"job_id": job["id"], "input_rows": n, "output_rows": n - len(bad),
                       "rejected_rows": len(bad)}
    rejected = [json.loads(x) for x in store.read_bytes(f"{out}/_REJECTED.jsonl").splitlines()]
    assert sorted(r["row"] for r in rejected) == sorted(bad)
    api_rows = all_results(base, job["id"])
    part_rows = []
    for i, name in enumerate(parts):
        rows = [json.loads(x) for x in store.read_bytes(f"{out}/{name}").splitlines()]
        assert rows == api_rows[i * CHUNK:(i + 1) * CHUNK], name  # each part = its chunk
        part_rows += rows
    assert len(part_rows) + len(rejected) == n
    assert sorted([r["row"] for r in part_rows] + [r["row"] for r in rejected]) == list(range(n))
    assert all(set(r) >= {"row", "label", "spam_probability", "truncated", "model_version"}
               for r in part_rows)


def test_hdfs_input_to_hdfs_output(hdfs_job_env):
    base, store, _ = hdfs_job_env
    n, bad = 600, {5, 123, 350, 599}
    store.write_bytes("in/sms.csv", sample_csv(n, bad))
    r = requests.post(f"{base}/v1/jobs", json={"hdfs_input": "/in/sms.csv", "column": "text",
                                              "hdfs_output": "/out/ok"}, timeout=30)
    assert r.status_code == 202, r.text
    assert r.json()["rejected"] == len(bad)
    job = wait_for_job(base, f"/v1/jobs/{r.json()['id']}", timeout=180)
    assert job["status"] == "done", job
    assert job["output"] == "out/ok"
    assert job["chunks"]["total"] == 6
    check_output(store, base, job, "out/ok", n, bad)
    # a new job may not write into an output that already holds files: 409, nothing touched
    before = store.files("out/ok")
    again = requests.post(f"{base}/v1/jobs", json={"hdfs_input": "/in/sms.csv",
                                                   "hdfs_output": "/out/ok"}, timeout=30)
    assert again.status_code == 409 and again.json()["field"] == "hdfs_output", again.text
    assert "_SUCCESS" in again.json()["message"] or "part-" in again.json()["message"]
    assert store.files("out/ok") == before


def test_hdfs_input_validation(hdfs_job_env):
    base, store, _ = hdfs_job_env
    post = lambda body: requests.post(f"{base}/v1/jobs", json=body, timeout=30)  # noqa: E731
    r = post({"hdfs_input": "/in/missing.csv", "hdfs_output": "/out/x"})
    assert r.status_code == 422 and r.json()["field"] == "hdfs_input", r.text
    r = post({"hdfs_input": "/in/sms.csv"})
    assert r.status_code == 422 and r.json()["field"] == "hdfs_output", r.text
    r = post({"hdfs_input": "/in/sms.parquet", "hdfs_output": "/out/x"})
    assert r.status_code == 422 and r.json()["field"] == "format", r.text
    r = post({"hdfs_input": "../etc/passwd", "hdfs_output": "/out/x"})
    assert r.status_code == 422 and r.json()["field"] == "hdfs_input", r.text


def test_part_write_failure_fails_job_and_resume_completes(hdfs_job_env):
    """A real HDFS refusal: part-00001.jsonl is a non-empty directory, so the rename over it
    fails on every try. The job fails, no temp file is left; once the obstacle is gone a
    resubmission with the same Idempotency-Key re-sends that chunk and the output completes."""
    base, store, _ = hdfs_job_env
    n, bad = 350, {7}
    store.write_bytes("in/fail.csv", sample_csv(n, bad))
    store.write_bytes("out/fail/part-00001.jsonl/blocker", b"x")
    body = {"hdfs_input": "in/fail.csv", "hdfs_output": "out/fail"}
    headers = {"Idempotency-Key": f"hdfs-{uuid.uuid4().hex}"}
    r = requests.post(f"{base}/v1/jobs", json=body, headers=headers, timeout=30)
    assert r.status_code == 202, r.text
    job = wait_for_job(base, f"/v1/jobs/{r.json()['id']}", timeout=180)
    assert job["status"] == "failed", job
    assert "chunk 1" in job["error"], job
    time.sleep(1.0)  # chunks in flight finish writing their parts
    names = store.list("out/fail")
    assert "_SUCCESS" not in names and not [x for x in names if x.startswith(".tmp-")], names

    store.delete("out/fail/part-00001.jsonl", recursive=True)
    r = requests.post(f"{base}/v1/jobs", json=body, headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["resent_chunks"] >= 1, r.text
    job = wait_for_job(base, f"/v1/jobs/{job['id']}", timeout=180)
    assert job["status"] == "done", job
    check_output(store, base, job, "out/fail", n, bad)
