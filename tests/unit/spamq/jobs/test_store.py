import pytest

from spamq.jobs.schema import DONE, FAILED, QUEUED, RUNNING
from spamq.jobs.store import JobNotFound, JobStore, chunk_plan


def stored(store: JobStore, job_id: str, chunk: int, rows: list[dict], version: str) -> bool:
    """Store one chunk's results as a task does; whether it was stored now."""
    return store.results.store_chunk_next(job_id, chunk, rows, model_version=version)[0]


def result(label: str, p: float) -> dict:
    return {"label": label, "spam_probability": p, "truncated": False, "model_version": "v1"}


def test_chunk_plan_covers_every_item_once():
    plan = chunk_plan(1000, 256)
    assert [(c.start, c.stop) for c in plan] == [(0, 256), (256, 512), (512, 768), (768, 1000)]
    assert [c.index for c in plan] == [0, 1, 2, 3]
    assert chunk_plan(1, 256)[0].stop == 1


def test_create_stores_texts_status_and_ttl(store: JobStore):
    texts = [f"text {i}" for i in range(2500)]
    job, plan = store.jobs.create(texts, chunk_size=1000, queue="q")
    assert len(job.id) == 32 and int(job.id, 16) >= 0  # 128-bit hex
    got = store.jobs.get(job.id)
    assert (got.status, got.total, got.done, got.chunks_total) == (QUEUED, 2500, 0, 3)
    assert store.results.texts(job.id, 1000, 1003) == ["text 1000", "text 1001", "text 1002"]
    assert 590 <= store.redis.ttl(f"spamq:job:{job.id}") <= 600
    assert 590 <= store.redis.ttl(f"spamq:job:{job.id}:texts") <= 600


def test_job_ids_are_unique(store: JobStore):
    ids = {store.jobs.create(["a"], chunk_size=1, queue="q")[0].id for _ in range(50)}
    assert len(ids) == 50


def test_results_in_order_and_done_when_every_chunk_is_stored(store: JobStore):
    job, plan = store.jobs.create(["a", "b", "c"], chunk_size=2, queue="q")
    assert store.results.claim(job.id, 0, 2).texts == ["a", "b"]
    assert store.jobs.get(job.id).status == RUNNING
    # chunks may finish out of order
    assert stored(store, job.id, 1, [result("spam", 0.9)], "v1")
    assert store.jobs.get(job.id).status == RUNNING
    assert store.jobs.get(job.id).done == 1
    assert stored(store, job.id, 0, [result("ham", 0.1), result("ham", 0.2)], "v1")
    job_now = store.jobs.get(job.id)
    assert (job_now.status, job_now.done, job_now.model_version) == (DONE, 3, "v1")
    assert job_now.finished_at is not None and job_now.started_at is not None
    assert [r["spam_probability"] for r in store.results.results(job.id)] == [0.1, 0.2, 0.9]
    page = store.results.results(job.id, offset=1, limit=1)
    assert [r["spam_probability"] for r in page] == [0.2]


def test_a_chunk_stored_twice_is_kept_once(store: JobStore):
    job, _ = store.jobs.create(["a", "b"], chunk_size=1, queue="q")
    assert stored(store, job.id, 0, [result("ham", 0.1)], "v1") is True
    assert stored(store, job.id, 0, [result("spam", 0.99)], "v2") is False
    got = store.jobs.get(job.id)
    assert (got.done, got.chunks_done, got.status) == (1, 1, RUNNING)
    assert store.results.results(job.id) == [result("ham", 0.1)]


def test_wait_returns_when_done_and_times_out_otherwise(store: JobStore):
    job, _ = store.jobs.create(["a"], chunk_size=1, queue="q")
    assert store.results.wait_for(job.id, 0.05)[0].status == QUEUED
    stored(store, job.id, 0, [result("ham", 0.1)], "v1")
    assert store.results.wait_for(job.id, 5)[0].status == DONE


def test_fail_marks_the_job_failed_once(store: JobStore):
    job, _ = store.jobs.create(["a", "b"], chunk_size=1, queue="q")
    assert store.jobs.fail(job.id, "chunk 0 failed: boom") is True
    assert store.jobs.fail(job.id, "again") is False
    got = store.jobs.get(job.id)
    assert (got.status, got.error, got.chunks_failed) == (FAILED, "chunk 0 failed: boom", 1)
    # a late chunk does not turn a failed job into a done one
    stored(store, job.id, 0, [result("ham", 0.1)], "v1")
    stored(store, job.id, 1, [result("ham", 0.1)], "v1")
    assert store.jobs.get(job.id).status == FAILED


def test_unknown_or_expired_job(store: JobStore):
    with pytest.raises(JobNotFound):
        store.jobs.get("0" * 32)
    job, _ = store.jobs.create(["a"], chunk_size=1, queue="q")
    store.redis.delete(f"spamq:job:{job.id}")  # what expiry does
    with pytest.raises(JobNotFound):
        stored(store, job.id, 0, [result("ham", 0.1)], "v1")


def test_worker_heartbeats(store: JobStore):
    assert store.workers.heartbeats() == []
    store.workers.beat("w1", {"name": "w1", "model_version": "v1"}, ttl_s=5)
    assert store.workers.heartbeats() == [{"name": "w1", "model_version": "v1"}]
    store.workers.forget("w1")
    assert store.workers.heartbeats() == []


def test_claim_reads_status_and_texts_and_marks_running(store: JobStore):
    job, _ = store.jobs.create(["a", "b", "c"], chunk_size=2, queue="q")
    # the status before the claim
    assert store.results.claim(job.id, 2, 3) == (QUEUED, ["c"], None, "")
    assert store.jobs.get(job.id).status == RUNNING
    assert store.results.claim("0" * 32, 0, 1) == (None, [], None, "")
    late, _ = store.jobs.create(["a"], chunk_size=1, queue="q", deadline=1234.5)
    assert store.results.claim(late.id, 0, 1).deadline == 1234.5


def test_try_lease_says_whether_the_chunk_is_stored_in_the_same_round_trip(store: JobStore):
    job, _ = store.jobs.create(["a", "b"], chunk_size=1, queue="q")
    assert store.leases.try_leases([(job.id, 0, "t1")], ttl_s=60) == [(True, False)]
    assert store.leases.try_leases([(job.id, 0, "t2")], ttl_s=60) == [(False, False)]  # t1 has it
    stored(store, job.id, 0, [result("ham", 0.1)], "v1")
    assert store.leases.try_leases([(job.id, 0, "t2")], ttl_s=60) == [(False, True)]
    assert 590 <= store.redis.ttl(f"spamq:job:{job.id}:results") <= 600  # set by the store script


def test_cancel_keeps_stored_chunks_and_blocks_completion(store: JobStore):
    from spamq.jobs.schema import CANCELLED

    job, _ = store.jobs.create(["a", "b"], chunk_size=1, queue="q")
    stored(store, job.id, 0, [result("ham", 0.1)], "v1")
    assert store.jobs.cancel(job.id) is True and store.jobs.cancel(job.id) is False
    stored(store, job.id, 1, [result("ham", 0.2)], "v1")
    got = store.jobs.get(job.id)
    assert got.status == CANCELLED and got.finished
    assert store.results.wait_for(job.id, 0.1)[0].status == CANCELLED
    with pytest.raises(JobNotFound):
        store.jobs.cancel("0" * 32)


def test_idempotency_key_names_one_job(store: JobStore):
    from spamq.jobs.store import DuplicateJob

    job, _ = store.jobs.create(["a"], chunk_size=1, queue="q", idempotency_key="k1")
    assert store.jobs.job_for_key("k1") == job.id
    with pytest.raises(DuplicateJob) as exc:
        store.jobs.create(["a"], chunk_size=1, queue="q", idempotency_key="k1")
    assert exc.value.job_id == job.id


def test_resume_returns_only_missing_chunks_of_a_failed_job(store: JobStore):
    job, _ = store.jobs.create(["a", "b", "c"], chunk_size=1, queue="q")
    stored(store, job.id, 1, [result("ham", 0.1)], "v1")
    assert store.leases.resume(job.id) == []  # not failed: nothing to do
    store.jobs.fail(job.id, "chunk 0 failed")
    assert store.leases.resume(job.id) == [0, 2]
    assert store.jobs.get(job.id).status == RUNNING
    stored(store, job.id, 0, [result("ham", 0.1)], "v1")
    stored(store, job.id, 2, [result("ham", 0.1)], "v1")
    assert store.jobs.get(job.id).status == DONE


def test_result_rows_name_each_text_and_skip_unstored_chunks(store: JobStore):
    job, _ = store.jobs.create(["a", "b", "c"], chunk_size=2, queue="q")
    assert store.results.result_rows(job, 0, 3) == []
    stored(store, job.id, 1, [result("spam", 0.9)], "v1")
    assert store.results.result_rows(job, 0, 3) == [{"row": 2, **result("spam", 0.9)}]
    stored(store, job.id, 0, [result("ham", 0.1), result("ham", 0.2)], "v1")
    assert [r["row"] for r in store.results.result_rows(job, 0, 3)] == [0, 1, 2]
    assert [r["row"] for r in store.results.result_rows(job, 1, 2)] == [1]


def test_each_part_of_the_store_has_at_most_20_public_methods(store: JobStore):
    parts = [store, store.jobs, store.leases, store.results, store.workers]
    for part in parts:
        public = [n for n in dir(type(part)) if not n.startswith("_")
                  and callable(getattr(type(part), n))]
        assert 0 < len(public) <= 20, (type(part).__name__, public)


def test_a_part_reloads_its_scripts_when_redis_lost_them(store: JobStore):
    job, _ = store.jobs.create(["a"], chunk_size=1, queue="q")
    store.redis.script_flush()  # a restarted Redis: no script cached
    assert store.results.claim_many([(job.id, 0, 1)])[0].texts == ["a"]
    assert store.jobs.get(job.id).status == RUNNING
    assert stored(store, job.id, 0, [result("ham", 0.1)], "v1")
