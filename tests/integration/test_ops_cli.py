"""The `models` and `secrets` subcommands, on a bare argparse parser, against real services."""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path

import pytest

from spamq.cli.ops import add_models_parser, add_secrets_parser
from spamq.models.manifest import write_manifest
from spamq.settings import Settings
from tests.helpers.services import Bao

pytestmark = pytest.mark.integration


def run(settings: Settings, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="spamq")
    sub = parser.add_subparsers(dest="command", required=True)
    add_models_parser(sub)
    add_secrets_parser(sub)
    args = parser.parse_args(argv)
    args.settings = settings
    return args.func(args)


@pytest.mark.parametrize("backend", ["local", "hdfs"])
def test_models_push_list_promote_pull(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    if backend == "hdfs":
        settings = Settings(
            hdfs_url=request.getfixturevalue("hdfs_url"),
            hdfs_root=f"/spamq-test/{uuid.uuid4().hex}",
            model_cache_dir=tmp_path / "cache",
        )
    else:
        settings = Settings(
            hdfs_url=None, artifact_dir=tmp_path / "registry", model_cache_dir=tmp_path / "cache"
        )
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"x": 1}')
    version = write_manifest(model, source="cli-test")

    assert run(settings, "models", "push", str(model)) == 0
    assert capsys.readouterr().out.strip() == f"spamq-sms/{version}"
    assert run(settings, "models", "promote", "spamq-sms", version, "--alias", "production") == 0
    capsys.readouterr()
    assert run(settings, "models", "list") == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["versions"] == [version] and listing["aliases"] == {"production": version}
    assert run(settings, "models", "pull", "spamq-sms") == 0  # default alias: production
    assert capsys.readouterr().out.strip() == str(tmp_path / "cache" / "spamq-sms" / version)

    assert run(settings, "models", "pull", "spamq-sms", "--alias", "staging") == 1
    assert "no alias 'staging'" in capsys.readouterr().err


def test_secrets_bootstrap_and_check(
    openbao: Bao, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = Settings(
        vault_addr=openbao.addr, vault_token=openbao.root_token, redis_url="redis://r:1/0"
    )
    assert run(admin, "secrets", "bootstrap", "--set", "api_keys=k1,k2", "--mint-secret-ids") == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["role_ids"]) == set(out["secret_ids"]) == {"api", "worker", "operator"}
    assert "api_keys" in out["secrets_written"] and "redis_url" in out["secrets_written"]

    api = Settings(
        vault_addr=openbao.addr,
        vault_role_id=out["role_ids"]["api"],
        vault_secret_id=out["secret_ids"]["api"],
        vault_token=None,
    )
    assert run(api, "secrets", "check", "--service", "api") == 0
    text = capsys.readouterr().out
    assert "ready: True" in text and "api_keys: readable" in text
    assert "flower_basic_auth: permission denied reading secret/data/spamq/operator" in text
    assert "k1,k2" not in text

    no_token = Settings(vault_addr=openbao.addr, vault_token=None)
    assert run(no_token, "secrets", "bootstrap") == 1
    assert "needs SPAMQ_VAULT_ADDR and an admin SPAMQ_VAULT_TOKEN" in capsys.readouterr().err
