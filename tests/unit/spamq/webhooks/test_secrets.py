"""A key's webhook secret beside its hash in Vault (the KV fake of the key tests): create,
show, rotate with overlap; the deliverer's reader."""

from __future__ import annotations

import json

import pytest

from spamq.secrets.sources import EnvSecretSource, SecretError
from spamq.settings import Settings
from spamq.webhooks.secrets import FIELD, WebhookSecretAdmin, WebhookSecrets
from tests.helpers.vault_fakes import FakeKV, admin


class FakeSource(EnvSecretSource):
    """What the deliverer's source reads: the KV fake's data."""

    def __init__(self, kv: FakeKV) -> None:
        self._kv = kv

    def get(self, name: str) -> str:
        if name not in self._kv.data:
            raise SecretError(f"no {name}")
        return str(self._kv.data[name])


def test_show_creates_once_rotate_keeps_the_previous_for_the_overlap():
    kv = FakeKV(conflicts=1)
    issued = admin(kv).issue("client")
    now = [1000.0]
    secrets = WebhookSecretAdmin(admin(kv), overlap_s=60, clock=lambda: now[0])
    reader = WebhookSecrets(FakeSource(kv), clock=lambda: now[0])
    assert reader.signing(issued.key_id) == []

    first = secrets.show(issued.key_id.upper())
    assert first.startswith("whsec_") and secrets.show(issued.key_id) == first
    assert reader.signing(issued.key_id) == [first]
    assert kv.data["api_keys"]  # the key list is untouched
    assert issued.key_id in admin(kv).live_ids(kv.data)

    second = secrets.show(issued.key_id, rotate=True)
    assert second != first and secrets.show(issued.key_id) == second
    assert reader.signing(issued.key_id) == [second, first]  # both sign during the overlap
    stored = json.loads(kv.data[FIELD])[issued.key_id]
    assert stored["previous_until"] == 1060.0
    now[0] = 1061.0
    assert reader.signing(issued.key_id) == [second]


def test_unknown_and_revoked_keys():
    kv = FakeKV()
    a, b = admin(kv).issue(), admin(kv).issue()
    secrets = WebhookSecretAdmin(admin(kv), overlap_s=0)
    with pytest.raises(SecretError, match="no key with id"):
        secrets.show("f" * 16)
    with pytest.raises(SecretError, match="16 hex"):
        secrets.show("nope")
    secrets.show(a.key_id)
    admin(kv).revoke(a.key_id)
    with pytest.raises(SecretError, match="no key with id"):
        secrets.show(a.key_id)
    secrets.show(b.key_id, rotate=True)  # a write drops the revoked key's secret
    assert set(json.loads(kv.data[FIELD])) == {b.key_id}
    assert "previous" not in json.loads(kv.data[FIELD])[b.key_id]  # overlap 0: none kept


def test_environment_source_and_no_key():
    table = {"-": {"current": "whsec_AAAA"}, "x": "junk"}
    reader = WebhookSecrets(EnvSecretSource(Settings(webhook_secrets=json.dumps(table))))
    assert reader.signing(None) == ["whsec_AAAA"] and reader.signing("x") == []
    assert WebhookSecrets(EnvSecretSource(Settings(webhook_secrets="not json"))).signing(
        None) == []
