"""What a client asks for (``"webhook": {"url": ..., "events": [...]}``) and what it is sent.

The API calls :func:`parse_webhook` at ``POST /v1/jobs``; :class:`WebhookRefused` is an
:class:`~spamq.errors.InvalidRequest`, so the API's one error handler answers it with 422
``{"error": "invalid_request", "field": e.field, "message": e.message}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spamq.errors import InvalidRequest
from spamq.jobs.schema import CANCELLED, DONE, EXPIRED, FAILED
from spamq.settings import Settings
from spamq.webhooks.urls import Resolver, UrlRefused, check_url, system_resolver

PROGRESS = "job.progress"
#: a job's final status -> the event that tells it
END_EVENTS = {DONE: "job.completed", FAILED: "job.failed", CANCELLED: "job.cancelled",
              EXPIRED: "job.expired"}
EVENTS = (*END_EVENTS.values(), PROGRESS)
#: fields of the job's public view an event leaves out (inline results are fetched)
STRIPPED = ("results",)


class WebhookRefused(InvalidRequest):
    """A ``webhook`` object the API refuses: 422, naming the ``field`` at fault (its message
    never quotes the URL's path or query)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)


@dataclass(frozen=True)
class Webhook:
    """A job's subscription: post these ``events`` to ``url`` (checked by the SSRF guard)."""

    url: str
    events: tuple[str, ...]


def parse_webhook(obj: object, settings: Settings, *,
                  resolver: Resolver = system_resolver) -> Webhook:
    """The request's ``webhook`` object as a :class:`Webhook`, or WebhookRefused."""
    if not isinstance(obj, dict):
        raise WebhookRefused("webhook", "expected an object {\"url\": ..., \"events\": [...]}")
    if set(obj) - {"url", "events"}:
        raise WebhookRefused("webhook", "only \"url\" and \"events\" are accepted")
    try:
        check_url(obj.get("url"), settings, resolver)
    except UrlRefused as exc:
        raise WebhookRefused("webhook.url", str(exc)) from None
    events = obj.get("events")
    if not isinstance(events, list) or not events:
        raise WebhookRefused("webhook.events", f"expected a non-empty list of {', '.join(EVENTS)}")
    for i, event in enumerate(events):
        if event not in EVENTS:
            raise WebhookRefused(f"webhook.events[{i}]",
                                 f"unknown event; one of {', '.join(EVENTS)}")
    return Webhook(obj["url"], tuple(dict.fromkeys(events)))


def build_event(event_type: str, job_view: dict[str, Any], *,
                now: datetime | None = None) -> dict[str, Any]:
    """The event body: ``type``, ``timestamp`` and the job's public view (``data``) without its
    inline results (its ``results_url`` says where they are)."""
    if event_type not in EVENTS:
        raise ValueError(f"unknown webhook event {event_type!r}")
    stamp = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    data = {k: v for k, v in job_view.items() if k not in STRIPPED}
    return {"type": event_type, "timestamp": stamp, "data": data}


def event_body(event: dict[str, Any]) -> str:
    """The bytes that are signed and sent (fixed at enqueue: every retry sends the same)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
