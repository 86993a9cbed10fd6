"""What a client asks for (``"webhook": {"url": ..., "events": [...]}``) and what it is sent.

:class:`Webhook` is the request's ``webhook`` object, validated by pydantic as part of the
request body (api/requests.py: its errors name ``webhook``, ``webhook.url``,
``webhook.events[i]``), and it is what the outbox stores: the value keeps this one shape from
the body to Redis. Whether spamq may post to its URL needs DNS, so that is not a validator:
:func:`check_webhook` runs after the body is parsed (a refusal is a
:class:`~spamq.webhooks.urls.UrlRefused`, a 422 naming ``webhook.url``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from spamq.jobs.schema import CANCELLED, DONE, EXPIRED, FAILED
from spamq.settings import Settings
from spamq.webhooks.urls import MAX_URL_CHARS, Resolver, check_url, system_resolver

PROGRESS = "job.progress"
#: a job's final status -> the event that tells it
END_EVENTS = {DONE: "job.completed", FAILED: "job.failed", CANCELLED: "job.cancelled",
              EXPIRED: "job.expired"}
EVENTS = (*END_EVENTS.values(), PROGRESS)
EventName = Literal["job.completed", "job.failed", "job.cancelled", "job.expired",
                    "job.progress"]
assert get_args(EventName) == EVENTS
#: fields of the job's public view an event leaves out (inline results are fetched)
STRIPPED = ("results",)


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Webhook:
    """A job's subscription: post these ``events`` (each once, in their order) to ``url``:
    https, checked by the SSRF guard (spamq/webhooks/urls.py) before it is accepted and again
    before each attempt; signed with the key's secret."""

    url: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_URL_CHARS, description=(
        "https URL; private, loopback and metadata hosts are refused"))]
    events: Annotated[tuple[EventName, ...], Field(min_length=1)]

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", tuple(dict.fromkeys(self.events)))


def check_webhook(hook: Webhook, settings: Settings, *,
                  resolver: Resolver = system_resolver) -> Webhook:
    """``hook`` if spamq may post to its URL (resolving its host), else UrlRefused."""
    check_url(hook.url, settings, resolver)
    return hook


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
