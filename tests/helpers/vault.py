"""Keys and secrets kept in a real OpenBao, for the integration tests: a service's AppRole
login, the operator's CLI, and what the API answers a key."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import requests

from scripts.local_services import REPO
from spamq.secrets.sources import mint_secret_id
from tests.helpers.services import Bao


def approle_env(bao: Bao, role_ids: dict[str, str], service: str,
                addr: str | None = None) -> dict[str, str]:
    """The environment a ``service`` (api, worker, operator) logs in to OpenBao with."""
    return {"SPAMQ_VAULT_ADDR": addr or bao.addr, "SPAMQ_VAULT_ROLE_ID": role_ids[service],
            "SPAMQ_VAULT_SECRET_ID": mint_secret_id(bao.client(), service)}


def spamq(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the ``spamq`` CLI with ``env`` added to this process's environment."""
    return subprocess.run([sys.executable, "-m", "spamq.cli", *args], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


def answer(base: str, key: str) -> int:
    """401 for a key the API does not accept, 404 (no such job) for one it does."""
    return requests.get(f"{base}/v1/jobs/{uuid.uuid4().hex}", headers={"X-API-Key": key},
                        timeout=5).status_code
