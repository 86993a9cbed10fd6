"""Bounded planning of store jobs: a plan is capped at max_splits_per_job (row groups merged,
then the split size grown), written in bounded pipelines (never one MULTI), planned by the plan
task when its Parquet footers are large, and a submission that fails leaves nothing behind."""

import io
import json
import os

import fakeredis
import kombu.exceptions
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api import create_app
from spamq.jobs.store import JobStore
from spamq.jobs.store_jobs import PLAN_BATCH, StoreJobs
from spamq.settings import Settings
from spamq.storage import splits
from spamq.storage.artifacts import LocalArtifactStore
from tests.helpers.api import Tasks, WinScorer
from worker.split_tasks import SplitScorer, plan_job, plan_quotes
from worker.tasks import public_error


def parquet_bytes(n: int, *, row_group_size: int = 1, first: int = 0) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(first, first + n)),
                             "text": [f"message {i}" for i in range(first, first + n)]}),
                   sink, row_group_size=row_group_size)
    return sink.getvalue()


def read_all(store, files, plan):
    return [(s.file, r.ref, r.extra.get("id"), r.text) for s in plan
            for r in splits.read_split(store, files[s.file], s, column="text", id_column="id")]


@pytest.fixture
def store(tmp_path):
    return LocalArtifactStore(tmp_path)


# ------------------------------------------------------------------------------ the plan


def test_a_plan_within_the_cap_keeps_a_split_per_row_group(store):
    store.write_bytes("in/a.parquet", parquet_bytes(50))
    files = splits.list_input(store, "in")
    plan = splits.plan_splits(store, files, split_bytes=1 << 20, max_splits=50)
    assert [(s.row_group, s.last_group) for s in plan] == [(g, None) for g in range(50)]


def test_over_the_cap_consecutive_row_groups_merge_and_every_row_is_read_once(store):
    store.write_bytes("in/a.parquet", parquet_bytes(50))
    store.write_bytes("in/b.parquet", parquet_bytes(30, first=50))
    files = splits.list_input(store, "in")
    one_each = splits.plan_splits(store, files, split_bytes=1 << 20)
    assert len(one_each) == 80
    sizes = [s.length for s in one_each]
    # split_bytes of about ten row groups: merged up to it, 80 groups fit a cap of 20
    plan = splits.plan_splits(store, files, split_bytes=sum(sizes[:10]), max_splits=20)
    assert 2 <= len(plan) <= 20
    assert [s.index for s in plan] == list(range(len(plan)))
    covered = [(s.file, g) for s in plan for g in s.row_groups()]
    assert covered == [(0, g) for g in range(50)] + [(1, g) for g in range(30)]
    assert any(s.last_group is not None for s in plan)
    rows = read_all(store, files, plan)
    assert [(f, ref, i) for f, ref, i, _ in rows] == \
        [(0, i, i) for i in range(50)] + [(1, i, 50 + i) for i in range(30)]
    # merged splits are read as the row groups they name: the same rows as one split each
    assert rows == read_all(store, files, one_each)
    json.loads(json.dumps(plan[0].__dict__))  # a split is still a flat JSON record


def test_the_split_size_grows_until_the_plan_fits(store):
    store.write_bytes("in/a.parquet", parquet_bytes(64))
    store.write_bytes("in/t.jsonl", b"".join(b'{"text": "row %d", "id": %d}\n' % (i, i)
                                             for i in range(200)))
    pq_files = splits.list_input(store, "in/a.parquet")
    plan = splits.plan_splits(store, pq_files, split_bytes=1, max_splits=4)
    assert len(plan) <= 4 and [g for s in plan for g in s.row_groups()] == list(range(64))
    assert [r[2] for r in read_all(store, pq_files, plan)] == list(range(64))
    text = splits.list_input(store, "in/t.jsonl")
    plan = splits.plan_splits(store, text, split_bytes=7, max_splits=3)
    assert len(plan) <= 3 and plan[0].start == 0
    assert sum(s.length for s in plan) == text[0].size  # contiguous, the whole file
    assert [r[2] for r in read_all(store, text, plan)] == list(range(200))


def test_more_files_than_the_cap_is_a_422_naming_hdfs_input(store):
    for k in range(4):
        store.write_bytes(f"in/p{k}.jsonl", b'{"text": "x"}\n')
    files = splits.list_input(store, "in")
    with pytest.raises(splits.InputError) as err:
        splits.plan_splits(store, files, split_bytes=100, max_splits=3)
    assert err.value.field == "hdfs_input" and "at most 3" in err.value.message
    assert len(splits.plan_splits(store, files, split_bytes=100, max_splits=4)) == 4


def test_the_default_cap():
    assert Settings().max_splits_per_job == 10_000
    assert Settings().max_input_files <= Settings().max_splits_per_job


@pytest.mark.parametrize("data", [
    os.urandom(4000),  # no Parquet ending
    b"PAR1" + os.urandom(300) + (200).to_bytes(4, "little") + b"PAR1",  # a garbage footer
    b"PAR1" + b"\x00" * 300 + (200).to_bytes(4, "little") + b"PAR1",
])
def test_a_garbage_parquet_file_is_an_input_error(store, data):
    store.write_bytes("in/bad.parquet", data)
    files = splits.list_input(store, "in")
    with pytest.raises(splits.InputError) as err:
        splits.sniff(store, files[0], column="text")
        splits.plan_splits(store, files, split_bytes=100)
    assert err.value.field == "hdfs_input"
    assert err.value.message == "an input file is not a readable Parquet file"


def test_the_footer_size_is_read_from_the_last_8_bytes(store):
    data = parquet_bytes(20)
    store.write_bytes("in/a.parquet", data)
    (f,) = splits.list_input(store, "in")
    assert splits.parquet_footer_bytes(store, f) == int.from_bytes(data[-8:-4], "little")
    store.write_bytes("in/b.parquet", data[:-1] + b"X")
    (_, b) = splits.list_input(store, "in")
    with pytest.raises(splits.InputError, match="not a readable Parquet file"):
        splits.parquet_footer_bytes(store, b)


# ------------------------------------------------------------------------ writes to Redis


class RecordingRedis(fakeredis.FakeRedis):
    """Records each RPUSH: (inside a MULTI?, how many values)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pushes = []

    def pipeline(self, transaction=True, shard_hint=None):
        pipe = super().pipeline(transaction, shard_hint)
        push = pipe.rpush

        def rpush(name, *values):
            self.pushes.append((transaction, len(values)))
            return push(name, *values)

        pipe.rpush = rpush
        return pipe


def _inputs(n_files, n_splits):
    files = [splits.InputFile(f"in/p{k}.csv", 10, 0, "csv") for k in range(n_files)]
    plan = [splits.Split(i, 0, i, 1) for i in range(n_splits)]
    return files, plan


def test_a_plan_is_written_in_bounded_pipelines_not_one_multi():
    r = RecordingRedis()
    jobs = JobStore(r, ttl_s=600)
    files, plan = _inputs(3, 2 * PLAN_BATCH + 500)
    job, first = StoreJobs(jobs).create(
        files, plan, {"column": "text"}, queue="bulk", owner=None, idempotency_key=None,
        output="out/x", deadline=None, window=4, quote_pass=False)
    assert [t for t, _ in r.pushes] == [False] * 4  # 1 for the files, 3 for the splits
    assert sorted(n for _, n in r.pushes) == [3, 500, PLAN_BATCH, PLAN_BATCH]
    assert r.llen(f"spamq:job:{job.id}:splits") == len(plan) and first == [0, 1, 2, 3]
    assert json.loads(r.lindex(f"spamq:job:{job.id}:splits", -1))["index"] == len(plan) - 1
    assert jobs.jobs.get(job.id).chunks_total == len(plan)


def test_the_plan_task_writes_its_plan_in_bounded_pipelines_then_the_job_counts_it():
    r = RecordingRedis()
    jobs = JobStore(r, ttl_s=600)
    files, plan = _inputs(2, PLAN_BATCH + 1)
    store_jobs = StoreJobs(jobs)
    job, first = store_jobs.create(
        files, [], {"column": "text"}, queue="bulk", owner="k1", idempotency_key=None,
        output="out/x", deadline=None, window=4, quote_pass=False, planning=True)
    assert first == [] and store_jobs.planning(job.id)
    seen = jobs.jobs.get(job.id)
    assert seen.status == "queued" and seen.chunks_total == 0 and not seen.finished
    assert job.id in jobs.jobs.active()
    r.pushes.clear()
    assert store_jobs.store_plan(job.id, plan)
    assert r.pushes == [(False, PLAN_BATCH), (False, 1)]
    assert not store_jobs.planning(job.id) and jobs.jobs.get(job.id).chunks_total == len(plan)
    assert len(store_jobs.splits(job.id)) == len(plan)
    assert not store_jobs.store_plan(job.id, plan)  # planned once: a second attempt is a no-op
    assert len(store_jobs.splits(job.id)) == len(plan)
    assert [k for k in r.keys("spamq:job:*") if b":plan-" in k] == []


class BrokenSend(Tasks):
    def __call__(self, name, *, args, queue, headers=None):
        raise kombu.exceptions.OperationalError("broker down")


def _api(tmp_path, send_task, **overrides):
    settings = Settings(artifact_dir=tmp_path, auth_required=False, **overrides)
    r = fakeredis.FakeRedis()
    jobs = JobStore(r, ttl_s=600)
    return create_app(settings, store=jobs, send_task=send_task).test_client(), jobs, r


def test_a_submission_that_fails_after_its_job_is_stored_leaves_nothing_behind(tmp_path, store):
    store.write_bytes("in/a.jsonl", b'{"text": "hello"}\n' * 10)
    client, jobs, r = _api(tmp_path, BrokenSend())
    body = {"hdfs_input": "in/a.jsonl", "hdfs_output": "out/a"}
    headers = {"Idempotency-Key": "k-1"}
    resp = client.post("/v1/jobs", json=body, headers=headers)
    assert resp.status_code == 503, resp.get_json()
    assert r.keys("spamq:job:*") == [] and r.keys("spamq:output:*") == []
    assert r.keys("spamq:idem:*") == [] and jobs.jobs.active() == []
    assert jobs.jobs.counts()["submitted"] == 0
    # the key and the output are free: the retry makes a new job
    client.application.extensions["spamq"]["send_task"] = Tasks()
    again = client.post("/v1/jobs", json=body, headers=headers)
    assert again.status_code == 202 and "existing" not in again.get_json(), again.get_json()


def test_a_job_whose_plan_cannot_be_stored_leaves_nothing_behind(monkeypatch):
    r = fakeredis.FakeRedis()
    jobs = JobStore(r, ttl_s=600)
    files, plan = _inputs(2, 2500)
    calls = []

    def failing_commit(pipe, fields, taken, **_):
        calls.append(fields["id"])
        raise ConnectionError("redis went away")

    monkeypatch.setattr(jobs.jobs, "commit", failing_commit)
    with pytest.raises(ConnectionError):
        StoreJobs(jobs).create(files, plan, {"column": "text"}, queue="bulk", owner=None,
                               idempotency_key="k", output="out/x", deadline=None, window=4,
                               quote_pass=False)
    assert calls and r.keys("*") == []  # the files, splits and spec written before: gone


# ------------------------------------------------------------------ planning in the worker


def _run(jobs, tasks, artifacts, settings):
    """Run the queued tasks as a worker would (the plan task: plan_job, then the quotes)."""
    scorer = SplitScorer(jobs, artifacts, WinScorer(), max_chars=5000)
    while tasks.sent:
        name, args = tasks.sent.pop(0)
        if name == "spamq.plan_store_job":
            plan_job(jobs, artifacts, args[0], split_bytes=settings.split_bytes,
                     max_splits=settings.max_splits_per_job,
                     footers_max_files=settings.plan_footers_max_files)
            plan_quotes(jobs, artifacts, args[0])
            sent = jobs.leases.advance(args[0], 10**6)
            tasks.sent += [("spamq.score_split", [args[0], i]) for i in sent]
        else:
            scorer.run(args[0], args[1])


def test_large_footers_are_planned_by_the_plan_task_within_the_cap(tmp_path, store):
    for k in range(3):
        store.write_bytes(f"in/p{k}.parquet", parquet_bytes(40, first=40 * k))
    tasks = Tasks()
    client, jobs, r = _api(tmp_path, tasks, plan_footers_max_bytes=100, max_splits_per_job=6)
    resp = client.post("/v1/jobs", json={"hdfs_input": "in/*.parquet", "hdfs_output": "out/p",
                                         "id_column": "id", "output_format": "jsonl"})
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["id"]
    assert tasks.sent == [("spamq.plan_store_job", [job_id])]  # no footer read in the request
    view = client.get(f"/v1/jobs/{job_id}").get_json()
    assert view["status"] == "queued" and view["chunks"]["total"] == 0
    settings = client.application.extensions["spamq"]["settings"]
    _run(jobs, tasks, store, settings)
    job = jobs.jobs.get(job_id)
    assert job.status == "done" and 3 <= job.chunks_total <= 6, job
    ids = [json.loads(line)["id"] for name in sorted(store.list("out/p"))
           if name.startswith("part-") for line in store.read_bytes(f"out/p/{name}").splitlines()]
    assert ids == list(range(120))  # every row exactly once, in order


def test_small_parquet_inputs_are_still_planned_in_the_request(tmp_path, store):
    store.write_bytes("in/p.parquet", parquet_bytes(12, row_group_size=4))
    tasks = Tasks()
    client, jobs, _ = _api(tmp_path, tasks)
    resp = client.post("/v1/jobs", json={"hdfs_input": "in/p.parquet", "hdfs_output": "out/p"})
    assert resp.status_code == 202
    # a split per row group, as before
    assert jobs.jobs.get(resp.get_json()["id"]).chunks_total == 3
    assert [name for name, _ in tasks.sent] == ["spamq.score_split"] * 3


def test_a_garbage_parquet_file_is_a_422_at_submit_leaving_no_job(tmp_path, store):
    secret = b"TOP-SECRET-CONTENT" * 50
    store.write_bytes("in/bad.parquet", secret)
    client, jobs, r = _api(tmp_path, Tasks())
    resp = client.post("/v1/jobs", json={"hdfs_input": "in/bad.parquet",
                                         "hdfs_output": "out/bad"})
    body = resp.get_json()
    assert resp.status_code == 422 and body["field"] == "hdfs_input", body
    assert body["message"] == "an input file is not a readable Parquet file"
    assert b"TOP-SECRET" not in resp.data and r.keys("spamq:job:*") == []


def test_a_garbage_parquet_file_met_by_the_plan_task_fails_the_job_with_the_reason(
        tmp_path, store):
    store.write_bytes("in/p0.parquet", parquet_bytes(10))
    # ends like Parquet (so the request's 8-byte probe passes), but its footer is garbage
    store.write_bytes("in/p1.parquet", b"PAR1" + b"\x07" * 300 + (200).to_bytes(4, "little")
                      + b"PAR1")
    tasks = Tasks()
    client, jobs, r = _api(tmp_path, tasks, plan_footers_max_bytes=10)
    resp = client.post("/v1/jobs", json={"hdfs_input": "in", "hdfs_output": "out/g"})
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["id"]
    settings = client.application.extensions["spamq"]["settings"]
    with pytest.raises(splits.InputError) as err:
        plan_job(jobs, store, job_id, split_bytes=settings.split_bytes, max_splits=100,
                 footers_max_files=32)
    reason = f"planning failed: {public_error(err.value)}"
    assert reason == "planning failed: hdfs_input: an input file is not a readable Parquet file"
    assert StoreJobs(jobs).planning(job_id)  # nothing stored: a retry plans it again



def test_a_job_that_ended_before_its_plan_is_planned_when_resubmitted(tmp_path, store):
    for k in range(2):
        store.write_bytes(f"in/p{k}.parquet", parquet_bytes(10, first=10 * k))
    tasks = Tasks()
    client, jobs, _ = _api(tmp_path, tasks, plan_footers_max_bytes=10)
    body = {"hdfs_input": "in", "hdfs_output": "out/r", "id_column": "id",
            "output_format": "jsonl"}
    headers = {"Idempotency-Key": "plan-again"}
    job_id = client.post("/v1/jobs", json=body, headers=headers).get_json()["id"]
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 200
    tasks.sent.clear()  # the plan task finds it cancelled and does nothing
    resp = client.post("/v1/jobs", json=body, headers=headers)
    assert resp.status_code == 200 and resp.get_json()["id"] == job_id, resp.get_json()
    assert tasks.sent == [("spamq.plan_store_job", [job_id])]  # resumed: planned now
    settings = client.application.extensions["spamq"]["settings"]
    _run(jobs, tasks, store, settings)
    assert jobs.jobs.get(job_id).status == "done" and jobs.jobs.get(job_id).done == 20
