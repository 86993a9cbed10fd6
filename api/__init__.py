"""The spamq HTTP API: ``create_app(settings=None)``. It never imports torch."""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import Flask
from werkzeug.routing import BaseConverter

from spamq.jobs.queue import make_celery, send_coalesced
from spamq.jobs.store import JobStore
from spamq.jobs.store_submit import SharedArtifacts, StoreJobPlanner
from spamq.logs import configure_logging
from spamq.secrets.service import load_service_secrets
from spamq.settings import Settings, get_settings


def _key_ring(secrets: Any, settings: Settings) -> Any:
    """Accepted API keys; with Vault, read afresh (past ``vault_cache_s``) every
    ``api_keys_cache_s``, so an issued key works and a revoked one is refused within it."""
    from api.auth import KeyRing, parse_key_list
    from spamq.secrets.sources import EnvSecretSource

    read = None if isinstance(secrets.source, EnvSecretSource) else (
        lambda: secrets.source.get("api_keys", fresh=True))
    return KeyRing(parse_key_list(secrets.api_keys), read=read,
                   refresh_s=settings.api_keys_cache_s)


class JobIdConverter(BaseConverter):
    """``<job_id:...>``: 32 lowercase hex digits. Anything else is a 404 before any view runs,
    so no client string reaches a Redis key through a job id."""

    regex = "[0-9a-f]{32}"


def create_app(
    settings: Settings | None = None,
    *,
    store: JobStore | None = None,
    send_task: Any = None,
) -> Flask:
    """Build the app. ``store`` and ``send_task`` may be handed in (tests); nothing connects
    here."""
    from api import auth, errors, limits, metrics
    from api.coalesce import Coalescer
    from api.docs import docs
    from api.feedback import feedback
    from api.me import me
    from api.requests import RequestModels
    from api.routes import bp
    from api.web import web
    from spamq.webhooks.outbox import Outbox

    configure_logging()
    # Redis/HDFS URLs and API keys from Vault when configured (bounded retries, else SecretError).
    secrets = load_service_secrets(settings or get_settings(), service="api")
    settings = secrets.settings
    app = Flask(__name__)
    # File uploads may be this large; a JSON body is held to max_body_bytes (api/requests.py).
    app.config["MAX_CONTENT_LENGTH"] = max(settings.max_body_bytes, settings.max_upload_bytes)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # the default provider has it
    app.url_map.converters["job_id"] = JobIdConverter
    if store is None:
        store = JobStore.from_settings(settings)
    if send_task is None:
        send_task = make_celery(settings).send_task
    artifacts = SharedArtifacts(settings)  # the app's one artifact store client
    app.extensions["spamq"] = {"settings": settings, "store": store, "send_task": send_task,
                               "artifacts": artifacts,
                               "planner": StoreJobPlanner(settings, store, artifacts),
                               "secrets": secrets, "requests": RequestModels.for_settings(settings),
                               "outbox": Outbox(store.redis, settings),
                               # single-chunk interactive jobs: one message while one publishes
                               "coalescer": Coalescer(
                                   partial(send_coalesced, send_task, settings.interactive_queue),
                                   window_s=settings.coalesce_window_s,
                                   max_items=settings.coalesce_max_jobs)}
    app.register_blueprint(bp)
    app.register_blueprint(feedback)
    app.register_blueprint(me)
    metrics.install(app, store=store, settings=settings, token=secrets.metrics_token,
                    outbox=app.extensions["spamq"]["outbox"])
    auth.install(app, settings=settings, keys=_key_ring(secrets, settings), store=store)
    limits.install(app, settings=settings, store=store)
    app.register_blueprint(web)
    app.register_blueprint(docs)
    errors.install(app, max_upload_bytes=settings.max_upload_bytes)
    return app
