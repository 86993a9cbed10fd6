"""Secrets for spamq processes: from Vault (KV v2, AppRole) in production, else the environment.

Vault layout (KV v2 under ``<mount>/<prefix>/``, default ``secret/spamq/``)::

    common    redis_url, hdfs_url, hdfs_user         read by api, worker, operator
    api       api_keys                               read by api, operator
    worker    (worker-only secrets)                  read by worker, operator
    operator  flower_basic_auth                      read by operator

Each service logs in with its own AppRole (``spamq-api``, ``spamq-worker``,
``spamq-operator``) whose policy of the same name reads only its paths. Secret values are
never logged.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from spamq.errors import SpamqError

if TYPE_CHECKING:
    import hvac

    from spamq.settings import Settings

logger = logging.getLogger(__name__)

Service = Literal["api", "worker", "operator"]
SERVICES: tuple[Service, ...] = ("api", "worker", "operator")

#: secret name -> the KV path (under the prefix) that holds it
SECRET_PATHS: dict[str, str] = {
    "redis_url": "common",
    "hdfs_url": "common",
    "hdfs_user": "common",
    "api_keys": "api",
    "flower_basic_auth": "operator",
    "webhook_secrets": "api",  # spamq/webhooks/secrets.py: beside the API keys
}
#: service -> KV paths its policy may read
SERVICE_PATHS: dict[Service, tuple[str, ...]] = {
    "api": ("common", "api"),
    "worker": ("common", "worker"),
    "operator": ("common", "api", "worker", "operator"),
}


class SecretError(SpamqError, RuntimeError):
    """A secret could not be read; the message names the path and the cause, never a value."""

    http_status = 503
    code = "unavailable"
    public_message = "secrets are not readable (see the log)"


class SecretSource(ABC):
    """Where a process gets its secrets."""

    @abstractmethod
    def get(self, name: str, *, fresh: bool = False) -> str:
        """The secret ``name`` (one of SECRET_PATHS) or SecretError; ``fresh``: read now, not
        from a cache (the API key list, so a revoked key is refused within seconds)."""

    @abstractmethod
    def ready(self) -> tuple[bool, str]:
        """Whether secrets can be read now, and why not; never raises."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for most sources
        """Stop background work, if any."""


def _known(name: str) -> str:
    if name not in SECRET_PATHS:
        raise SecretError(f"unknown secret {name!r}; known: {', '.join(sorted(SECRET_PATHS))}")
    return name


class EnvSecretSource(SecretSource):
    """Secrets from Settings (``SPAMQ_*`` environment variables): development and tests."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        logger.info("no Vault address configured: secrets from the environment")

    def get(self, name: str, *, fresh: bool = False) -> str:
        value = getattr(self._settings, _known(name), None)
        if value is None:
            raise SecretError(
                f"secret {name} is not set: set SPAMQ_{name.upper()} or configure Vault"
            )
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, list | tuple | set):
            return ",".join(str(v) for v in value)
        return str(value)

    def ready(self) -> tuple[bool, str]:
        return True, "secrets from the environment"


@dataclass(frozen=True)
class TokenStatus:
    """What Vault says about the current token (no token value in here)."""

    accessor: str
    ttl_s: int
    renewable: bool


@dataclass
class _Lease:
    accessor: str
    ttl_s: int  # the lifetime it was issued with: the renewal threshold is a third of it
    expires_at: float  # time.monotonic()
    renewable: bool


class VaultSecretSource(SecretSource):
    """KV v2 secrets for one service, with AppRole login (or a static token) and token renewal.

    The token is renewed when less than a third of its lifetime is left, checked on every
    access and, after :meth:`start_renewal`, by a background thread. When renewal fails or
    hits the role's max TTL, an AppRole source logs in again.
    """

    def __init__(
        self,
        *,
        addr: str,
        service: Service,
        mount: str = "secret",
        prefix: str = "spamq",
        token: str | None = None,
        role_id: str | None = None,
        secret_id: str | None = None,
        approle_mount: str = "approle",
        timeout_s: float = 5.0,
        cache_s: float = 60.0,
        client: hvac.Client | None = None,
    ) -> None:
        import hvac

        if not token and not (role_id and secret_id):
            raise SecretError(
                f"Vault at {addr}: configure a token or an AppRole role_id and secret_id"
            )
        self.addr, self.service, self.mount, self.prefix = addr, service, mount, prefix.strip("/")
        self._token, self._role_id, self._secret_id = token, role_id, secret_id
        self._approle_mount = approle_mount
        self._cache_s = cache_s
        self._client = client or hvac.Client(url=addr, timeout=timeout_s)
        self._lock = threading.RLock()
        self._lease: _Lease | None = None
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def policy(self) -> str:
        return f"spamq-{self.service}"

    def api_path(self, sub: str) -> str:
        return f"{self.mount}/data/{self.prefix}/{sub}"

    # --- errors ---------------------------------------------------------------------------

    def _error(self, what: str, exc: Exception) -> SecretError:
        import hvac.exceptions as hx
        import requests

        if isinstance(exc, requests.RequestException):
            return SecretError(f"Vault unreachable at {self.addr} {what}: {type(exc).__name__}")
        if isinstance(exc, hx.VaultDown):
            return SecretError(f"Vault at {self.addr} is sealed or down {what}")
        if isinstance(exc, hx.Forbidden):
            return SecretError(f"permission denied {what}: check policy {self.policy}")
        if isinstance(exc, hx.InvalidPath):
            return SecretError(f"nothing found {what} (Vault at {self.addr})")
        return SecretError(f"Vault error {what}: {type(exc).__name__}: {exc}")

    # --- authentication ---------------------------------------------------------------------

    def _login(self) -> None:
        import hvac.exceptions as hx
        import requests

        try:
            if self._role_id and self._secret_id:
                auth = self._client.auth.approle.login(
                    role_id=self._role_id,
                    secret_id=self._secret_id,
                    mount_point=self._approle_mount,
                )["auth"]
                accessor, ttl, renewable = (
                    auth["accessor"],
                    int(auth["lease_duration"]),
                    bool(auth["renewable"]),
                )
                how = f"AppRole login for {self.policy}"
            else:
                self._client.token = self._token
                data = self._client.auth.token.lookup_self()["data"]
                accessor, ttl, renewable = (
                    data["accessor"],
                    int(data["ttl"]),
                    bool(data["renewable"]),
                )
                how = "token auth"
        except (hx.VaultError, requests.RequestException) as exc:
            where = (
                f"auth/{self._approle_mount}/login" if self._role_id else "auth/token/lookup-self"
            )
            if isinstance(exc, hx.InvalidRequest | hx.Forbidden):
                raise SecretError(
                    f"Vault at {self.addr} refused {where} for {self.policy}: {exc}"
                ) from exc
            raise self._error(f"logging in via {where}", exc) from exc
        self._lease = _Lease(accessor, ttl, time.monotonic() + ttl, renewable)
        logger.info("Vault %s: %s, token accessor %s, ttl %ss", self.addr, how, accessor, ttl)

    def _can_relogin(self) -> bool:
        return bool(self._role_id and self._secret_id)

    def renew(self) -> None:
        """Renew the token now; log in again (AppRole) when renewal fails or is capped."""
        import hvac.exceptions as hx
        import requests

        with self._lock:
            if self._lease is None:
                self._login()
                return
            try:
                if not self._lease.renewable:
                    raise hx.InvalidRequest("token is not renewable")
                auth = self._client.auth.token.renew_self()["auth"]
            except (hx.VaultError, requests.RequestException) as exc:
                if not self._can_relogin() or isinstance(exc, requests.RequestException):
                    raise self._error("renewing the token (auth/token/renew-self)", exc) from exc
                logger.warning(
                    "Vault token renewal failed (%s): logging in again", type(exc).__name__
                )
                self._login()
                return
            new_ttl = int(auth["lease_duration"])
            if new_ttl < self._lease.ttl_s / 3 and self._can_relogin():
                logger.info("Vault token near its max TTL (%ss left): logging in again", new_ttl)
                self._login()
                return
            self._lease.expires_at = time.monotonic() + new_ttl
            logger.debug("Vault token %s renewed for %ss", self._lease.accessor, new_ttl)

    def _ensure_auth(self) -> None:
        with self._lock:
            if self._lease is None:
                self._login()
                return
            lease = self._lease
            if lease.ttl_s == 0:  # a token that never expires (root / periodic-less)
                return
            if lease.expires_at - time.monotonic() < lease.ttl_s / 3:
                self.renew()

    def token_status(self) -> TokenStatus:
        """Ask Vault about the current token (logs in first if needed)."""
        with self._lock:
            self._ensure_auth()
            try:
                data = self._client.auth.token.lookup_self()["data"]
            except Exception as exc:
                raise self._error("looking up the token (auth/token/lookup-self)", exc) from exc
            return TokenStatus(data["accessor"], int(data["ttl"]), bool(data["renewable"]))

    def authenticated_client(self) -> hvac.Client:
        """The hvac client, logged in: for the operator's writes (``spamq keys``)."""
        with self._lock:
            self._ensure_auth()
            return self._client

    def _token_valid(self) -> bool:
        import hvac.exceptions as hx

        try:
            self._client.auth.token.lookup_self()
        except hx.Forbidden:
            return False
        return True

    # --- reading -----------------------------------------------------------------------------

    def _read(self, sub: str, *, fresh: bool = False) -> dict[str, Any]:
        import hvac.exceptions as hx
        import requests

        path = self.api_path(sub)
        with self._lock:
            hit = self._cache.get(sub)
            if hit and not fresh and time.monotonic() - hit[0] < self._cache_s:
                return hit[1]
            self._ensure_auth()
            for attempt in (1, 2):
                try:
                    data = self._client.secrets.kv.v2.read_secret_version(
                        path=f"{self.prefix}/{sub}",
                        mount_point=self.mount,
                        raise_on_deleted_version=True,
                    )["data"]["data"]
                    break
                except hx.Forbidden as exc:
                    # 403 is both "policy denies" and "token revoked/expired": tell them apart.
                    if attempt == 1 and self._can_relogin() and not self._token_valid():
                        logger.warning("Vault token no longer valid: logging in again")
                        self._login()
                        continue
                    raise self._error(f"reading {path}", exc) from exc
                except (hx.VaultError, requests.RequestException) as exc:
                    raise self._error(f"reading {path}", exc) from exc
            self._cache[sub] = (time.monotonic(), data)
            return data

    def get(self, name: str, *, fresh: bool = False) -> str:
        sub = SECRET_PATHS[_known(name)]
        data = self._read(sub, fresh=fresh)
        if name not in data:
            raise SecretError(f"{self.api_path(sub)} has no key {name!r}")
        return str(data[name])

    def ready(self) -> tuple[bool, str]:
        try:
            with self._lock:
                self._ensure_auth()
                if not self._token_valid():
                    if not self._can_relogin():
                        return False, f"Vault at {self.addr}: token is no longer valid"
                    self._login()
        except SecretError as exc:
            return False, str(exc)
        except Exception as exc:  # readiness never raises
            return False, str(self._error("checking readiness", exc))
        return True, f"Vault at {self.addr} as {self.policy}"

    # --- background renewal ------------------------------------------------------------------

    def start_renewal(self, *, interval_s: float | None = None) -> None:
        """Check the token in a daemon thread (default: every sixth of its TTL, 1-60 s)."""
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()

        def loop() -> None:
            while True:
                lease = self._lease
                wait = interval_s or (
                    min(60.0, max(1.0, lease.ttl_s / 6)) if lease and lease.ttl_s else 60.0
                )
                if self._stop.wait(wait):
                    return
                try:
                    self._ensure_auth()
                except SecretError as exc:
                    logger.warning("Vault token renewal: %s", exc)

        self._thread = threading.Thread(target=loop, name="vault-token-renewal", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
            self._thread = None


def secret_source_from_settings(settings: Settings, *, service: Service) -> SecretSource:
    """Vault when ``vault_addr`` is set, else the environment."""
    if not settings.vault_addr:
        return EnvSecretSource(settings)
    return VaultSecretSource(
        addr=settings.vault_addr,
        service=service,
        mount=settings.vault_mount,
        prefix=settings.vault_path_prefix,
        token=settings.vault_token.get_secret_value() if settings.vault_token else None,
        role_id=settings.vault_role_id,
        secret_id=settings.vault_secret_id.get_secret_value() if settings.vault_secret_id else None,
        timeout_s=settings.vault_timeout_s,
        cache_s=settings.vault_cache_s,
    )


# --- bootstrap (an administrator's token: root in dev) ----------------------------------------


def policy_hcl(service: Service, *, mount: str = "secret", prefix: str = "spamq") -> str:
    """The policy for one service: read its KV paths; the operator may also write them."""
    caps = '["create", "read", "update"]' if service == "operator" else '["read"]'
    rules = [
        f'path "{mount}/data/{prefix}/{sub}" {{\n  capabilities = {caps}\n}}'
        for sub in SERVICE_PATHS[service]
    ]
    if service == "operator":
        rules.append(
            f'path "{mount}/metadata/{prefix}/*" {{\n  capabilities = ["read", "list"]\n}}'
        )
    return "\n".join(rules) + "\n"


def bootstrap_vault(
    client: hvac.Client,
    secrets: dict[str, str],
    *,
    mount: str = "secret",
    prefix: str = "spamq",
    approle_mount: str = "approle",
    token_ttl: str = "1h",
    token_max_ttl: str = "24h",
) -> dict[str, str]:
    """Policies, AppRoles and initial secrets for spamq; idempotent. Returns {service: role_id}.

    ``secrets`` maps secret names (SECRET_PATHS) to values; existing keys at a path that
    are not given are kept.
    """
    import hvac.exceptions as hx

    for name in secrets:
        _known(name)
    prefix = prefix.strip("/")
    if f"{mount}/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    if f"{approle_mount}/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle", path=approle_mount)
    role_ids: dict[str, str] = {}
    for service in SERVICES:
        name = f"spamq-{service}"
        client.sys.create_or_update_policy(
            name=name, policy=policy_hcl(service, mount=mount, prefix=prefix)
        )
        client.auth.approle.create_or_update_approle(
            role_name=name,
            token_policies=[name],
            token_ttl=token_ttl,
            token_max_ttl=token_max_ttl,
            bind_secret_id=True,
            mount_point=approle_mount,
        )
        role_ids[service] = client.auth.approle.read_role_id(name, mount_point=approle_mount)[
            "data"
        ]["role_id"]
    by_path: dict[str, dict[str, str]] = {}
    for name, value in secrets.items():
        by_path.setdefault(SECRET_PATHS[name], {})[name] = value
    for sub, values in by_path.items():
        try:
            current = (
                client.secrets.kv.v2.read_secret_version(
                    path=f"{prefix}/{sub}", mount_point=mount, raise_on_deleted_version=False
                )["data"]["data"]
                or {}
            )
        except hx.InvalidPath:
            current = {}
        client.secrets.kv.v2.create_or_update_secret(
            path=f"{prefix}/{sub}", secret={**current, **values}, mount_point=mount
        )
        logger.info("wrote %s/data/%s/%s keys %s", mount, prefix, sub, sorted(values))
    return role_ids


def mint_secret_id(client: hvac.Client, service: Service, *, approle_mount: str = "approle") -> str:
    """A new secret_id for a service's AppRole (hand it to that service only)."""
    resp = client.auth.approle.generate_secret_id(f"spamq-{service}", mount_point=approle_mount)
    return resp["data"]["secret_id"]
