"""A service's secrets at start-up: Settings with the Redis/HDFS values from the SecretSource.

With Vault (``vault_addr`` set) the API and the worker take ``redis_url``, ``hdfs_url`` and
``hdfs_user`` from ``secret/spamq/common`` (and the API its ``api_keys``), so those need not
be in their environment; without it, EnvSecretSource says so in the log and the Settings
values are used as they are. Only secret *names* are ever logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from spamq.retry import retry
from spamq.secrets.sources import (
    EnvSecretSource,
    SecretError,
    SecretSource,
    Service,
    secret_source_from_settings,
)
from spamq.settings import Settings

logger = logging.getLogger(__name__)

#: secrets each service reads at start: required ones, then optional ones
REQUIRED: dict[Service, tuple[str, ...]] = {"api": ("redis_url",), "worker": ("redis_url",),
                                           "operator": ("redis_url",)}
OPTIONAL: dict[Service, tuple[str, ...]] = {
    "api": ("hdfs_url", "hdfs_user", "api_keys", "metrics_token"),
    "worker": ("hdfs_url", "hdfs_user"),
    "operator": ("hdfs_url", "hdfs_user", "api_keys", "flower_basic_auth"),
}


@dataclass
class ServiceSecrets:
    """Settings with the secret values applied, the live source (for readiness) and API keys."""

    settings: Settings
    source: SecretSource
    api_keys: frozenset[str] = field(default_factory=frozenset, repr=False)
    flower_basic_auth: str | None = field(default=None, repr=False)
    metrics_token: str | None = field(default=None, repr=False)

    def ready(self) -> tuple[bool, str]:
        return self.source.ready()


def _read_all(source: SecretSource, service: Service) -> dict[str, str]:
    values = {name: source.get(name) for name in REQUIRED[service]}
    for name in OPTIONAL[service]:
        try:
            values[name] = source.get(name)
        except SecretError as exc:
            logger.info("optional secret %s not available: %s", name, exc)
    return values


def load_service_secrets(
    settings: Settings,
    *,
    service: Service,
    source: SecretSource | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ServiceSecrets:
    """Read the service's secrets (bounded retries while Vault is unreachable) or SecretError."""
    source = source or secret_source_from_settings(settings, service=service)
    if isinstance(source, EnvSecretSource):
        keys = settings.api_keys.get_secret_value() if settings.api_keys else ""
        basic, token = settings.flower_basic_auth, settings.metrics_token
        return ServiceSecrets(settings, source, _split_keys(keys),
                              basic.get_secret_value() if basic else None,
                              token.get_secret_value() if token else None)
    attempts = settings.vault_start_attempts
    try:
        values = retry(lambda: _read_all(source, service), retry_on=SecretError,
                       attempts=attempts, first_delay_s=0.5, max_delay_s=10.0,
                       what=f"{service}: reading secrets", sleep=sleep)
    except SecretError as exc:
        raise SecretError(f"{service}: secrets unavailable after {attempts} tries: {exc}") from exc
    updates = {k: values[k] for k in ("redis_url", "hdfs_url", "hdfs_user") if values.get(k)}
    logger.info("%s: secrets from Vault at %s: %s", service, settings.vault_addr,
                ", ".join(sorted(values)))
    if hasattr(source, "start_renewal"):
        source.start_renewal()
    return ServiceSecrets(
        settings.model_copy(update=updates), source, _split_keys(values.get("api_keys", "")),
        values.get("flower_basic_auth"), values.get("metrics_token"),
    )


def _split_keys(raw: str) -> frozenset[str]:
    return frozenset(k.strip() for k in raw.split(",") if k.strip())
