"""The deliverer: claims due events from the outbox, signs and posts them, records each try;
every ``webhook_poll_s`` it also runs the job watch (spamq/webhooks/watch.py), which enqueues
the events of jobs that ended or moved on.

Attempts run in a pool of ``webhook_concurrency`` threads, each one on its own: a finished
attempt frees its slot at once and the next due event takes it (no attempt waits for another).
The outbox hands out due events in turns per API key, and at most ``webhook_key_concurrency``
of one key's attempts are in flight here, so one key's slow or silent receiver holds that
key's slots only; the other keys' events go on.

2xx within ``webhook_timeout_s``: delivered. 410: gone (the job's later events are not sent).
Anything else (3xx, 4xx, 5xx, a network error, a URL the guard now refuses, no secret): the
attempt failed; retried after :func:`backoff_s` until ``webhook_max_attempts``, then the dead
letters. Logs name the event, the job and the URL's origin: never its path, query or a body.
The attempt records the client reads say the outcome coarsely ("connection failed",
"timeout", the receiver's HTTP status): no exception names, and no duration for an attempt the
receiver did not answer, so they are no port or resolver probe; the log has the detail.
"""

from __future__ import annotations

import http.client
import logging
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from typing import Any

import redis

from spamq.secrets.sources import SecretError
from spamq.settings import Settings
from spamq.webhooks import http as webhook_http
from spamq.webhooks.outbox import DEAD, DELIVERED, GONE, RETRY, Event, Outbox, backoff_s
from spamq.webhooks.secrets import WebhookSecrets
from spamq.webhooks.signing import signed_headers
from spamq.webhooks.urls import Resolver, Target, UrlRefused, check_url, system_resolver
from spamq.webhooks.watch import JobWatch

logger = logging.getLogger(__name__)
#: (target, headers, body, timeout_s, max_response_bytes) -> status
Transport = Callable[..., int]
#: what an attempt record says of a failure without an HTTP answer
TIMEOUT, CONNECTION_FAILED = "timeout", "connection failed"
URL_REFUSED, NO_SECRET = "url refused", "no signing secret"


def _coarse(exc: BaseException) -> str:
    if isinstance(exc, UrlRefused):
        return URL_REFUSED
    if isinstance(exc, SecretError):
        return NO_SECRET
    if isinstance(exc, TimeoutError | socket.timeout):
        return TIMEOUT
    return CONNECTION_FAILED  # refused, reset, unreachable, not HTTP: told alike


class Deliverer:
    """``run_forever(stop)`` delivers until ``stop``, running ``watch.run_once()`` too every
    ``webhook_poll_s``; ``run_once()`` starts what is due now and waits for it (tests)."""

    def __init__(self, client: redis.Redis, settings: Settings, secrets: WebhookSecrets, *,
                 transport: Transport = webhook_http.post,
                 resolver: Resolver = system_resolver,
                 clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random) -> None:
        self.outbox = Outbox(client, settings, clock=clock)
        self.watch = JobWatch(client, self.outbox)
        self._s, self._secrets = settings, secrets
        self._transport, self._resolver, self._clock, self._rng = transport, resolver, clock, rng
        self.name = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._busy: Counter[str] = Counter()  # lane -> attempts in flight
        self._in_flight: set[Future[str]] = set()
        self._freed = threading.Event()  # an attempt ended: a slot is free
        if settings.webhook_lease_s <= settings.webhook_timeout_s:
            logger.warning("webhook_lease_s (%s) <= webhook_timeout_s (%s): a slow attempt may "
                           "be retried while it runs", settings.webhook_lease_s,
                           settings.webhook_timeout_s)

    def start_due(self) -> int:
        """Claim as many due events as slots are free, in turns per key and within each key's
        share, and start an attempt at each; how many were started."""
        with self._lock:
            busy = {lane: n for lane, n in self._busy.items() if n}
        free = self._s.webhook_concurrency - sum(busy.values())
        if free <= 0:
            return 0
        token = f"{self.name}:{uuid.uuid4().hex[:8]}"
        events = self.outbox.claim(token, free, busy=busy, cap=self._s.webhook_key_concurrency)
        if events and self._pool is None:
            self._pool = ThreadPoolExecutor(self._s.webhook_concurrency,
                                            thread_name_prefix="webhook")
        for event in events:
            assert self._pool is not None
            with self._lock:
                self._busy[event.lane] += 1
                future = self._pool.submit(self.deliver, event, token)
                self._in_flight.add(future)
            future.add_done_callback(partial(self._ended, event))
        return len(events)

    def _ended(self, event: Event, future: Future[str]) -> None:
        with self._lock:
            self._busy[event.lane] -= 1
            if self._busy[event.lane] <= 0:
                del self._busy[event.lane]
            self._in_flight.discard(future)
        self._freed.set()
        if not future.cancelled() and future.exception() is not None:  # its lease ends: retried
            logger.warning("webhook %s: attempt not recorded: %s", event.id, future.exception(),
                           extra={"job_id": event.job_id})

    def wait_idle(self) -> None:
        """Wait until no attempt is in flight."""
        while True:
            with self._lock:
                pending = list(self._in_flight)
            if not pending:
                return
            wait(pending)

    def run_once(self) -> int:
        """Start the attempts due now and wait for them to end; how many."""
        started = self.start_due()
        self.wait_idle()
        return started

    def run_forever(self, stop: threading.Event) -> None:
        logger.info("webhook deliverer %s started", self.name)
        try:
            if moved := self.outbox.move_to_lanes():
                logger.info("webhooks: %d event(s) of the outbox before lanes moved", moved)
        except redis.RedisError as exc:
            logger.warning("webhooks: redis unavailable: %s", exc)
        watched_at = float("-inf")
        while not stop.is_set():
            started = 0
            try:
                if time.monotonic() - watched_at >= self._s.webhook_poll_s:
                    watched_at = time.monotonic()
                    self.watch.run_once()
                started = self.start_due()
            except redis.RedisError as exc:
                logger.warning("webhooks: redis unavailable: %s", exc)
            if not started:  # nothing due, or no free slot: until a slot frees or a poll
                self._freed.wait(self._s.webhook_poll_s)
                self._freed.clear()
        self.wait_idle()
        if self._pool is not None:
            self._pool.shutdown()
        logger.info("webhook deliverer %s stopped", self.name)

    def deliver(self, event: Event, token: str) -> str:
        """One attempt at ``event`` (claimed with ``token``); the outcome."""
        started = self._clock()
        t0 = time.monotonic()
        status, failure, origin = self._attempt(event)
        duration_ms = round((time.monotonic() - t0) * 1000, 1)
        next_due = 0.0
        if status is not None and 200 <= status < 300:
            outcome = DELIVERED
        elif status == 410:
            outcome = GONE
        elif event.attempts - event.base >= self._s.webhook_max_attempts:
            outcome = DEAD
        else:
            outcome = RETRY
            next_due = self._clock() + backoff_s(
                event.attempts - event.base, base_s=self._s.webhook_backoff_base_s,
                max_s=self._s.webhook_backoff_max_s, rng=self._rng)
        record: dict[str, Any] = {
            "event_id": event.id, "type": event.type, "attempt": event.attempts,
            "at": round(started, 3), "status": status,
            "error": _coarse(failure) if failure is not None else None,
            # the receiver's answer time; none without an answer (a port probe's signal)
            "duration_ms": round(duration_ms) if status is not None else None,
            "outcome": outcome,
        }
        if outcome == RETRY:
            record["next_at"] = round(next_due, 3)
        if not self.outbox.finish(event, token, outcome, record, next_due=next_due):
            logger.warning("webhook %s: lease lost during attempt %d (another deliverer has it)",
                           event.id, event.attempts, extra={"job_id": event.job_id})
            return outcome
        logger.info("webhook %s %s -> %s attempt %d: %s (%s ms)", event.id, event.type, origin,
                    event.attempts,
                    status if failure is None else type(failure).__name__, duration_ms,
                    extra={"job_id": event.job_id})
        return outcome

    def _attempt(self, event: Event) -> tuple[int | None, BaseException | None, str]:
        """(status, None) or (None, the error), and the origin to log."""
        origin = "?"
        try:
            secrets = self._secrets.signing(event.key_id)
            if not secrets:
                raise SecretError("the key has no webhook signing secret")
            target: Target = check_url(event.url, self._s, self._resolver)  # rebinding: again
            origin = target.origin
            body = event.body.encode()
            headers = signed_headers(secrets, event.id, int(self._clock()), body)
            status = self._transport(target, headers, body, timeout_s=self._s.webhook_timeout_s,
                                     max_response_bytes=self._s.webhook_max_response_bytes)
            return status, None, origin
        except (UrlRefused, SecretError, OSError, http.client.HTTPException, ValueError) as exc:
            return None, exc, origin
