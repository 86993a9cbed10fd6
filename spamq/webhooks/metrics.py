"""Webhook figures for Prometheus, read from Redis when scraped (like the API's cluster
figures, api/metrics.py): the counts are kept in Redis by every deliverer, so any one scrape
sees them all, and no multiprocess files are needed. The deliverer serves them on its own port
(``webhook_metrics_port``); the API may also register :class:`WebhookCollector` in its
``/metrics``."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spamq.webhooks.outbox import Outbox

logger = logging.getLogger(__name__)


class WebhookCollector(Collector):
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self._outbox.stats()
            age, dead = self._outbox.oldest_age_s(), self._outbox.dead_count()
        except redis.RedisError as exc:
            logger.warning("webhook metrics: redis unavailable: %s", exc)
            return
        deliveries = CounterMetricFamily(
            "spamq_webhook_deliveries", "webhook delivery attempts by outcome", labels=["outcome"])
        for outcome, n in stats.items():
            deliveries.add_metric([outcome], n)
        yield deliveries
        oldest = GaugeMetricFamily("spamq_webhook_oldest_undelivered_age_seconds",
                                   "age of the oldest queued or retrying webhook event")
        oldest.add_metric([], age)
        yield oldest
        letters = GaugeMetricFamily("spamq_webhook_dead_letters", "events in the dead letters")
        letters.add_metric([], dead)
        yield letters


def serve(outbox: Outbox, host: str, port: int) -> CollectorRegistry:
    """``/metrics`` of the deliverer on ``host:port`` (a daemon thread)."""
    registry = CollectorRegistry()
    registry.register(WebhookCollector(outbox))
    start_http_server(port, addr=host, registry=registry)
    logger.info("webhook metrics on http://%s:%d/metrics", host, port)
    return registry
