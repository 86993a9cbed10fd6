"""API keys: who is calling, how fast they may call, and which jobs they may see.

Keys are held only as SHA-256 hashes (``sha256:<hex>``; a raw key in the environment is
hashed on load) and compared in constant time. With Vault, the list is read afresh from the
secret source every ``api_keys_cache_s`` seconds (2 by default), so ``spamq keys issue|revoke``
takes effect within that, without a restart; while Vault is unreachable the keys already held
stay in force.
A key's id (the first 16 hex digits of its hash) is the owner stamped on its jobs.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable

from flask import Flask, g, request

from spamq.errors import RateLimited, Unauthorized
from spamq.jobs.schema import JobNotFound
from spamq.secrets.api_keys import hash_key, key_id, parse_key_list
from spamq.secrets.sources import SecretError
from spamq.settings import Settings

logger = logging.getLogger(__name__)

RATE_PREFIX = "spamq:rate:"
#: endpoints anyone may call: liveness, readiness, the page, the API description and its
#: reference (/metrics takes the operator's own credential instead of an API key: api/metrics.py)
PUBLIC_ENDPOINTS = frozenset(
    {"spamq.healthz", "spamq.readyz", "web.index", "web.openapi", "static", "metrics.metrics",
     "docs.page", "docs.asset"}
)

# Token bucket. KEYS: bucket. ARGV: rate per s, burst, now (s). Returns ms to wait (0: allowed).
_TAKE_TOKEN = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"""


def presented_key() -> str | None:
    """The key in ``Authorization: Bearer <key>`` or ``X-API-Key``, if any."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("X-API-Key") or None


class KeyRing:
    """The accepted key hashes, refreshed from ``read`` (the secret source) now and then."""

    def __init__(self, hashes: frozenset[str], *, read: Callable[[], str] | None = None,
                 refresh_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._hashes = hashes
        self._read = read
        self._refresh_s = refresh_s
        self._clock = clock
        self._checked = clock()
        self._lock = threading.Lock()

    def _maybe_refresh(self) -> None:
        if self._read is None or self._clock() - self._checked < self._refresh_s:
            return
        with self._lock:
            if self._clock() - self._checked < self._refresh_s:
                return
            self._checked = self._clock()
            try:
                self._hashes = parse_key_list(self._read().split(","))
            except SecretError as exc:  # keep the keys held: Vault may be back soon
                logger.warning("api keys not re-read (keeping %d held): %s", len(self._hashes), exc)

    @property
    def empty(self) -> bool:
        self._maybe_refresh()
        return not self._hashes

    def identify(self, raw: str | None) -> str | None:
        """The key id of ``raw`` if it is an accepted key, else None (constant-time compare)."""
        self._maybe_refresh()
        if not raw:
            return None
        given = hash_key(raw)
        found = None
        for known in self._hashes:  # compare against all, so timing says nothing
            if hmac.compare_digest(known, given):
                found = known
        return key_id(found) if found else None


def install(app: Flask, *, settings: Settings, keys: KeyRing, store) -> None:
    """Require a key on every non-public endpoint; rate-limit per key; fence jobs by owner."""
    take = store.redis.register_script(_TAKE_TOKEN)

    @app.before_request
    def _authenticate():
        g.spamq_owner = None
        if not settings.auth_required or request.endpoint in PUBLIC_ENDPOINTS:
            return None
        if request.endpoint is None and not request.path.startswith("/v1/"):
            return None  # 404/405 outside the API: let Flask answer (no key needed to learn it)
        owner = keys.identify(presented_key())
        if owner is None:
            raise Unauthorized()
        g.spamq_owner = owner
        wait_ms = int(take(keys=[RATE_PREFIX + owner],
                           args=[settings.rate_limit_per_s, settings.rate_limit_burst,
                                 repr(time.time())]))
        if wait_ms > 0:
            raise RateLimited(max(1, -(-wait_ms // 1000)))
        job_id = (request.view_args or {}).get("job_id")
        if job_id is not None and store.jobs.owner(job_id) not in (None, "", owner):
            raise JobNotFound(job_id)  # another key's job: answered like an unknown one
        return None
