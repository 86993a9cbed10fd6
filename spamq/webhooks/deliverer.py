"""The deliverer: claims due events from the outbox, signs and posts them, records each try;
every ``webhook_poll_s`` it also runs the job watch (spamq/webhooks/watch.py), which enqueues
the events of jobs that ended or moved on.

2xx within ``webhook_timeout_s``: delivered. 410: gone (the job's later events are not sent).
Anything else (3xx, 4xx, 5xx, a network error, a URL the guard now refuses, no secret): the
attempt failed; retried after :func:`backoff_s` until ``webhook_max_attempts``, then the dead
letters. Logs name the event, the job and the URL's origin: never its path, query or a body.
"""

from __future__ import annotations

import http.client
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


class Deliverer:
    """``run_once()`` delivers the events due now; ``run_forever(stop)`` loops until ``stop``,
    running ``watch.run_once()`` too every ``webhook_poll_s``."""

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
        if settings.webhook_lease_s <= settings.webhook_timeout_s:
            logger.warning("webhook_lease_s (%s) <= webhook_timeout_s (%s): a slow attempt may "
                           "be retried while it runs", settings.webhook_lease_s,
                           settings.webhook_timeout_s)

    def run_once(self) -> int:
        """Claim up to ``webhook_concurrency`` due events and deliver them; how many."""
        token = f"{self.name}:{uuid.uuid4().hex[:8]}"
        events = self.outbox.claim(token, self._s.webhook_concurrency)
        if len(events) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._s.webhook_concurrency,
                                                thread_name_prefix="webhook")
            list(self._pool.map(lambda e: self.deliver(e, token), events))
        elif events:
            self.deliver(events[0], token)
        return len(events)

    def run_forever(self, stop: threading.Event) -> None:
        logger.info("webhook deliverer %s started", self.name)
        watched_at = float("-inf")
        while not stop.is_set():
            try:
                if time.monotonic() - watched_at >= self._s.webhook_poll_s:
                    watched_at = time.monotonic()
                    self.watch.run_once()
                busy = self.run_once()
            except redis.RedisError as exc:
                logger.warning("webhooks: redis unavailable: %s", exc)
                busy = 0
            if not busy:
                stop.wait(self._s.webhook_poll_s)
        if self._pool is not None:
            self._pool.shutdown()
        logger.info("webhook deliverer %s stopped", self.name)

    def deliver(self, event: Event, token: str) -> str:
        """One attempt at ``event`` (claimed with ``token``); the outcome."""
        started = self._clock()
        t0 = time.monotonic()
        status, error, origin = self._attempt(event)
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
            "at": round(started, 3), "status": status, "error": error,
            "duration_ms": duration_ms, "outcome": outcome,
        }
        if outcome == RETRY:
            record["next_at"] = round(next_due, 3)
        if not self.outbox.finish(event, token, outcome, record, next_due=next_due):
            logger.warning("webhook %s: lease lost during attempt %d (another deliverer has it)",
                           event.id, event.attempts, extra={"job_id": event.job_id})
            return outcome
        logger.info("webhook %s %s -> %s attempt %d: %s (%s ms)", event.id, event.type, origin,
                    event.attempts, status if status is not None else error, duration_ms,
                    extra={"job_id": event.job_id})
        return outcome

    def _attempt(self, event: Event) -> tuple[int | None, str | None, str]:
        """(status, None) or (None, error class), and the origin to log."""
        origin = "?"
        try:
            secrets = self._secrets.signing(event.key_id)
            if not secrets:
                return None, "NoSecret", origin
            target: Target = check_url(event.url, self._s, self._resolver)  # rebinding: again
            origin = target.origin
            body = event.body.encode()
            headers = signed_headers(secrets, event.id, int(self._clock()), body)
            status = self._transport(target, headers, body, timeout_s=self._s.webhook_timeout_s,
                                     max_response_bytes=self._s.webhook_max_response_bytes)
            return status, None, origin
        except (UrlRefused, SecretError, OSError, http.client.HTTPException, ValueError) as exc:
            return None, type(exc).__name__, origin
