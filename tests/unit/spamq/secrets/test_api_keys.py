"""KeyAdmin against an in-memory KV v2 fake: hashes only, check-and-set retry, revoke by id."""

from __future__ import annotations

import pytest

from api.auth import hash_key, key_id, parse_key_list
from spamq.secrets.sources import SecretError
from tests.helpers.vault_fakes import FakeKV, admin


def test_issue_stores_only_the_hash_and_normalises_raw_entries():
    kv = FakeKV({"api_keys": "raw-old-key", "other": "kept"}, conflicts=2)
    issued = admin(kv).issue("bot")
    stored = kv.data["api_keys"].split(",")
    assert hash_key(issued.key) in stored and hash_key("raw-old-key") in stored
    assert issued.key not in str(kv.data) and "raw-old-key" not in str(kv.data)
    assert kv.data["other"] == "kept" and issued.key_id == key_id(hash_key(issued.key))
    assert (issued.key_id, "bot") in admin(kv).list()
    assert parse_key_list(stored) == frozenset(stored)


def test_revoke_by_id_and_unknown_ids():
    kv = FakeKV()
    a = admin(kv).issue()
    b = admin(kv).issue("b")
    assert admin(kv).revoke(a.key_id.upper()) == 1
    assert [k for k, _ in admin(kv).list()] == [b.key_id]
    with pytest.raises(SecretError, match="no key with id"):
        admin(kv).revoke(a.key_id)
    with pytest.raises(SecretError, match="16 hex digits"):
        admin(kv).revoke("nope")


def test_gives_up_after_repeated_conflicts():
    kv = FakeKV({"api_keys": ""}, conflicts=99)
    with pytest.raises(SecretError, match="changed by someone else"):
        admin(kv).issue()
