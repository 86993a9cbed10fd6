import fakeredis

from spamq.jobs import JobStore
from worker.sweeper import Sweeper


def result() -> dict:
    return {"label": "ham", "spam_probability": 0.1, "truncated": False, "model_version": "v"}


def test_a_stalled_job_gets_its_lost_chunks_resent_and_finished_jobs_leave_the_set():
    store = JobStore(fakeredis.FakeRedis(), ttl_s=600)
    job, _ = store.create(["a", "b", "c", "d", "e"], chunk_size=2, queue="q")
    store.store_chunk(job.id, 0, [result(), result()], model_version="v")
    store.try_lease(job.id, 1, "someone", ttl_s=60)  # chunk 1 is being scored
    sent = []
    sweeper = Sweeper(store, lambda j, c, q: sent.append((j, c.index, c.start, c.stop, q)),
                      stall_s=10)
    assert sweeper.sweep_once(now=0) == 0  # first sight: progress recorded
    assert sweeper.sweep_once(now=5) == 0  # not stalled long enough
    assert sweeper.sweep_once(now=11) == 1
    assert sent == [(job.id, 2, 4, 5, "q")]  # chunk 2 only: chunk 1 holds a live lease
    assert sweeper.sweep_once(now=12) == 0  # the clock restarts after a re-send
    store.store_chunk(job.id, 1, [result(), result()], model_version="v")
    store.store_chunk(job.id, 2, [result()], model_version="v")
    assert store.get(job.id).status == "done"
    sweeper.sweep_once(now=30)
    assert store.active_jobs() == []


def test_progress_resets_the_stall_clock():
    store = JobStore(fakeredis.FakeRedis(), ttl_s=600)
    job, _ = store.create(["a", "b", "c"], chunk_size=1, queue="q")
    sent = []
    sweeper = Sweeper(store, lambda *a: sent.append(a), stall_s=10)
    sweeper.sweep_once(now=0)
    store.store_chunk(job.id, 0, [result()], model_version="v")
    assert sweeper.sweep_once(now=9) == 0
    assert sweeper.sweep_once(now=15) == 0  # moved at 9: stalled only 6 s
    assert sweeper.sweep_once(now=20) == 2 and len(sent) == 2
