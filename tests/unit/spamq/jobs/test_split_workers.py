"""Which worker committed each split of a store job (recorded with the commit, once), and the
splits scored more than once (rework after a worker died)."""

from __future__ import annotations

import fakeredis

from spamq.jobs.store import JobStore
from spamq.jobs.store_jobs import StoreJobs
from spamq.storage.artifacts import LocalArtifactStore
from tests.helpers.api import File, Split, WinScorer
from worker.split_tasks import SplitScorer


def _job(stores: StoreJobs, splits: int) -> str:
    job, _ = stores.create([File("in/a.csv", 100)], [Split(0)] * splits, {}, queue="q",
                           owner=None, idempotency_key=None, output="out/a", deadline=None,
                           window=splits, quote_pass=False)
    return job.id


def test_the_committing_worker_is_recorded_once_per_split():
    stores = StoreJobs(JobStore(fakeredis.FakeRedis(), ttl_s=600))
    job_id = _job(stores, 3)
    stores.split_done(job_id, 0, rows=3, rejected=0, nbytes=10, model_version="v",
                      worker="host-a:11")
    stores.split_done(job_id, 1, rows=3, rejected=0, nbytes=10, model_version="v",
                      worker="host-b:22")
    # a late second commit of split 1 (a re-sent copy) changes nothing
    assert stores.split_done(job_id, 1, rows=3, rejected=0, nbytes=10, model_version="v",
                             worker="host-c:33")[0] == 0
    stores.split_done(job_id, 2, rows=3, rejected=0, nbytes=10, model_version="v",
                      worker="host-a:11")
    assert stores.split_workers(job_id) == {0: "host-a:11", 1: "host-b:22", 2: "host-a:11"}
    assert stores.worker_counts(job_id) == {"host-a:11": 2, "host-b:22": 1}
    ttl = stores._r.ttl(f"spamq:job:{job_id}:split_workers")
    assert 0 < ttl <= 600


def test_rework_counts_the_attempts_beyond_the_first():
    stores = StoreJobs(JobStore(fakeredis.FakeRedis(), ttl_s=600))
    job_id = _job(stores, 3)
    for index in (0, 1, 1, 2, 2, 2):
        stores.split_start(job_id, index)  # each start counts an attempt
    stores.progress(job_id, 0, 17)  # rows in progress are not attempts
    assert stores.rework(job_id) == {1: 1, 2: 2}


def test_a_discarded_job_leaves_no_split_workers():
    stores = StoreJobs(JobStore(fakeredis.FakeRedis(), ttl_s=600))
    job_id = _job(stores, 1)
    stores.split_done(job_id, 0, rows=1, rejected=0, nbytes=1, model_version="v", worker="h:1")
    stores.discard(job_id, owner=None, idempotency_key=None, output="out/a")
    assert not stores._r.exists(f"spamq:job:{job_id}:split_workers")


def test_split_scorers_record_their_holder_and_parts_count_the_workers(ctx):
    client, jobs, tasks, root = ctx
    (root / "in").mkdir()
    (root / "in" / "sms.jsonl").write_text("".join(
        f'{{"id": {i}, "text": "message {i} WIN a prize"}}\n' for i in range(40)))
    resp = client.post("/v1/jobs", json={"hdfs_input": "in/sms.jsonl", "hdfs_output": "out/a",
                                         "id_column": "id"})
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["id"]
    artifacts = LocalArtifactStore(root)
    scorers = [SplitScorer(jobs, artifacts, WinScorer(), max_chars=5000, holder=name)
               for name in ("host-a:1", "host-b:2")]
    total = jobs.jobs.get(job_id).chunks_total
    assert total >= 4
    for index in range(total):
        assert scorers[index % 2].run(job_id, index)
    assert jobs.jobs.get(job_id).status == "done"
    stores = StoreJobs(jobs)
    assert stores.worker_counts(job_id) == {"host-a:1": (total + 1) // 2,
                                            "host-b:2": total // 2}
    assert stores.rework(job_id) == {}
    body = client.get(f"/v1/jobs/{job_id}/parts").get_json()
    assert body["workers"] == 2 and len(body["parts"]) == total
