"""An in-memory OpenBao KV v2 fake and the KeyAdmin over it, for unit tests of keys and
webhook secrets."""

from __future__ import annotations

from types import SimpleNamespace

import hvac.exceptions as hx

from spamq.secrets.api_keys import KeyAdmin
from spamq.secrets.sources import VaultSecretSource


class FakeKV:
    """KV v2's read and check-and-set write; ``conflicts`` writes by someone else first."""

    def __init__(self, data=None, conflicts=0):
        self.data, self.version, self.conflicts = dict(data or {}), 1 if data else 0, conflicts

    def read_secret_version(self, path, mount_point, raise_on_deleted_version):
        if not self.version:
            raise hx.InvalidPath()
        return {"data": {"data": dict(self.data), "metadata": {"version": self.version}}}

    def create_or_update_secret(self, path, secret, cas, mount_point):
        if self.conflicts:  # someone else wrote in between
            self.conflicts -= 1
            self.version += 1
        if cas != self.version:
            raise hx.InvalidRequest("check-and-set parameter did not match the current version")
        self.data, self.version = dict(secret), self.version + 1


def admin(kv: FakeKV) -> KeyAdmin:
    """A KeyAdmin whose Vault client reads and writes ``kv``."""
    token = SimpleNamespace(lookup_self=lambda: {"data": {"accessor": "a", "ttl": 0,
                                                          "renewable": False}})
    client = SimpleNamespace(token=None, auth=SimpleNamespace(token=token),
                             secrets=SimpleNamespace(kv=SimpleNamespace(v2=kv)))
    return KeyAdmin(VaultSecretSource(addr="http://vault", service="operator", token="t",
                                      client=client))
