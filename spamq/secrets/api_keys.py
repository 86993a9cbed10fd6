"""API key administration in Vault: ``spamq keys issue|revoke|list``.

Keys live in ``<mount>/<prefix>/api`` (``secret/spamq/api``) as ``api_keys``: a
comma-separated list of ``sha256:<hex>`` hashes, the format defined here. A raw key
exists only in the output of :func:`issue_key`; Vault holds its hash. Optional names are
kept beside it as ``api_key_names`` (JSON ``{key_id: name}``), which the API does not read.
Writes use KV v2 check-and-set, so two operators editing at once cannot drop a key; the
API re-reads the list from Vault every ``api_keys_cache_s`` seconds (default 2; the Vault
read cache, ``vault_cache_s``, is bypassed for it), so a revoked key is refused within that.
Every list written back holds hashes only (raw keys found there are hashed).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from spamq.secrets.sources import SECRET_PATHS, SecretError, VaultSecretSource

HASH_PREFIX = "sha256:"
SUB = SECRET_PATHS["api_keys"]  # "api"
NAMES_FIELD = "api_key_names"
KEY_ID = re.compile(r"^[0-9a-f]{16}$")
T = TypeVar("T")


@dataclass(frozen=True)
class IssuedKey:
    key: str  # shown once, never stored
    key_id: str
    name: str | None


def hash_key(raw: str) -> str:
    """The stored form of a key: ``sha256:<hex>``."""
    return HASH_PREFIX + hashlib.sha256(raw.encode()).hexdigest()


def key_id(hashed: str) -> str:
    """A key's public id: the first 16 hex digits of its hash (the owner of its jobs)."""
    return hashed.removeprefix(HASH_PREFIX)[:16]


def check_key_id(kid: str) -> str:
    """A key id as typed by an operator (any case, or a hash), normalised; else SecretError."""
    kid = kid.strip().lower().removeprefix(HASH_PREFIX)[:16]
    if not KEY_ID.match(kid):
        raise SecretError(f"key id {kid!r}: expected 16 hex digits (see `spamq keys list`)")
    return kid


def parse_key_list(entries: Iterable[str]) -> frozenset[str]:
    """Hashes of a key list whose entries are raw keys or already ``sha256:<hex>``."""
    out = set()
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        out.add(entry.lower() if entry.startswith(HASH_PREFIX) else hash_key(entry))
    return frozenset(out)


class KeyAdmin:
    """Read-modify-write of the API key list through an operator's Vault source."""

    def __init__(self, source: VaultSecretSource, *, tries: int = 5) -> None:
        if source.service != "operator":
            raise SecretError(f"keys are managed with the operator role, not {source.service}")
        self.source = source
        self.tries = tries

    def _read(self) -> tuple[dict[str, Any], int]:
        import hvac.exceptions as hx
        import requests

        client = self.source.authenticated_client()
        try:
            resp = client.secrets.kv.v2.read_secret_version(
                path=f"{self.source.prefix}/{SUB}", mount_point=self.source.mount,
                raise_on_deleted_version=False,
            )
        except hx.InvalidPath:
            return {}, 0
        except (hx.VaultError, requests.RequestException) as exc:
            raise self.source._error(f"reading {self.source.api_path(SUB)}", exc) from exc
        return dict(resp["data"]["data"] or {}), int(resp["data"]["metadata"]["version"])

    def _write(self, data: dict[str, Any], version: int) -> bool:
        """False when someone else wrote since ``version`` (check-and-set refused)."""
        import hvac.exceptions as hx
        import requests

        client = self.source.authenticated_client()
        try:
            client.secrets.kv.v2.create_or_update_secret(
                path=f"{self.source.prefix}/{SUB}", secret=data, cas=version,
                mount_point=self.source.mount,
            )
        except hx.InvalidRequest as exc:
            if "check-and-set" in str(exc):
                return False
            raise self.source._error(f"writing {self.source.api_path(SUB)}", exc) from exc
        except (hx.VaultError, requests.RequestException) as exc:
            raise self.source._error(f"writing {self.source.api_path(SUB)}", exc) from exc
        return True

    @staticmethod
    def _hashes(data: dict[str, Any]) -> list[str]:
        raw = str(data.get("api_keys") or "")
        return sorted(parse_key_list(raw.split(",")))

    @staticmethod
    def _names(data: dict[str, Any]) -> dict[str, str]:
        try:
            names = json.loads(data.get(NAMES_FIELD) or "{}")
        except ValueError:
            return {}
        return names if isinstance(names, dict) else {}

    def data(self) -> dict[str, Any]:
        """Every field of the API secret (hashes, names, webhook secrets), as stored."""
        return self._read()[0]

    def live_ids(self, data: dict[str, Any]) -> set[str]:
        """The ids of the keys in ``data`` (as from :meth:`data`)."""
        return {key_id(h) for h in self._hashes(data)}

    def update_data(self, change: Callable[[dict[str, Any]], T]) -> T:
        """``change(data)`` edits the secret's fields in place; written back with check-and-set
        (read again and re-applied while someone else wrote in between)."""
        for _ in range(self.tries):
            data, version = self._read()
            result = change(data)
            if self._write(data, version):
                return result
        raise SecretError(f"{self.source.api_path(SUB)}: changed by someone else "
                          f"{self.tries} times in a row; try again")

    def _update(self, change) -> Any:  # noqa: ANN001 - change(hashes, names) -> result
        def apply(data: dict[str, Any]) -> Any:
            hashes, names = self._hashes(data), self._names(data)
            result = change(hashes, names)
            live = {key_id(h) for h in hashes}
            data.update(api_keys=",".join(sorted(hashes)),
                        **{NAMES_FIELD: json.dumps({k: v for k, v in sorted(names.items())
                                                    if k in live})})
            return result

        return self.update_data(apply)

    def issue(self, name: str | None = None) -> IssuedKey:
        key = secrets.token_urlsafe(32)
        hashed = hash_key(key)
        kid = key_id(hashed)

        def add(hashes: list[str], names: dict[str, str]) -> None:
            hashes.append(hashed)
            if name:
                names[kid] = name

        self._update(add)
        return IssuedKey(key, kid, name)

    def revoke(self, kid: str) -> int:
        """Remove every key with id ``kid`` (16 hex digits); returns how many were removed."""
        kid = check_key_id(kid)

        def drop(hashes: list[str], names: dict[str, str]) -> int:
            gone = [h for h in hashes if key_id(h) == kid]
            for h in gone:
                hashes.remove(h)
            names.pop(kid, None)
            return len(gone)

        removed = self._update(drop)
        if not removed:
            raise SecretError(f"no key with id {kid} in {self.source.api_path(SUB)}")
        return removed

    def list(self) -> list[tuple[str, str | None]]:
        """(key id, name) of every accepted key; never a key or a hash."""
        data, _ = self._read()
        names = self._names(data)
        return [(key_id(h), names.get(key_id(h))) for h in self._hashes(data)]
