"""Secrets against a real OpenBao dev server: bootstrap, AppRole, renewal, re-login, refusals."""

from __future__ import annotations

import time
from pathlib import Path

import hvac
import pytest

from spamq.secrets.sources import (
    EnvSecretSource,
    SecretError,
    VaultSecretSource,
    bootstrap_vault,
    mint_secret_id,
    policy_hcl,
)
from spamq.settings import Settings
from tests.helpers.services import Bao, closed_port, start_openbao, stop_openbao

pytestmark = pytest.mark.integration

SECRETS = {
    "redis_url": "redis://:s3cret-redis@127.0.0.1:6379/0",
    "hdfs_url": "http://127.0.0.1:50070",
    "hdfs_user": "spamq",
    "api_keys": "key-one-abcdef,key-two-ghijkl",
    "flower_basic_auth": "admin:flower-pass-xyz",
}


@pytest.fixture(scope="module")
def role_ids(openbao: Bao) -> dict[str, str]:
    return bootstrap_vault(openbao.client(), SECRETS)


def source(bao: Bao, role_ids: dict[str, str], service: str, **kw) -> VaultSecretSource:
    secret_id = mint_secret_id(bao.client(), service)
    return VaultSecretSource(
        addr=bao.addr, service=service, role_id=role_ids[service], secret_id=secret_id, **kw
    )


def test_bootstrap_writes_policies_roles_and_secrets(
    openbao: Bao, role_ids: dict[str, str]
) -> None:
    root = openbao.client()
    assert set(role_ids) == {"api", "worker", "operator"}
    assert root.sys.read_policy("spamq-worker")["data"]["rules"] == policy_hcl("worker")
    assert 'path "secret/data/spamq/api"' not in policy_hcl("worker")
    role = root.auth.approle.read_role("spamq-worker")["data"]
    assert role["token_policies"] == ["spamq-worker"]
    assert role["token_ttl"] == 3600
    common = root.secrets.kv.v2.read_secret_version(path="spamq/common", mount_point="secret")
    assert common["data"]["data"] == {k: SECRETS[k] for k in ("redis_url", "hdfs_url", "hdfs_user")}

    # Idempotent; a partial update keeps the other keys at that path.
    again = bootstrap_vault(root, {"hdfs_user": "spamq2"})
    assert again == role_ids
    data = root.secrets.kv.v2.read_secret_version(path="spamq/common", mount_point="secret")[
        "data"
    ]["data"]
    assert data["hdfs_user"] == "spamq2" and data["redis_url"] == SECRETS["redis_url"]
    bootstrap_vault(root, {"hdfs_user": SECRETS["hdfs_user"]})

    with pytest.raises(SecretError, match="unknown secret 'nope'"):
        bootstrap_vault(root, {"nope": "x"})


def test_approle_login_reads_the_services_secrets(openbao: Bao, role_ids: dict[str, str]) -> None:
    worker = source(openbao, role_ids, "worker")
    assert worker.ready() == (True, f"Vault at {openbao.addr} as spamq-worker")
    assert worker.get("redis_url") == SECRETS["redis_url"]
    assert worker.get("hdfs_user") == SECRETS["hdfs_user"]
    api = source(openbao, role_ids, "api")
    assert api.get("api_keys") == SECRETS["api_keys"]
    assert api.get("redis_url") == SECRETS["redis_url"]
    operator = source(openbao, role_ids, "operator")
    assert operator.get("flower_basic_auth") == SECRETS["flower_basic_auth"]
    status = worker.token_status()
    assert status.renewable and 3500 <= status.ttl_s <= 3600


def test_denied_path_names_path_and_policy(
    openbao: Bao, role_ids: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    worker = source(openbao, role_ids, "worker")
    with caplog.at_level("DEBUG"):
        with pytest.raises(SecretError) as info:
            worker.get("api_keys")
        message = str(info.value)
        assert message.startswith(
            "permission denied reading secret/data/spamq/api: check policy spamq-worker"
        )
        assert worker.get("redis_url") == SECRETS["redis_url"]  # the token itself is still fine
    for name in ("redis_url", "api_keys", "flower_basic_auth"):
        value = SECRETS[name]
        assert value not in message
        assert value not in caplog.text
    with pytest.raises(SecretError, match="unknown secret 'password'"):
        worker.get("password")


def test_bad_secret_id_is_refused_clearly(openbao: Bao, role_ids: dict[str, str]) -> None:
    s = VaultSecretSource(
        addr=openbao.addr, service="api", role_id=role_ids["api"], secret_id="not-the-secret-id-123"
    )
    with pytest.raises(SecretError, match="refused auth/approle/login for spamq-api") as info:
        s.get("redis_url")
    assert "not-the-secret-id-123" not in str(info.value)
    ok, reason = s.ready()
    assert ok is False and "auth/approle/login" in reason


def test_static_token_auth(openbao: Bao, role_ids: dict[str, str]) -> None:
    s = VaultSecretSource(addr=openbao.addr, service="operator", token=openbao.root_token)
    assert s.get("api_keys") == SECRETS["api_keys"]
    assert s.token_status().ttl_s == 0  # root: never expires, never renewed
    assert s.ready()[0] is True


@pytest.fixture
def short_role_source(openbao: Bao, role_ids: dict[str, str]) -> VaultSecretSource:
    """A worker source logged in with an AppRole of 6 s tokens (max 60 s), no secret cache."""
    root = openbao.client()
    root.auth.approle.create_or_update_approle(
        role_name="spamq-worker-short",
        token_policies=["spamq-worker"],
        token_ttl="6s",
        token_max_ttl="60s",
    )
    role_id = root.auth.approle.read_role_id("spamq-worker-short")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("spamq-worker-short")["data"]["secret_id"]
    return VaultSecretSource(addr=openbao.addr, service="worker", role_id=role_id,
                             secret_id=secret_id, cache_s=0)


def test_token_is_renewed_when_a_third_of_its_ttl_is_left(
    openbao: Bao, short_role_source: VaultSecretSource
) -> None:
    root = openbao.client()
    s = short_role_source
    assert s.get("redis_url") == SECRETS["redis_url"]
    accessor = s.token_status().accessor
    time.sleep(4.5)  # 6 s token: under 2 s left now
    before = root.auth.token.lookup_accessor(accessor)["data"]["ttl"]
    assert before <= 2
    assert s.get("redis_url") == SECRETS["redis_url"]  # renews on access
    after = root.auth.token.lookup_accessor(accessor)["data"]["ttl"]
    assert after >= 5 > before
    assert s.token_status().accessor == accessor  # renewed, not replaced


@pytest.mark.slow
def test_background_renewal_keeps_the_token_alive(
    openbao: Bao, short_role_source: VaultSecretSource
) -> None:
    s = short_role_source
    accessor = s.token_status().accessor
    s.start_renewal(interval_s=0.5)
    try:
        time.sleep(9)  # 1.5 token lifetimes with no access from this thread
        root = openbao.client()
        assert root.auth.token.lookup_accessor(accessor)["data"]["ttl"] > 0
        assert s.token_status().accessor == accessor
    finally:
        s.close()


def test_relogin_when_the_token_was_revoked(openbao: Bao, role_ids: dict[str, str]) -> None:
    root = openbao.client()
    s = source(openbao, role_ids, "worker", cache_s=0)
    first = s.token_status().accessor
    root.auth.token.revoke_accessor(first)

    s.renew()  # renew-self is refused for a revoked token: logs in again
    second = s.token_status().accessor
    assert second != first
    assert s.get("redis_url") == SECRETS["redis_url"]

    # Revoked between two reads: the 403 is told apart from a policy denial.
    root.auth.token.revoke_accessor(second)
    assert s.get("hdfs_url") == SECRETS["hdfs_url"]
    assert s.token_status().accessor not in (first, second)


def test_revoked_static_token_is_an_error_not_a_retry(
    openbao: Bao, role_ids: dict[str, str]
) -> None:
    root = openbao.client()
    token = root.auth.token.create(policies=["spamq-worker"], ttl="1h")["auth"]["client_token"]
    s = VaultSecretSource(addr=openbao.addr, service="worker", token=token, cache_s=0)
    assert s.get("redis_url") == SECRETS["redis_url"]
    root.auth.token.revoke(token)
    with pytest.raises(SecretError, match="permission denied reading secret/data/spamq/common"):
        s.get("redis_url")
    ok, reason = s.ready()
    assert ok is False and "no longer valid" in reason


def test_unreachable_vault_fails_fast(tmp_path: Path) -> None:
    addr = f"http://127.0.0.1:{closed_port()}"
    s = VaultSecretSource(addr=addr, service="worker", role_id="r", secret_id="s", timeout_s=2)
    t0 = time.monotonic()
    with pytest.raises(SecretError, match=f"Vault unreachable at {addr}"):
        s.get("redis_url")
    ok, reason = s.ready()
    assert time.monotonic() - t0 < 3
    assert ok is False and "unreachable" in reason


def test_sealed_vault_is_reported(tmp_path: Path) -> None:
    bao = start_openbao(tmp_path / "sealed")
    try:
        s = VaultSecretSource(addr=bao.addr, service="operator", token=bao.root_token)
        assert s.ready()[0] is True
        bao.client().sys.seal()
        ok, reason = s.ready()
        assert ok is False and "sealed" in reason
        with pytest.raises(SecretError, match="sealed or down"):
            s.get("redis_url")
    finally:
        stop_openbao(bao)


def test_env_secret_source(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="spamq.secrets.sources"):
        s = EnvSecretSource(Settings(redis_url="redis://127.0.0.1:6390/1", hdfs_url=None))
    assert "no Vault address configured: secrets from the environment" in caplog.text
    assert s.ready() == (True, "secrets from the environment")
    assert s.get("redis_url") == "redis://127.0.0.1:6390/1"
    with pytest.raises(SecretError, match="secret hdfs_url is not set: set SPAMQ_HDFS_URL"):
        s.get("hdfs_url")


def test_hvac_is_the_client(openbao: Bao) -> None:
    assert isinstance(openbao.client(), hvac.Client)
    assert openbao.client().is_authenticated()
