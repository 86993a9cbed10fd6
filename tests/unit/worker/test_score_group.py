"""score_group: single-chunk jobs from one message, scored in one pass and stored once each."""

import time

import fakeredis

from spamq.jobs.schema import CANCELLED, DONE, EXPIRED
from spamq.jobs.store import JobStore
from tests.helpers.worker import FakeScorer
from worker.tasks import score_group


def _jobs(store, texts_per_job, **create):
    made = [store.jobs.create(texts, chunk_size=32, queue="q", **create) for texts in texts_per_job]
    return [(job.id, plan[0]) for job, plan in made]


def test_every_job_of_a_group_gets_its_own_results_from_one_pass(store):
    texts = [["a1"], ["b1", "b2", "b3"], ["c1"], ["d1", "d2"]]
    items = _jobs(store, texts)
    scorer = FakeScorer()
    assert score_group(store, scorer, items) == 4
    assert scorer.passes == 1  # one batcher submission for the whole group
    for (job_id, _), own in zip(items, texts, strict=True):
        assert store.jobs.get(job_id).status == DONE
        assert [r["text"] for r in store.results.results(job_id)] == own


def test_a_redelivered_group_scores_nothing_twice(store):
    items = _jobs(store, [["a"], ["b"]])
    scorer = FakeScorer()
    assert score_group(store, scorer, items) == 2
    assert score_group(store, scorer, items) == 0
    assert scorer.passes == 1


def test_cancelled_and_expired_jobs_are_skipped_and_the_rest_scored(store):
    items = _jobs(store, [["keep"], ["cancel me"], ["late"]])
    store.jobs.cancel(items[1][0])
    late = store.jobs.create(["late"], chunk_size=32, queue="q", deadline=time.time() - 1)
    items[2] = (late[0].id, late[1][0])
    assert score_group(store, FakeScorer(), items) == 1
    assert [store.jobs.get(j).status for j, _ in items] == [DONE, CANCELLED, EXPIRED]


def test_a_poison_text_fails_only_its_own_item(store):
    items = _jobs(store, [["fine"], ["BAD text"], ["also fine"]])
    assert score_group(store, FakeScorer(), items) == 3
    errors = [store.results.results(j)[0].get("error") for j, _ in items]
    assert errors[0] is None and errors[2] is None and "model blew up" in errors[1]


def test_a_job_gone_from_redis_is_dropped_and_the_others_stored(store):
    items = _jobs(store, [["a"], ["gone"]])
    store.redis.delete(*[k.decode() for k in store.redis.keys(f"*{items[1][0]}*")])
    assert score_group(store, FakeScorer(), items) == 1
    assert store.jobs.get(items[0][0]).status == DONE


class CountingRedis(fakeredis.FakeRedis):
    """Counts calls into Redis (commands and pipeline executes)."""

    trips = 0

    def execute_command(self, *args, **options):
        CountingRedis.trips += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction=True, shard_hint=None):
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        def counted(*a, **k):
            CountingRedis.trips += 1
            return execute(*a, **k)

        pipe.execute = counted
        return pipe


def test_a_group_costs_the_same_round_trips_for_one_job_as_for_twenty():
    """Leases taken and freed in one trip each, one claim and one store: a group's Redis
    cost does not grow with its size (it did: a lease round trip per job, each way)."""
    trips = {}
    for n in (1, 20):
        store = JobStore(CountingRedis(), ttl_s=600)
        items = _jobs(store, [[f"t{i}"] for i in range(n)])
        CountingRedis.trips = 0
        assert score_group(store, FakeScorer(), items) == n
        trips[n] = CountingRedis.trips
        assert all(store.jobs.get(j).status == DONE for j, _ in items)
        assert store.jobs.active() == []  # a finished job leaves the sweeper's set itself
    assert trips[1] == trips[20]


def test_scripts_are_reloaded_when_redis_lost_them(store):
    """Pipelined scripts go as EVALSHA without a SCRIPT EXISTS trip first; after a Redis
    restart (script cache empty) they are loaded again and the pipeline runs once more."""
    items = _jobs(store, [["a"], ["b"]])
    store.redis.script_flush()
    assert score_group(store, FakeScorer(), items) == 2
    assert [r["text"] for r in store.results.results(items[1][0])] == ["b"]
