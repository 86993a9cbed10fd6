"""spamq/jobs/store_submit.py: store jobs planned by the service the API calls, over the app's
one artifact store client."""

from __future__ import annotations

import json
from types import SimpleNamespace

import fakeredis
import pytest

from api import create_app
from spamq.errors import Unavailable
from spamq.jobs.schema import DONE, RUNNING
from spamq.jobs.store import JobStore
from spamq.jobs.store_submit import SharedArtifacts, StoreJobPlanner
from spamq.settings import Settings
from spamq.storage.artifacts import LocalArtifactStore


def request(hdfs_input: str, hdfs_output: str) -> SimpleNamespace:
    return SimpleNamespace(hdfs_input=hdfs_input, hdfs_output=hdfs_output, column="text",
                           id_column=None, keep_columns=[], format=None, output_format=None,
                           deadline=lambda: None)


@pytest.fixture
def world(tmp_path):
    settings = Settings(artifact_dir=tmp_path, auth_required=False)
    jobs = JobStore(fakeredis.FakeRedis(), ttl_s=600)
    artifacts = SharedArtifacts(settings)
    sent: list = []
    planner = StoreJobPlanner(settings, jobs, artifacts)
    return SimpleNamespace(root=tmp_path, jobs=jobs, artifacts=artifacts, planner=planner,
                           sent=sent, send=lambda name, **kw: sent.append((name, kw)))


def test_an_empty_store_job_is_not_done_before_its_success_file(world, monkeypatch):
    (world.root / "in").mkdir()
    (world.root / "in" / "empty.jsonl").write_bytes(b"")  # no rows: no split
    store = world.artifacts.get()
    seen = []
    real_write = LocalArtifactStore.write_bytes_atomic

    def write(self, path, data):  # the job's status while _SUCCESS is being written
        seen.append((path, world.jobs.jobs.status(job_id[0]) if job_id else None))
        return real_write(self, path, data)

    job_id: list[str] = []
    real_commit = world.jobs.jobs.commit

    def commit(pipe, fields, taken, **kw):  # the new job's id, as it is stored
        job_id.append(fields["id"])
        return real_commit(pipe, fields, taken, **kw)

    monkeypatch.setattr(world.jobs.jobs, "commit", commit)
    monkeypatch.setattr(type(store), "write_bytes_atomic", write)
    job = world.planner.submit(request("in/empty.jsonl", "out/empty"), send_task=world.send,
                               owner=None, idempotency_key=None, request_sha="")
    assert seen == [("out/empty/_SUCCESS", RUNNING)]  # not done while _SUCCESS is missing
    assert job.status == DONE and world.jobs.jobs.get(job.id).status == DONE
    success = json.loads((world.root / "out" / "empty" / "_SUCCESS").read_text())
    assert success["input_rows"] == 0 and success["splits"] == 0
    assert success["inputs"] == [{"path": "in/empty.jsonl", "size": 0,
                                  "mtime": success["inputs"][0]["mtime"]}]
    assert world.jobs.jobs.counts()["done"] == 1 and world.sent == []


def test_a_store_job_is_planned_and_its_first_splits_sent(world):
    (world.root / "in").mkdir()
    (world.root / "in" / "rows.jsonl").write_text('{"text": "hello"}\n{"text": "win"}\n')
    job = world.planner.submit(request("in/rows.jsonl", "out/rows"), send_task=world.send,
                               owner=None, idempotency_key=None, request_sha="")
    assert job.kind == "store" and job.chunks_total == 1 and job.status != DONE
    assert [name for name, _ in world.sent] == ["spamq.score_split"]
    assert not (world.root / "out" / "rows" / "_SUCCESS").exists()


def test_the_app_builds_one_artifact_client_and_reuses_it(tmp_path, monkeypatch):
    import spamq.jobs.store_submit as store_submit

    built = []
    real = store_submit.artifact_store_from_settings

    def counting(settings):
        built.append(settings)
        return real(settings)

    monkeypatch.setattr(store_submit, "artifact_store_from_settings", counting)
    settings = Settings(artifact_dir=tmp_path, auth_required=False)
    jobs = JobStore(fakeredis.FakeRedis(), ttl_s=600)
    app = create_app(settings, store=jobs, send_task=lambda *a, **k: None)
    assert built == []  # nothing is built (or connected) with the app
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.csv").write_text("text\nhello\n")
    client = app.test_client()
    for i in range(3):
        resp = client.post("/v1/jobs", json={"hdfs_input": "in/rows.csv",
                                             "hdfs_output": f"out/{i}", "column": "text"})
        assert resp.status_code == 202, resp.get_json()
        assert client.get(f"/v1/jobs/{resp.get_json()['id']}/results").status_code == 200
    assert len(built) == 1


def test_an_unusable_artifact_store_is_a_503_and_is_tried_again(tmp_path, monkeypatch):
    import spamq.jobs.store_submit as store_submit

    calls = []

    def broken(settings):
        calls.append(1)
        raise RuntimeError("no hdfs client library")

    monkeypatch.setattr(store_submit, "artifact_store_from_settings", broken)
    shared = SharedArtifacts(Settings(artifact_dir=tmp_path))
    for _ in range(2):
        with pytest.raises(Unavailable) as err:
            shared.get()
        assert err.value.public_message == "the artifact store is not available"
    assert len(calls) == 2
