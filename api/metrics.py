"""Prometheus ``/metrics``: HTTP requests and latency, jobs, queues, workers and batching.

Request metrics are per gunicorn worker process, merged through prometheus-client's
multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set (``spamq api`` sets it). Queue,
job and worker figures are read from Redis at scrape time, so any API process answers them
for the whole cluster: queue depth and the age of the oldest message are what Flower lacks.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Iterable, Iterator

import redis
from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.openapi import documented
from spamq.errors import Forbidden
from spamq.jobs.queue import ENQUEUED_AT
from spamq.jobs.store import JobStore
from spamq.settings import Settings
from spamq.webhooks.metrics import WebhookCollector
from spamq.webhooks.outbox import Outbox

logger = logging.getLogger(__name__)
metrics_bp = Blueprint("metrics", __name__)


class ClusterCollector(Collector):
    """Figures read from Redis when scraped."""

    def __init__(self, store: JobStore, settings: Settings) -> None:
        self._store, self._r, self._s = store, store.redis, settings

    def _oldest_age(self, queue: str, now: float) -> float:
        raw = self._r.lindex(queue, -1)  # kombu LPUSHes and BRPOPs: the oldest is last
        if raw is None:
            return 0.0
        try:
            stamp = json.loads(raw)["headers"].get(ENQUEUED_AT)
        except (ValueError, KeyError, AttributeError):
            return 0.0
        return max(0.0, now - float(stamp)) if stamp else 0.0

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except redis.RedisError as exc:
            logger.warning("metrics: redis unavailable: %s", exc)
            yield _redis_up(0)

    def _collect(self) -> Iterator[Metric]:
        now = time.time()
        depth = GaugeMetricFamily("spamq_queue_depth", "messages waiting", labels=["queue"])
        age = GaugeMetricFamily("spamq_queue_oldest_age_seconds",
                                "age of the oldest waiting message", labels=["queue"])
        for queue in (self._s.interactive_queue, self._s.bulk_queue):
            depth.add_metric([queue], self._r.llen(queue))
            age.add_metric([queue], self._oldest_age(queue, now))
        yield depth
        yield age

        jobs = CounterMetricFamily("spamq_jobs", "job events: submitted and how jobs ended",
                                   labels=["event"])
        counts = self._store.jobs.counts()
        for event, n in counts.items():
            jobs.add_metric([event], n)
        yield jobs
        in_flight = GaugeMetricFamily("spamq_jobs_in_flight", "jobs submitted and not ended")
        ended = counts["done"] + counts["failed"] + counts["cancelled"]
        in_flight.add_metric([], max(0, counts["submitted"] - ended))
        yield in_flight

        info = GaugeMetricFamily("spamq_worker_model", "model loaded per worker process (1)",
                                 labels=["worker", "model_version", "device", "precision"])
        ready = GaugeMetricFamily("spamq_workers_ready", "worker processes with a loaded model")
        workers = self._store.workers.heartbeats()
        for w in workers:
            info.add_metric([str(w.get("name")), str(w.get("model_version")),
                             str(w.get("device")), str(w.get("precision"))], 1)
        ready.add_metric([], sum(1 for w in workers if w.get("model_version")))
        yield info
        yield ready
        beat_age = GaugeMetricFamily("spamq_worker_heartbeat_age_seconds",
                                     "since the worker's last heartbeat", labels=["worker"])
        for w in workers:
            if isinstance(w.get("at"), (int, float)):
                beat_age.add_metric([str(w.get("name"))], max(0.0, now - w["at"]))
        yield beat_age
        leases = GaugeMetricFamily(
            "spamq_worker_leases", "chunks and splits a worker is scoring now (its leases); "
            "a worker without a heartbeat here died holding them", labels=["worker"])
        for holder, n in sorted(self._store.leases.leases_by_worker().items()):
            leases.add_metric([holder], n)
        yield leases

        batches = CounterMetricFamily("spamq_worker_batches", "forward passes", labels=["worker"])
        rows = CounterMetricFamily("spamq_worker_items", "texts scored (rate() = items/s)",
                                   labels=["worker"])
        mean = GaugeMetricFamily("spamq_worker_batch_size_mean", "texts per forward pass",
                                 labels=["worker"])
        largest = GaugeMetricFamily("spamq_worker_batch_size_max", "largest forward pass",
                                    labels=["worker"])
        fill = GaugeMetricFamily("spamq_worker_batch_fill",
                                 "real tokens / padded tokens over all passes", labels=["worker"])
        for worker, st in self._store.workers.batch_stats().items():
            batches.add_metric([worker], st.get("batches", 0))
            rows.add_metric([worker], st.get("rows", 0))
            mean.add_metric([worker], st.get("mean_rows", 0.0))
            largest.add_metric([worker], st.get("max_rows", 0))
            fill.add_metric([worker], st.get("fill", 0.0))
        yield from (batches, rows, mean, largest, fill)
        yield _redis_up(1)


def _redis_up(value: int) -> Metric:
    up = GaugeMetricFamily("spamq_redis_up", "Redis answered the scrape")
    up.add_metric([], value)
    return up


def install(app: Flask, *, store: JobStore, settings: Settings, token: str | None,
            outbox: Outbox) -> None:
    """Add request metrics hooks and the ``/metrics`` route to ``app``; the webhook figures
    (deliveries by outcome, the oldest undelivered event) are read from the outbox.

    ``/metrics`` shows cluster-wide figures, so it answers only the operator's credential
    (``Authorization: Bearer <metrics_token>``), never an API key; without a token configured
    it is closed, unless authentication is off altogether (development).
    """
    registry = CollectorRegistry(auto_describe=True)
    requests_total = Counter("spamq_http_requests", "HTTP requests",
                             ["endpoint", "method", "status"], registry=registry)
    latency = Histogram("spamq_http_request_seconds", "HTTP request latency", ["endpoint"],
                        registry=registry,
                        buckets=(.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))

    @app.before_request
    def _start() -> None:
        g.spamq_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        if endpoint != "/metrics":
            requests_total.labels(endpoint, request.method, str(response.status_code)).inc()
            latency.labels(endpoint).observe(time.perf_counter() - g.get("spamq_started", 0.0))
        return response

    app.extensions["spamq_metrics"] = {
        "registry": registry,
        "cluster": ClusterCollector(store, settings),
        "webhooks": WebhookCollector(outbox),
        "multiprocess": settings.metrics_multiproc_dir is not None,
        "token": token, "open": not settings.auth_required,
    }
    app.register_blueprint(metrics_bp)


@metrics_bp.get("/metrics")
@documented("Prometheus metrics (the operator's token: Authorization: Bearer <metrics_token>)",
            ok={200: "Prometheus text exposition"}, errors=(Forbidden,))
def metrics():
    ext = current_app.extensions["spamq_metrics"]
    if not ext["open"]:
        auth = request.headers.get("Authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not ext["token"] or not hmac.compare_digest(given.encode(), ext["token"].encode()):
            raise Forbidden(public_message="/metrics needs the operator's metrics credential "
                            "(Authorization: Bearer <metrics_token>); API keys do not open it")
    scrape = CollectorRegistry()
    if ext["multiprocess"]:
        multiprocess.MultiProcessCollector(scrape)
    else:
        scrape.register(_Own(ext["registry"]))
    scrape.register(ext["cluster"])
    scrape.register(ext["webhooks"])
    return Response(generate_latest(scrape), mimetype=CONTENT_TYPE_LATEST)


class _Own(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()
