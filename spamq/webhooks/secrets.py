"""Each API key's webhook signing secret, kept beside the key's hash in the secret source.

Vault: the field ``webhook_secrets`` of ``<mount>/<prefix>/api`` (where ``spamq keys`` keeps
``api_keys``), JSON ``{"<key id>": {"current": "whsec_...", "previous": "whsec_...",
"previous_until": <unix time>}}``; without Vault, the same JSON in ``SPAMQ_WEBHOOK_SECRETS``.
Rotation makes a new current secret; the old one goes on signing beside it (two signatures in
``webhook-signature``) for ``webhook_secret_overlap_s``, so receivers can switch at leisure.
With authentication off, jobs have no key: their events use the entry ``"-"``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from spamq.secrets.api_keys import KeyAdmin, check_key_id
from spamq.secrets.sources import SecretError, SecretSource
from spamq.webhooks.signing import new_secret

FIELD = "webhook_secrets"
NO_KEY = "-"  # the owner of jobs submitted with authentication off


def _table(raw: object) -> dict[str, dict[str, Any]]:
    try:
        table = json.loads(str(raw or "{}"))
    except ValueError:
        return {}
    if not isinstance(table, dict):
        return {}
    return {k: v for k, v in table.items() if isinstance(v, dict)}


class WebhookSecrets:
    """The secrets that sign a key's events now (the deliverer's side; read only)."""

    def __init__(self, source: SecretSource, *, clock: Callable[[], float] = time.time) -> None:
        self._source, self._clock = source, clock

    def signing(self, key_id: str | None) -> list[str]:
        """The current secret, then the previous one while its overlap lasts; [] for none."""
        try:
            raw = self._source.get(FIELD)
        except SecretError:
            return []
        entry = _table(raw).get(key_id or NO_KEY, {})
        out = [entry["current"]] if entry.get("current") else []
        if entry.get("previous") and self._clock() < float(entry.get("previous_until") or 0):
            out.append(entry["previous"])
        return out

    def has_secret(self, key_id: str | None) -> bool:
        """Whether the key has a current secret (the API asks before a job with a webhook
        exists). A source that is readable but holds no secrets at all: False; one that cannot
        be read now: SecretError (a 503), not a refusal of the client's request."""
        try:
            raw = self._source.get(FIELD)
        except SecretError:
            if self._source.ready()[0]:
                return False
            raise
        return bool(_table(raw).get(key_id or NO_KEY, {}).get("current"))


class WebhookSecretAdmin:
    """The operator's side (``spamq keys webhook-secret``): show, create and rotate, written
    with the key list's check-and-set (:meth:`KeyAdmin.update_data`)."""

    def __init__(self, admin: KeyAdmin, *, overlap_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._admin, self._overlap_s, self._clock = admin, overlap_s, clock

    def show(self, key_id: str, *, rotate: bool = False) -> str:
        """The key's current secret; a new one when it has none or ``rotate``."""
        kid = check_key_id(key_id)
        if not rotate:
            data = self._admin.data()
            current = _table(data.get(FIELD)).get(kid, {}).get("current")
            if current and kid in self._admin.live_ids(data):
                return str(current)

        def change(data: dict[str, Any]) -> str:
            live = self._admin.live_ids(data)
            if kid not in live:
                raise SecretError(f"no key with id {kid} (see `spamq keys list`)")
            table = {k: v for k, v in _table(data.get(FIELD)).items() if k in live}
            old = table.get(kid, {}).get("current")
            if old and not rotate:  # someone created it in between
                return str(old)
            entry: dict[str, Any] = {"current": new_secret()}
            if old and self._overlap_s > 0:
                entry.update(previous=old, previous_until=self._clock() + self._overlap_s)
            table[kid] = entry
            data[FIELD] = json.dumps(table, sort_keys=True)
            return str(entry["current"])

        return self._admin.update_data(change)
