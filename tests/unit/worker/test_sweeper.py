import json

import fakeredis

from spamq.jobs.queue import CHUNK_HEADER, UNACKED, UNACKED_INDEX
from spamq.jobs.store import JobStore, chunk_plan
from worker.sweeper import Sweeper


def result() -> dict:
    return {"label": "ham", "spam_probability": 0.1, "truncated": False, "model_version": "v"}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def message(job_id: str, index: int) -> bytes:
    """A chunk message as kombu's Redis transport stores it (headers in a JSON envelope)."""
    return json.dumps({"body": "...", "headers": {"task": "spamq.score_chunk",
                                                  CHUNK_HEADER: f"{job_id}:{index}"}}).encode()


def setup(texts=5, chunk_size=2, **create):
    r = fakeredis.FakeRedis()
    store = JobStore(r, ttl_s=600)
    job, _ = store.jobs.create(["t"] * texts, chunk_size=chunk_size, queue="q", **create)
    sent: list[tuple] = []
    clock = Clock(job.created_at)

    def sweeper(name="w1"):
        def send(job, indices):
            plan = chunk_plan(job.total, job.chunk_size)
            sent.extend((job.id, i, plan[i].start, plan[i].stop, job.queue) for i in indices)

        return Sweeper(store, send, name=name, queues=["q"], every_s=2, lost_after_s=5, clock=clock)

    return r, store, job, sent, clock, sweeper


def take_turn(r) -> None:
    r.delete("spamq:sweep:turn")  # the next sweep may run at once (the turn lasts a period)


def test_a_dead_workers_leases_are_freed_and_their_chunks_resent_at_once():
    r, store, job, sent, clock, sweeper = setup()
    store.workers.beat("alive:1", {"name": "alive:1"}, ttl_s=60)
    store.leases.try_leases([(job.id, 0, "alive:1|t0")], ttl_s=60)
    # its worker's heartbeat has lapsed:
    store.leases.try_leases([(job.id, 1, "dead:2|t1")], ttl_s=60)
    r.lpush("q", message(job.id, 2))  # chunk 2 waits in the queue
    assert sweeper().sweep_once() == 1
    assert sent == [(job.id, 1, 2, 4, "q")]
    assert store.leases.lease_holders(job.id, [0, 1]) == ["alive:1|t0", None]


def test_a_lost_message_is_resent_once_the_job_has_not_moved_for_lost_after_s():
    r, store, job, sent, clock, sweeper = setup()
    store.results.store_chunk_next(job.id, 0, [result(), result()], model_version="v")
    r.lpush("q", message(job.id, 1))  # waiting: not lost; chunk 2's message vanished
    clock.now += 4
    assert sweeper().sweep_once() == 0  # moved 4 s ago: not yet
    take_turn(r)
    clock.now += 2
    assert sweeper().sweep_once() == 1 and sent == [(job.id, 2, 4, 5, "q")]


def test_unacked_messages_count_while_fresh_and_are_orphans_once_old_without_a_lease():
    r, store, job, sent, clock, sweeper = setup(texts=4)
    clock.now += 10
    r.hset(UNACKED, mapping={"tag0": json.dumps([json.loads(message(job.id, 0)), "", "q"]),
                             "tag1": json.dumps([json.loads(message(job.id, 1)), "", "q"])})
    r.zadd(UNACKED_INDEX, {"tag0": clock.now - 1, "tag1": clock.now - 60})
    assert sweeper().sweep_once() == 1
    assert [s[1] for s in sent] == [1]  # delivered a minute ago and never leased: orphaned


def test_one_sweeper_per_period_cluster_wide():
    r, store, job, sent, clock, sweeper = setup()
    store.leases.try_leases([(job.id, 0, "dead:1|t")], ttl_s=60)
    assert sweeper("w1").sweep_once() == 1
    store.leases.try_leases([(job.id, 0, "dead:1|t")], ttl_s=60)
    assert sweeper("w2").sweep_once() == 0  # w1's turn still runs
    take_turn(r)
    assert sweeper("w2").sweep_once() == 1


def test_only_sent_chunks_are_considered_and_finished_jobs_leave_the_active_set():
    r, store, job, sent, clock, sweeper = setup(texts=10, chunk_size=2, window=2)
    assert store.jobs.get(job.id).chunks_sent == 2
    clock.now += 60
    assert sweeper().sweep_once() == 2 and {s[1] for s in sent} == {0, 1}
    for index in range(5):
        store.results.store_chunk_next(job.id, index, [result(), result()], model_version="v")
    assert store.jobs.get(job.id).status == "done"
    take_turn(r)
    sweeper().sweep_once()
    assert store.jobs.active() == []


def test_a_corrupt_job_is_logged_and_skipped_and_the_others_are_swept(caplog):
    r, store, job, sent, clock, sweeper = setup()
    bad, _ = store.jobs.create(["t"], chunk_size=1, queue="q")
    r.hset(f"spamq:job:{bad.id}", "total", "finished_at")  # as the cross-key write left it
    store.leases.try_leases([(job.id, 0, "dead:1|t")], ttl_s=60)
    assert sweeper().sweep_once() == 1 and sent[0][:2] == (job.id, 0)
    assert "job skipped" in caplog.text


def test_the_feedback_retention_step_runs_at_the_first_turn_then_once_per_period():
    r, store, job, sent, clock, _ = setup()
    calls: list[float] = []

    def feedback(now: float) -> int:
        calls.append(now)
        if len(calls) == 2:
            raise OSError("store down")  # logged; the sweep goes on
        return 1

    sweeper = Sweeper(store, lambda job, indices: None, name="w1", queues=["q"], every_s=2,
                      lost_after_s=5, clock=clock, feedback=feedback, feedback_every_s=100)
    start = clock.now
    for step in (0, 50, 99, 100, 150, 200):
        clock.now = start + step
        take_turn(r)
        sweeper.sweep_once()
    assert calls == [start, start + 100, start + 200]
