"""The job watch on fakeredis, over the real JobStore: a job's end becomes one event, once."""

from __future__ import annotations

import json
import time

import fakeredis
import pytest

from spamq.jobs.schema import (
    WEBHOOK_WATCH_KEY,
    check_event_id,
    webhook_due_key,
    webhook_lane,
)
from spamq.jobs.store import JobStore
from spamq.jobs.store_jobs import StoreJobs
from spamq.jobs.view import job_view
from spamq.settings import Settings
from spamq.webhooks.outbox import Outbox
from spamq.webhooks.request import Webhook
from spamq.webhooks.watch import JobWatch, end_event_id, event_view
from tests.helpers.api import File, Split
from tests.helpers.webhooks import Clock

KID = "0123456789abcdef"
RESULT = {"label": "ham", "spam_probability": 0.1, "truncated": False, "model_version": "v1"}


class World:
    def __init__(self) -> None:
        self.r = fakeredis.FakeRedis()
        settings = Settings(job_ttl_s=600, webhook_progress_interval_s=0.001)
        self.jobs = JobStore(self.r, ttl_s=600)
        self.outbox = Outbox(self.r, settings, clock=Clock())
        self.watch = JobWatch(self.r, self.outbox)

    def job(self, n: int = 2, chunk_size: int = 10,
            events: tuple[str, ...] = ("job.completed", "job.failed", "job.cancelled",
                                       "job.expired")) -> str:
        job, _ = self.jobs.jobs.create(["hi"] * n, chunk_size=chunk_size, queue="q", owner=KID)
        self.outbox.subscribe(job.id, Webhook("https://x.example/h", events), KID)
        return job.id

    def events(self) -> list[tuple[str, dict]]:
        return [(e.id, json.loads(e.body)) for e in self.outbox.claim("t", 100)]

    def watched(self) -> set[str]:
        return {m.decode() for m in self.r.smembers(WEBHOOK_WATCH_KEY)}


@pytest.fixture
def w() -> World:
    return World()


def test_a_done_job_is_told_once_without_its_results(w):
    job = w.job()
    assert w.watched() == {job}
    assert w.watch.run_once() == 0 and w.events() == []  # queued: nothing yet
    w.jobs.results.store_chunk_next(job, 0, [RESULT, RESULT], model_version="v1")
    assert w.watch.run_once() == 1
    [(event_id, body)] = w.events()
    ended = w.jobs.jobs.get(job)
    assert event_id == end_event_id(ended, "job.completed") == check_event_id(event_id)
    assert body["type"] == "job.completed"
    # the job's public view (GET /v1/jobs/<id>, spamq/jobs/view.py), without inline results
    assert body["data"] == job_view(ended) and "results" not in body["data"]
    assert {k: body["data"][k] for k in ("id", "status", "progress", "rejected",
                                         "model_version", "output", "error", "results_url")} == {
        "id": job, "status": "done", "progress": {"done": 2, "total": 2}, "rejected": 0,
        "model_version": "v1", "output": None, "error": None,
        "results_url": f"/v1/jobs/{job}/results"}
    assert w.watched() == set()
    assert w.watch.run_once() == 0 and w.r.zcard(webhook_due_key(webhook_lane(KID))) == 1  # only
    # the claimed one


@pytest.mark.parametrize(("end", "event_type"), [
    (lambda jobs, job: jobs.jobs.fail(job, "the model broke"), "job.failed"),
    (lambda jobs, job: jobs.jobs.cancel(job), "job.cancelled"),
    (lambda jobs, job: jobs.jobs.expire(job), "job.expired"),
])
def test_each_end_has_its_event(w, end, event_type):
    job = w.job()
    end(w.jobs, job)
    assert w.watch.run_once() == 1
    [(_, body)] = w.events()
    assert (body["type"], body["data"]["id"]) == (event_type, job)
    assert body["data"]["status"] == w.jobs.jobs.get(job).status
    if event_type == "job.failed":
        assert body["data"]["error"] == "the model broke"


def test_an_end_not_asked_for_only_stops_the_watch(w):
    job = w.job(events=("job.failed",))
    w.jobs.results.store_chunk_next(job, 0, [RESULT, RESULT], model_version="v1")
    assert w.watch.run_once() == 0
    assert w.events() == [] and w.watched() == set()


def test_watched_again_after_a_crash_or_by_two_deliverers_enqueues_nothing_new(w):
    job = w.job()
    w.jobs.jobs.cancel(job)
    second = JobWatch(w.r, w.outbox)  # another deliverer, looking at the same time
    assert w.watch.run_once() + second.run_once() == 1
    w.r.sadd(WEBHOOK_WATCH_KEY, job)  # as if the job had never left the set
    assert w.watch.run_once() == 0
    assert [body["type"] for _, body in w.events()] == ["job.cancelled"]


def test_an_expired_job_leaves_the_watch(w):
    job = w.job()
    w.r.delete(f"spamq:job:{job}")
    assert w.watch.run_once() == 0 and w.watched() == set() and w.events() == []


def test_progress_when_the_done_count_moves_if_asked(w):
    job = w.job(n=3, chunk_size=1, events=("job.progress", "job.completed"))
    quiet = w.job(n=3, chunk_size=1, events=("job.completed",))
    for j in (job, quiet):
        w.jobs.results.store_chunk_next(j, 0, [RESULT], model_version="v1")
    seen = []
    for chunk in (None, 1, 2):  # None: not moved since the last look
        if chunk is not None:
            time.sleep(0.01)  # past the throttle
            w.jobs.results.store_chunk_next(job, chunk, [RESULT], model_version="v1")
        w.watch.run_once()
        seen += [(body["type"], body["data"]["id"], body["data"]["progress"]["done"])
                 for _, body in w.events()]
    assert seen == [("job.progress", job, 1), ("job.progress", job, 2),
                    ("job.completed", job, 3)]
    assert w.watched() == {quiet}


def test_a_store_job_ends_the_same_way(w):
    stores = StoreJobs(w.jobs)
    job, _ = stores.create([File("in/a.csv", 100)], [Split(0), Split(0)], {}, queue="q",
                           owner=KID, idempotency_key=None, output="out/a", deadline=None,
                           window=2, quote_pass=False)
    w.outbox.subscribe(job.id, Webhook("https://x.example/h", ("job.completed",)), KID)
    stores.split_done(job.id, 0, rows=3, rejected=1, nbytes=40, model_version="v1")
    running = event_view(w.jobs.jobs.get(job.id))
    assert running["progress"] == {"done": 3, "total": None, "bytes_done": 40,
                                   "bytes_total": 100}
    assert w.watch.run_once() == 0
    assert stores.split_done(job.id, 1, rows=2, rejected=0, nbytes=60, model_version="v1")[0] == 2
    assert w.watch.run_once() == 0  # its last part is in, but _SUCCESS is not written yet
    w.jobs.jobs.output_done(job.id)
    assert w.watch.run_once() == 1
    [(_, body)] = w.events()
    assert body["type"] == "job.completed" and body["data"]["output"] == "out/a"
    assert body["data"]["progress"] == {"done": 5, "total": 5, "bytes_done": 100,
                                        "bytes_total": 100}
    assert body["data"]["rejected"] == 1


def test_a_resumed_job_that_ends_again_is_a_new_event(w):
    job = w.job()
    w.jobs.jobs.fail(job, "boom")
    w.watch.run_once()
    first = w.jobs.jobs.get(job)
    [(first_id, _)] = w.events()
    w.jobs.leases.resume(job)
    w.outbox.subscribe(job, Webhook("https://x.example/h", ("job.failed",)), KID)
    time.sleep(0.01)
    w.jobs.jobs.fail(job, "boom again")
    assert w.watch.run_once() == 1
    [(second_id, _)] = w.events()
    assert first_id == end_event_id(first, "job.failed")
    assert second_id == end_event_id(w.jobs.jobs.get(job), "job.failed") != first_id
