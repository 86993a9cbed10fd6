"""score_chunk under faults: leases, duplicate deliveries, deadlines, poison input."""

import threading
import time

import pytest

from spamq.jobs.schema import EXPIRED
from tests.helpers.worker import FakeScorer
from worker.resilience import PoisonScorer, chunk_lease
from worker.tasks import score_chunk


def held(store, job_id, chunk):
    """Whether a lease on the chunk is held now."""
    return store.leases.lease_holders(job_id, [chunk])[0] is not None


def test_a_poison_item_gets_an_error_and_the_rest_are_scored(store):
    texts = [f"t{i}" for i in range(7)] + ["BAD one"] + [f"u{i}" for i in range(5)]
    job, plan = store.jobs.create(texts, chunk_size=13, queue="q")
    assert score_chunk(store, FakeScorer(), job.id, plan[0])
    results = store.results.results(job.id)
    assert [r.get("error") is not None for r in results] == [t.startswith("BAD") for t in texts]
    assert [r.get("text") for r in results if "text" in r] == [t for t in texts if t != "BAD one"]
    assert "model blew up" in results[7]["error"]
    assert store.jobs.get(job.id).status == "done" and store.jobs.get(job.id).done == 13


def test_poison_scorer_is_a_test_only_wrapper():
    fut = PoisonScorer(FakeScorer(), "@@poison@@").submit(["ok", "x @@poison@@"])
    with pytest.raises(ValueError):
        fut.result()


def test_a_second_delivery_neither_scores_nor_counts_twice(store):
    job, plan = store.jobs.create(["a", "b", "c"], chunk_size=3, queue="q")
    slow, fast = FakeScorer(delay_s=0.5), FakeScorer()
    first = threading.Thread(target=score_chunk, args=(store, slow, job.id, plan[0]))
    first.start()
    time.sleep(0.1)  # the first attempt holds the lease while it scores
    assert score_chunk(store, fast, job.id, plan[0]) is False  # waited, then found it stored
    first.join()
    assert fast.passes == 0 and slow.passes == 1
    assert score_chunk(store, fast, job.id, plan[0]) is False and fast.passes == 0
    got = store.jobs.get(job.id)
    assert (got.done, got.chunks_done, len(store.results.results(job.id))) == (3, 1, 3)


def test_a_dead_holders_lease_ends_and_the_redelivery_scores(store):
    job, plan = store.jobs.create(["a"], chunk_size=1, queue="q")
    # then SIGKILLed:
    assert store.leases.try_leases([(job.id, 0, "dead-attempt")], ttl_s=0.3) == [(True, False)]
    scorer = FakeScorer()
    assert score_chunk(store, scorer, job.id, plan[0], lease_s=5)
    assert scorer.passes == 1 and store.jobs.get(job.id).status == "done"
    assert not held(store, job.id, 0)  # released after storing


def test_lease_is_released_only_by_its_holder_and_names_its_worker(store):
    j = "ab" * 16
    with chunk_lease(store, j, 0, ttl_s=5, holder="host:123") as fresh:
        assert fresh and held(store, j, 0)
        store.leases.release_lease(j, 0, "someone-else")
        assert held(store, j, 0)
        (value,) = store.leases.lease_holders(j, [0])
        assert value.startswith("host:123|") and len(value) > len("host:123|")
    assert not held(store, j, 0)


def test_chunks_past_the_deadline_are_skipped_and_the_job_expires(store):
    job, plan = store.jobs.create(["a", "b", "c", "d"], chunk_size=2, queue="q",
                                  deadline=time.time() + 0.2)
    scorer = FakeScorer()
    assert score_chunk(store, scorer, job.id, plan[0])
    time.sleep(0.3)
    assert score_chunk(store, scorer, job.id, plan[1]) is False
    got = store.jobs.get(job.id)
    assert got.status == EXPIRED and got.finished and "deadline" in got.error
    assert scorer.passes == 1 and got.done == 2
    # a late store: no revival
    assert store.results.store_chunk_next(job.id, 1, [{}, {}], model_version="v1")[0]
    assert store.jobs.get(job.id).status == EXPIRED
    assert store.results.wait_for(job.id, 0.1)[0].status == EXPIRED


def test_a_running_attempts_lease_is_renewed_and_a_stale_one_lapses(store):
    from worker.resilience import LeaseBook

    j, book = "cd" * 16, LeaseBook()
    with chunk_lease(store, j, 0, ttl_s=0.3, holder="w", book=book):
        for _ in range(4):  # 0.6 s: twice the lease, kept alive by the renewals
            time.sleep(0.15)
            book.renew(store, ttl_s=0.3)
        assert held(store, j, 0)
        store.redis.set(f"spamq:lease:{j}:1", "w|gone", px=300)  # an attempt that never released
    book.renew(store, ttl_s=0.3)
    time.sleep(0.35)
    assert not held(store, j, 0) and not held(store, j, 1)
