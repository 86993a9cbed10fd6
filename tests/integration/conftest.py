"""Real services for integration tests: redis-server, a trained tiny model, a Celery worker,
the API under gunicorn, the webhook deliverer. Each is started once per session on free
loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from api.auth import hash_key, key_id
from scripts.local_services import (
    REPO,
    Process,
    start_api,
    start_deliverer,
    start_redis,
    start_worker,
)
from spamq.jobs.schema import ENDED
from spamq.settings import Settings
from spamq.storage.artifacts import ArtifactStore, LocalArtifactStore
from spamq.webhooks.signing import new_secret
from tests.helpers.services import hdfs_store

FINISHED = ENDED


def wait_for_job(base: str, status_url: str, statuses=FINISHED, timeout: float = 120) -> dict:
    """Poll ``GET base + status_url`` until the job's status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(base + status_url, timeout=5).json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job not {statuses} after {timeout}s: {job}")


@pytest.fixture(params=["local", "hdfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    """An empty artifact store: a local directory, then a private root on the real HDFS (a
    module may mean another store by ``store``)."""
    if request.param == "local":
        yield LocalArtifactStore(tmp_path / "store")
        return
    s = hdfs_store(request.getfixturevalue("hdfs_url"))
    yield s
    s.delete("", recursive=True)


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def redis_url(services_dir):
    proc, url = start_redis(services_dir / "redis")
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory) -> Path:
    """A tiny from-scratch classifier trained on the real data (or SPAMQ_TEST_MODEL_DIR)."""
    given = os.environ.get("SPAMQ_TEST_MODEL_DIR")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("tiny-model") / "model"
    subprocess.run(
        [sys.executable, "-m", "spamq.cli", "train", "--from-scratch", "--out", str(out)],
        check=True, cwd=REPO,
    )
    return out


#: the API key every integration test sends (the services hold only its hash)
API_KEY = "spamq-test-" + "k" * 32
#: a second accepted key: another owner (job fencing tests)
API_KEY_2 = "spamq-test-" + "q" * 32
#: the operator's credential for /metrics (API keys do not open it)
METRICS_TOKEN = "spamq-test-metrics-" + "m" * 24
#: each key's own area of the artifact store (spamq/storage/tenancy.py)
HOME = f"tenants/{key_id(hash_key(API_KEY))}"
HOME_2 = f"tenants/{key_id(hash_key(API_KEY_2))}"


def private_services(root: Path, service_env: dict[str, str],
                     **extra: str) -> tuple[Process, dict[str, str], Path]:
    """A module's own redis-server and local store under ``root``: (the redis process, the
    services' env pointed at both plus ``extra``, the store's directory)."""
    redis_proc, url = start_redis(root / "redis")
    store = root / "store"
    store.mkdir()
    env = {**service_env, "SPAMQ_REDIS_URL": url, "SPAMQ_ARTIFACT_DIR": str(store), **extra}
    return redis_proc, env, store


@contextmanager
def key_areas(service_env: dict[str, str], name: str) -> Iterator[tuple[Path, Path, Path]]:
    """A fresh run directory ``<name>-<random>`` with an empty in/ in each key's area of the
    services' local store: (store root, API_KEY's run dir, API_KEY_2's run dir); both removed
    afterwards (rmtree removes links, never what they point to)."""
    env = {**os.environ, **service_env}
    assert not env.get("SPAMQ_HDFS_URL"), "these tests use the local store"
    root = Path(env.get("SPAMQ_ARTIFACT_DIR") or Settings().artifact_dir)
    run = f"{name}-{uuid.uuid4().hex[:8]}"
    a, b = root / HOME / run, root / HOME_2 / run
    (a / "in").mkdir(parents=True)
    (b / "in").mkdir(parents=True)
    try:
        yield root, a, b
    finally:
        shutil.rmtree(a, ignore_errors=True)
        shutil.rmtree(b, ignore_errors=True)
#: API_KEY's webhook signing secret (what `spamq keys webhook-secret` keeps in Vault)
WEBHOOK_SECRET = new_secret()
#: API_KEY_2's: a second key's events go through their own delivery lane
WEBHOOK_SECRET_2 = new_secret()


@pytest.fixture(scope="session", autouse=True)
def _send_api_key():
    """Every ``requests`` call carries API_KEY unless it sets its own auth header."""
    original = requests.Session.request

    def request(self, method, url, *args, headers=None, **kwargs):
        headers = dict(headers or {})
        if not any(h.lower() in ("x-api-key", "authorization") for h in headers):
            headers["X-API-Key"] = API_KEY
        return original(self, method, url, *args, headers=headers, **kwargs)

    requests.Session.request = request
    yield
    requests.Session.request = original


@pytest.fixture(scope="session")
def service_env(redis_url, trained_model_dir) -> dict[str, str]:
    return {
        "SPAMQ_AUTH_REQUIRED": "true",
        "SPAMQ_API_KEYS": f"{hash_key(API_KEY)},{hash_key(API_KEY_2)}",
        "SPAMQ_METRICS_TOKEN": METRICS_TOKEN,
        "SPAMQ_REDIS_URL": redis_url,
        "SPAMQ_MODEL_DIR": str(trained_model_dir),
        "SPAMQ_WORKER_HEARTBEAT_S": "0.5",
        # fp32: test_thousand_texts compares the worker with the runner in-process to 1e-4;
        # int8 quantises activations per batch, so its scores depend on the batch's company.
        "SPAMQ_PRECISION": "fp32",
        "SPAMQ_PREDICT_TIMEOUT_S": "30",
        # webhooks to a receiver on 127.0.0.1 (development settings: http, loopback allowed)
        "SPAMQ_WEBHOOK_ALLOW_HTTP": "true",
        "SPAMQ_WEBHOOK_ALLOW_HOSTS": '["127.0.0.1"]',
        "SPAMQ_WEBHOOK_SECRETS": json.dumps({
            key_id(hash_key(API_KEY)): {"current": WEBHOOK_SECRET},
            key_id(hash_key(API_KEY_2)): {"current": WEBHOOK_SECRET_2}}),
        "SPAMQ_WEBHOOK_POLL_S": "0.2",
    }


@pytest.fixture(scope="session")
def worker(service_env, services_dir):
    proc = start_worker(service_env, log=services_dir / "worker.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def api_url(service_env, services_dir, worker):
    proc, base = start_api(service_env, log=services_dir / "api.log")
    yield base
    proc.stop()


@pytest.fixture(scope="session")
def webhook_deliverer(service_env, services_dir, redis_url):
    proc = start_deliverer(service_env, log=services_dir / "webhooks.log")
    yield proc
    proc.stop()
