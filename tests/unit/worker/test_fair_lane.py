"""The interactive lane across keys: a group message holding several keys' jobs is scored
as one batcher submission per key, each key's results stored as soon as its rows are done."""

import threading
import time
from concurrent.futures import Future
from contextlib import nullcontext

import fakeredis

from spamq.jobs.schema import DONE, RUNNING
from spamq.jobs.store import JobStore
from tests.helpers.worker import Pred
from worker.tasks import score_chunk, score_group


class HeldScorer:
    """Answers every key at once, except ``slow``'s, which waits for ``release``."""

    def __init__(self, slow: str):
        self.slow = slow
        self.release = threading.Event()
        self.owners: list[str] = []

    def expect(self):
        return nullcontext()

    def submit(self, texts, *, interactive=True, owner=""):
        self.owners.append(owner)
        fut: Future = Future()
        result = [Pred(t) for t in texts]
        if owner == self.slow:
            threading.Thread(target=lambda: (self.release.wait(5), fut.set_result(result)),
                             daemon=True).start()
        else:
            fut.set_result(result)
        return fut


def test_a_keys_job_is_stored_while_another_keys_rows_are_still_scoring():
    store = JobStore(fakeredis.FakeRedis(), ttl_s=600)
    flood = [store.jobs.create(["a"] * 256, chunk_size=256, queue="q", owner="key-a")
             for _ in range(3)]
    lone = store.jobs.create(["hello"], chunk_size=256, queue="q", owner="key-b")
    items = [(job.id, plan[0]) for job, plan in [*flood[:2], lone, flood[2]]]
    scorer = HeldScorer(slow="key-a")
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(score_group(store, scorer, items)))
    worker.start()
    deadline = time.monotonic() + 5
    while store.jobs.get(lone[0].id).status != DONE and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.jobs.get(lone[0].id).status == DONE  # key-b's text is in, key-a's still scoring
    assert all(store.jobs.get(job.id).status != DONE for job, _ in flood)
    scorer.release.set()
    worker.join(5)
    assert done == [4]
    assert sorted(scorer.owners) == ["key-a", "key-b"]  # one submission per key
    assert [store.results.results(job.id)[0]["text"] for job, _ in flood] == ["a"] * 3


def test_a_chunk_is_submitted_under_its_jobs_owner():
    store = JobStore(fakeredis.FakeRedis(), ttl_s=600)
    job, plan = store.jobs.create(["x", "y"], chunk_size=256, queue="q", owner="key-c")
    scorer = HeldScorer(slow="")
    assert score_chunk(store, scorer, job.id, plan[0])
    assert scorer.owners == ["key-c"]
    assert store.jobs.get(job.id).status not in (RUNNING,)
