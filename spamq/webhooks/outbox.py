"""The durable outbox: events wait in Redis until delivered, gone or dead.

Structure (keys and scripts in spamq/jobs/schema.py): one hash per event and, per API key, a
*lane*: a sorted set of its events' due times, indexed by the lanes' earliest due times. A
deliverer *claims* due events with a script that takes them in turns, one per lane due now per
round, skipping lanes that already have their share of attempts in flight
(``webhook_key_concurrency``), so one key's slow receiver or flood of events never holds up
another key's; it moves each one's due time to the end of a lease (``webhook_lease_s``) and
sets its token. Finishing an attempt (another script, only for the token's holder) schedules
the next try, moves it to the dead letters or deletes it. A deliverer that dies mid-attempt
leaves the event due again when its lease ends, so another takes it. A lane's sorted set serves
both the retry schedule (backoff over hours) and crash recovery, which a stream would need a
second structure for (XAUTOCLAIM knows idle time, not "due at"). The event id and body are
fixed at enqueue: every retry sends the same, and enqueuing an id already stored changes
nothing. Jobs reach the outbox through :meth:`Outbox.subscribe` (the API) and the job watch
(spamq/webhooks/watch.py), which enqueues their end events. Delivery is at least once:
receivers dedupe by ``webhook-id``.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis

from spamq.jobs import schema
from spamq.jobs.schema import (
    EVENT_ID,
    WEBHOOK_DEAD_KEY,
    WEBHOOK_DUE_KEY,
    WEBHOOK_LANES_KEY,
    WEBHOOK_PENDING_KEY,
    WEBHOOK_STATS_KEY,
    WEBHOOK_WATCH_KEY,
    check_event_id,
    check_job_id,
    webhook_due_key,
    webhook_event_key,
    webhook_keys,
    webhook_lane,
)
from spamq.jobs.store import JobStore
from spamq.settings import Settings
from spamq.webhooks.request import PROGRESS, Webhook, build_event, event_body

DELIVERED, RETRY, GONE, DEAD = "delivered", "retry", "gone", "dead"
OUTCOMES = (DELIVERED, RETRY, GONE, DEAD)
#: lanes a claim looks at (a lane is an API key with events due)
MAX_LANES = 1000


def backoff_s(attempt: int, *, base_s: float, max_s: float,
              rng: Callable[[], float] = random.random) -> float:
    """The wait after failed attempt ``attempt`` (1, 2, ...): full jitter,
    uniform in [0, min(max_s, base_s * 2**(attempt - 1)))."""
    return rng() * min(max_s, base_s * 2 ** min(attempt - 1, 64))


def new_event_id() -> str:
    return "msg_" + secrets.token_hex(16)


@dataclass(frozen=True)
class Event:
    """One event to post. ``attempts`` counts claims so far; ``base`` is where the current
    budget of ``webhook_max_attempts`` began (a resend starts a new one)."""

    id: str
    type: str
    job_id: str
    key_id: str
    url: str
    body: str
    attempts: int = 0
    base: int = 0

    @classmethod
    def from_hash(cls, event_id: str, raw: dict[str, str]) -> Event:
        return cls(event_id, raw["type"], raw["job_id"], raw["key_id"], raw["url"], raw["body"],
                   int(raw.get("attempts") or 0), int(raw.get("base") or 0))

    @property
    def lane(self) -> str:
        """The delivery lane: the key's (:func:`spamq.jobs.schema.webhook_lane`)."""
        return webhook_lane(self.key_id)


def _text(raw: dict[Any, Any]) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes)
                                                           else v) for k, v in raw.items()}


class Outbox:
    """Events in Redis. The client is handed in; nothing connects until a method is called."""

    def __init__(self, client: redis.Redis, settings: Settings, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._r, self._s, self._clock = client, settings, clock
        self._enqueue = client.register_script(schema.WEBHOOK_ENQUEUE)
        self._claim = client.register_script(schema.WEBHOOK_CLAIM)
        self._finish = client.register_script(schema.WEBHOOK_FINISH)
        self._resend = client.register_script(schema.WEBHOOK_RESEND)
        self._move = client.register_script(schema.WEBHOOK_MOVE)

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbox:
        return cls(JobStore.from_settings(settings).redis, settings)

    # --- the API and the worker ---------------------------------------------------------------

    def subscribe(self, job_id: str, webhook: Webhook, key_id: str | None) -> None:
        """Remember the job's webhook (POST /v1/jobs, after :func:`parse_webhook`) and watch the
        job for its end (:class:`spamq.webhooks.watch.JobWatch`)."""
        key = webhook_keys(job_id)[0]
        with self._r.pipeline() as pipe:
            pipe.hset(key, mapping={"url": webhook.url, "events": json.dumps(webhook.events),
                                    "key_id": key_id or "-"})
            pipe.expire(key, self._s.job_ttl_s)
            pipe.sadd(WEBHOOK_WATCH_KEY, job_id)
            pipe.execute()

    def notify(self, job_id: str, event_type: str, job_view: dict[str, Any], *,
               end_id: str | None = None) -> str | None:
        """Enqueue ``event_type`` for the job if its webhook asked for it; the event id, or None
        (no webhook, not subscribed, gone after a 410, or a progress event too soon).

        ``end_id``: the job has ended (the watch tells it): the event gets this id and the job
        leaves the watched set in the same step, so its end is enqueued once (None if it was
        already); a job whose webhook did not ask for the event just leaves the set."""
        sub, _, progress = webhook_keys(job_id)
        raw = _text(self._r.hgetall(sub))
        if not raw or raw.get("gone") or event_type not in json.loads(raw["events"]):
            if end_id is not None:
                self._r.srem(WEBHOOK_WATCH_KEY, check_job_id(job_id))
            return None
        if event_type == PROGRESS and not self._r.set(
                progress, "1", nx=True, px=int(self._s.webhook_progress_interval_s * 1000)):
            return None
        body = event_body(build_event(event_type, job_view))
        event = Event(end_id or new_event_id(), event_type, check_job_id(job_id), raw["key_id"],
                      raw["url"], body)
        return self.enqueue(event, ending=end_id is not None)

    def enqueue(self, event: Event, *, ending: bool = False) -> str | None:
        """Store the event and make it due now, in one script, no network call; its id, or None
        when nothing changed: an event with this id is stored already, or (``ending``) its job
        is no longer watched (its end was enqueued already)."""
        fields = [x for k, v in asdict(event).items() if k != "id" for x in (k, v)]
        keys = [webhook_event_key(event.id), webhook_due_key(event.lane), WEBHOOK_PENDING_KEY,
                WEBHOOK_WATCH_KEY, WEBHOOK_LANES_KEY]
        args = [event.id, self._clock(), event.job_id if ending else "", event.lane, *fields]
        return event.id if int(self._enqueue(keys=keys, args=args)) == 1 else None

    # --- the deliverer ----------------------------------------------------------------------

    def claim(self, token: str, n: int, *, busy: dict[str, int] | None = None,
              cap: int | None = None) -> list[Event]:
        """Up to ``n`` due events, leased to ``token`` for ``webhook_lease_s``, taken from the
        lanes due now in turns; at most ``cap`` (default ``n``) in flight per lane, counting
        the ``busy`` ones (lane -> attempts this deliverer has in flight)."""
        now = self._clock()
        pairs = [x for lane, k in (busy or {}).items() if k for x in (lane, k)]
        ids = [i.decode() if isinstance(i, bytes) else i for i in self._claim(
            keys=[WEBHOOK_LANES_KEY], args=[now, now + self._s.webhook_lease_s, n, token,
                                            n if cap is None else cap, MAX_LANES, *pairs])]
        with self._r.pipeline(transaction=False) as pipe:
            for event_id in ids:
                pipe.hgetall(webhook_event_key(event_id))
            raws = pipe.execute()
        return [Event.from_hash(i, _text(raw)) for i, raw in zip(ids, raws, strict=True) if raw]

    def finish(self, event: Event, token: str, outcome: str, record: dict[str, Any], *,
               next_due: float = 0.0) -> bool:
        """Record the attempt and act on ``outcome``; False when ``token`` no longer holds the
        event (its lease ended and another deliverer took it: that one reports)."""
        sub, attempts, _ = webhook_keys(event.job_id)
        keys = [webhook_event_key(event.id), webhook_due_key(event.lane), WEBHOOK_PENDING_KEY,
                WEBHOOK_DEAD_KEY, attempts, WEBHOOK_STATS_KEY, sub, WEBHOOK_LANES_KEY]
        args: list[str | float] = [event.id, token, outcome, next_due, json.dumps(record),
                self._s.webhook_attempts_kept, self._s.job_ttl_s, self._clock(),
                self._s.webhook_dead_ttl_s, event.lane]
        return bool(self._finish(keys=keys, args=args))

    # --- reading and operators ------------------------------------------------------------------

    def subscription(self, job_id: str) -> dict[str, Any] | None:
        """The job's webhook as its owner gave it (``url``, ``events``; ``gone`` after a 410),
        or None."""
        raw = _text(self._r.hgetall(webhook_keys(job_id)[0]))
        if not raw:
            return None
        return {"url": raw["url"], "events": json.loads(raw["events"]),
                "gone": bool(raw.get("gone"))}

    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        """The job's delivery attempts, oldest first (``GET /v1/jobs/<id>/webhooks``)."""
        return [json.loads(r) for r in self._r.lrange(webhook_keys(job_id)[1], 0, -1)]

    def dead(self, limit: int = 100) -> list[dict[str, Any]]:
        """The dead letters, newest first: id, type, job id, attempts, when it died."""
        rows: list[Any] = self._r.zrevrange(WEBHOOK_DEAD_KEY, 0, limit - 1, withscores=True)
        out = []
        for raw_id, died in rows:
            event_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            raw = _text(self._r.hgetall(webhook_event_key(event_id)))
            if raw:
                out.append({"id": event_id, "type": raw["type"], "job_id": raw["job_id"],
                            "attempts": int(raw.get("attempts") or 0), "dead_at": died})
        return out

    def resend(self, event_id: str) -> bool:
        """Put a dead letter back in the outbox with a new budget of attempts (same id and
        body); False if ``event_id`` is not a dead letter (EventNotFound: not an event id)."""
        key = webhook_event_key(check_event_id(event_id))
        lane = webhook_lane(_text({"k": self._r.hget(key, "key_id") or "-"})["k"])
        result = self._resend(keys=[key, webhook_due_key(lane), WEBHOOK_PENDING_KEY,
                                    WEBHOOK_DEAD_KEY, WEBHOOK_LANES_KEY],
                              args=[event_id, self._clock(), lane])
        return int(result) == 1

    def move_to_lanes(self, batch: int = 500) -> int:
        """Move the events of the outbox before lanes (one due set) into their lanes, keeping
        their due times (the deliverer does this at start); how many."""
        moved = 0
        while raw_ids := self._r.zrange(WEBHOOK_DUE_KEY, 0, batch - 1):
            ids = [_text({"i": i})["i"] for i in raw_ids]
            bad = [i for i in ids if not EVENT_ID.fullmatch(i)]
            if bad:
                self._r.zrem(WEBHOOK_DUE_KEY, *bad)
            ids = [i for i in ids if i not in bad]
            with self._r.pipeline(transaction=False) as pipe:
                for event_id in ids:
                    pipe.hget(webhook_event_key(event_id), "key_id")
                kids = pipe.execute()
            for event_id, kid in zip(ids, kids, strict=True):
                lane = webhook_lane(_text({"k": kid or "-"})["k"])
                moved += int(self._move(keys=[WEBHOOK_DUE_KEY, webhook_due_key(lane),
                                              WEBHOOK_LANES_KEY], args=[event_id, lane]))
        return moved

    def oldest_age_s(self) -> float:
        """Seconds since the oldest undelivered (queued or retrying) event was enqueued."""
        oldest: list[Any] = self._r.zrange(WEBHOOK_PENDING_KEY, 0, 0, withscores=True)
        return max(0.0, self._clock() - float(oldest[0][1])) if oldest else 0.0

    def dead_count(self) -> int:
        return int(self._r.zcard(WEBHOOK_DEAD_KEY))

    def stats(self) -> dict[str, int]:
        """Attempts so far by outcome, over every deliverer."""
        raw = _text(self._r.hgetall(WEBHOOK_STATS_KEY))
        return {o: int(raw.get(o) or 0) for o in OUTCOMES}
