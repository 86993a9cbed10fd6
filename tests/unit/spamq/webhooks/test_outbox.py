"""The outbox on fakeredis: enqueue, claim and lease, retry schedule, dead letters, resend."""

from __future__ import annotations

import json
import random

import fakeredis
import pytest

from spamq.jobs.schema import (
    WEBHOOK_DUE_KEY,
    WEBHOOK_LANES_KEY,
    EventNotFound,
    JobNotFound,
    check_event_id,
    webhook_due_key,
    webhook_event_key,
)
from spamq.settings import Settings
from spamq.webhooks.outbox import (
    DEAD,
    DELIVERED,
    GONE,
    RETRY,
    Event,
    Outbox,
    backoff_s,
    new_event_id,
)
from spamq.webhooks.request import Webhook, build_event
from tests.helpers.webhooks import JOB, VIEW, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(clock) -> Outbox:
    s = Settings(webhook_lease_s=30, webhook_attempts_kept=3, job_ttl_s=600,
                 webhook_progress_interval_s=5)
    return Outbox(fakeredis.FakeRedis(), s, clock=clock)


def subscribed(outbox: Outbox, *events: str) -> Outbox:
    outbox.subscribe(JOB, Webhook("https://x.example/h", events or ("job.completed",)),
                     "0123456789abcdef")
    return outbox


@pytest.mark.parametrize("attempt", [1, 2, 3, 8, 12, 40, 2000])
def test_backoff_is_full_jitter_within_the_cap(attempt):
    cap = min(3600.0, 10.0 * 2.0 ** min(attempt - 1, 64))
    rng = random.Random(attempt)
    waits = [backoff_s(attempt, base_s=10, max_s=3600, rng=rng.random) for _ in range(500)]
    assert all(0 <= w <= cap for w in waits)
    assert max(waits) > 0.9 * cap and min(waits) < 0.1 * cap  # spread over the whole range
    assert backoff_s(attempt, base_s=10, max_s=3600, rng=lambda: 0.999999) <= cap


def test_default_schedule_spans_hours():
    s = Settings()
    caps = [min(s.webhook_backoff_max_s, s.webhook_backoff_base_s * 2 ** (n - 1))
            for n in range(1, s.webhook_max_attempts)]
    assert 2 * 3600 < sum(caps) < 24 * 3600  # worst case under the job retention


def test_notify_only_what_was_asked_and_body_without_results(outbox):
    assert outbox.notify(JOB, "job.completed", VIEW) is None  # no webhook
    subscribed(outbox, "job.completed")
    assert outbox.notify(JOB, "job.failed", VIEW) is None
    event_id = outbox.notify(JOB, "job.completed", VIEW)
    assert check_event_id(event_id) == event_id
    [event] = outbox.claim("t", 10)
    assert (event.id, event.type, event.job_id, event.key_id, event.attempts) == (
        event_id, "job.completed", JOB, "0123456789abcdef", 1)
    body = json.loads(event.body)
    assert body["type"] == "job.completed" and body["timestamp"].endswith("Z")
    assert "results" not in body["data"] and body["data"]["results_url"] == VIEW["results_url"]
    assert body["data"]["progress"] == {"done": 3, "total": 3}


def test_progress_is_throttled(outbox):
    subscribed(outbox, "job.progress")
    assert outbox.notify(JOB, "job.progress", VIEW)
    assert outbox.notify(JOB, "job.progress", VIEW) is None  # within the interval
    assert outbox._r.pttl(f"spamq:job:{JOB}:webhook_progress") > 4000


def test_claim_leases_and_a_lapsed_lease_is_claimed_again(outbox, clock):
    event_id = subscribed(outbox).notify(JOB, "job.completed", VIEW)
    [first] = outbox.claim("dead-deliverer", 10)
    assert outbox.claim("other", 10) == []  # leased
    clock.now += 31  # the first deliverer died: its lease ends
    [again] = outbox.claim("other", 10)
    assert (again.id, again.attempts, again.body) == (event_id, 2, first.body)
    record = {"attempt": 1, "status": 200}
    assert not outbox.finish(first, "dead-deliverer", DELIVERED, record)  # fenced out
    assert outbox.finish(again, "other", DELIVERED, {"attempt": 2, "status": 200})
    assert outbox.attempts(JOB) == [{"attempt": 2, "status": 200}]
    assert outbox.claim("other", 10) == [] and outbox.oldest_age_s() == 0
    assert outbox.stats() == {"delivered": 1, "retry": 0, "gone": 0, "dead": 0}


def test_retry_then_dead_then_resend(outbox, clock):
    event_id = subscribed(outbox).notify(JOB, "job.completed", VIEW)
    clock.now += 5
    [e] = outbox.claim("t", 1)
    assert outbox.oldest_age_s() == 5
    assert outbox.finish(e, "t", RETRY, {"attempt": 1}, next_due=clock.now + 60)
    assert outbox.claim("t", 1) == []  # not due yet
    clock.now += 60
    [e] = outbox.claim("t", 1)
    assert e.attempts == 2
    assert outbox.finish(e, "t", DEAD, {"attempt": 2})
    assert outbox.claim("t", 1) == [] and outbox.oldest_age_s() == 0
    assert [(d["id"], d["attempts"]) for d in outbox.dead()] == [(event_id, 2)]
    assert outbox._r.ttl(webhook_event_key(event_id)) > 0  # dead letters expire

    assert outbox.resend(event_id)
    assert not outbox.resend(event_id)  # no longer dead
    assert outbox.dead() == []
    [e] = outbox.claim("t", 1)
    assert (e.id, e.attempts, e.base) == (event_id, 3, 2)  # numbering goes on; a new budget
    assert outbox._r.ttl(webhook_event_key(event_id)) == -1
    with pytest.raises(EventNotFound):
        outbox.resend("msg_../../x")


def test_gone_stops_the_jobs_later_events(outbox):
    subscribed(outbox, "job.completed", "job.progress")
    outbox.notify(JOB, "job.progress", VIEW)
    [e] = outbox.claim("t", 1)
    assert outbox.finish(e, "t", GONE, {"attempt": 1, "status": 410})
    assert outbox.notify(JOB, "job.completed", VIEW) is None
    assert outbox._r.exists(webhook_event_key(e.id)) == 0


def test_attempt_records_are_bounded_and_expire(outbox):
    subscribed(outbox)
    outbox.notify(JOB, "job.completed", VIEW)
    for n in range(1, 6):
        [e] = outbox.claim("t", 1)
        outbox.finish(e, "t", RETRY, {"attempt": n}, next_due=0)
    assert [r["attempt"] for r in outbox.attempts(JOB)] == [3, 4, 5]  # kept: 3
    assert 0 < outbox._r.ttl(f"spamq:job:{JOB}:webhook_attempts") <= 600


def test_keys_come_from_checked_ids_only(outbox):
    with pytest.raises(JobNotFound):
        outbox.attempts("../../etc")
    with pytest.raises(JobNotFound):
        outbox.subscribe("x" * 32, Webhook("https://x.example/", ("job.failed",)), None)
    with pytest.raises(EventNotFound):
        outbox.enqueue(Event("msg_1", "job.failed", JOB, "-", "https://x.example/", "{}"))
    outbox._r.zadd(webhook_due_key("-"), {"msg_" + "0" * 32: 0})  # its hash is gone: dropped
    outbox._r.zadd(WEBHOOK_LANES_KEY, {"-": 0})
    assert outbox.claim("t", 5) == [] and outbox._r.zcard(webhook_due_key("-")) == 0
    assert outbox._r.zcard(WEBHOOK_LANES_KEY) == 0  # an empty lane leaves the index


def test_build_event_rejects_unknown_types():
    with pytest.raises(ValueError, match="unknown webhook event"):
        build_event("job.exploded", VIEW)


def test_enqueue_of_a_stored_id_changes_nothing(outbox, clock):
    event = Event("msg_" + "1" * 32, "job.failed", JOB, "-", "https://x.example/", "{}")
    assert outbox.enqueue(event) == event.id
    clock.now += 50
    assert outbox.enqueue(Event(event.id, "job.completed", JOB, "-", "https://y.example/",
                                "[]")) is None
    [claimed] = outbox.claim("t", 5)
    assert (claimed.type, claimed.url, outbox.oldest_age_s()) == ("job.failed",
                                                                  "https://x.example/", 50)


KEY_A, KEY_B = "a" * 16, "b" * 16


def _enqueue(outbox: Outbox, key_id: str, n: int) -> list[str]:
    return [outbox.enqueue(Event(new_event_id(), "job.completed", JOB, key_id,
                                 "https://x.example/h", "{}")) for _ in range(n)]


def test_claim_takes_the_keys_in_turns_within_each_keys_share(outbox, clock):
    """Key A's ten events came first; one claim of 8 with a share of 2 per key takes two of
    A's and B's one, in turns (A's older head first), and a key at its share gets none."""
    a = sorted(_enqueue(outbox, KEY_A, 10))  # due at the same time: in id order
    clock.now += 1
    [b] = _enqueue(outbox, KEY_B, 1)
    got = [e.id for e in outbox.claim("t", 8, cap=2)]
    assert got == [a[0], b, a[1]]
    assert outbox.claim("t", 8, busy={KEY_A: 2}, cap=2) == []
    assert [e.id for e in outbox.claim("t", 8, busy={KEY_A: 1}, cap=2)] == [a[2]]
    [b2] = _enqueue(outbox, KEY_B, 1)  # B's new event is not behind A's eight waiting ones
    assert [e.id for e in outbox.claim("t", 1, busy={KEY_A: 2}, cap=2)] == [b2]
    assert [e.id for e in outbox.claim("t", 3, cap=8)] == a[3:6]  # no share: in due order


def test_a_finished_lane_leaves_the_index_and_a_retry_comes_back(outbox, clock):
    [a] = _enqueue(outbox, KEY_A, 1)
    [e] = outbox.claim("t", 1)
    assert outbox.finish(e, "t", RETRY, {"attempt": 1}, next_due=clock.now + 60)
    assert outbox.claim("t", 1) == []
    clock.now += 61
    [e] = outbox.claim("t", 1)
    assert e.id == a and outbox.finish(e, "t", DELIVERED, {"attempt": 2})
    assert outbox._r.zcard(WEBHOOK_LANES_KEY) == 0
    assert outbox._r.exists(webhook_due_key(KEY_A)) == 0


def test_events_of_the_outbox_before_lanes_move_into_their_lanes(outbox, clock):
    [a] = _enqueue(outbox, KEY_A, 1)
    [b] = _enqueue(outbox, "-", 1)
    for event_id, key_id in ((a, KEY_A), (b, "-")):  # as the outbox kept them before lanes
        outbox._r.zrem(webhook_due_key(key_id), event_id)
        outbox._r.zadd(WEBHOOK_DUE_KEY, {event_id: clock.now - 5})
    outbox._r.delete(WEBHOOK_LANES_KEY)
    outbox._r.zadd(WEBHOOK_DUE_KEY, {"not-an-event": 0})
    assert outbox.claim("t", 5) == []
    assert outbox.move_to_lanes() == 2 and outbox._r.exists(WEBHOOK_DUE_KEY) == 0
    assert sorted(e.id for e in outbox.claim("t", 5)) == sorted([a, b])
