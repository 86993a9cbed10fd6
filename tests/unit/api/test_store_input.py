"""A store job (hdfs_input, or an upload; spamq/jobs/store_submit.py) takes deadline_s like any
job, and the worker's split tasks keep it: splits picked up after it are skipped, the job
expires."""

import io
import time

import pytest

from spamq.jobs.schema import EXPIRED
from spamq.storage.artifacts import LocalArtifactStore
from tests.helpers.api import run_all


@pytest.fixture(autouse=True)
def _input(ctx):
    """A 40-row JSON Lines file in the store (tests/unit/conftest.py's ctx)."""
    root = ctx[3]
    (root / "in").mkdir()
    (root / "in" / "a.jsonl").write_text("".join(f'{{"text": "row {i}"}}\n' for i in range(40)))


def _submit_json(client, out):
    return client.post("/v1/jobs", json={"hdfs_input": "in/a.jsonl", "hdfs_output": out,
                                         "deadline_s": 30})


def _submit_upload(client, out):
    data = {"file": (io.BytesIO(b"".join(b'{"text": "row %d"}\n' % i for i in range(40))),
                     "in.jsonl"), "deadline_s": "30"}
    return client.post("/v1/jobs", data=data, content_type="multipart/form-data")


@pytest.mark.parametrize("submit", [_submit_json, _submit_upload])
def test_a_store_job_keeps_its_deadline(ctx, submit):
    client, jobs, tasks, root = ctx
    artifacts = LocalArtifactStore(root)
    resp = submit(client, "out/in-time")
    assert resp.status_code == 202, resp.get_json()
    job = jobs.jobs.get(resp.get_json()["id"])
    assert time.time() + 25 < job.deadline < time.time() + 31
    assert job.chunks_total > 2
    run_all(jobs, tasks, artifacts)
    assert jobs.jobs.get(job.id).status == "done"  # scored within its deadline


@pytest.mark.parametrize("submit", [_submit_json, _submit_upload])
def test_a_store_job_past_its_deadline_expires_without_scoring(ctx, submit, monkeypatch):
    client, jobs, tasks, root = ctx
    artifacts = LocalArtifactStore(root)
    job_id = submit(client, "out/late").get_json()["id"]
    later = time.time() + 60
    monkeypatch.setattr("worker.resilience.time.time", lambda: later)
    run_all(jobs, tasks, artifacts)
    job = jobs.jobs.get(job_id)
    assert job.status == EXPIRED and "deadline" in job.error and job.done == 0
    view = client.get(f"/v1/jobs/{job_id}").get_json()
    assert view["status"] == "expired" and view["progress"]["done"] == 0
    assert client.get(f"/v1/jobs/{job_id}/parts").get_json()["parts"] == []
