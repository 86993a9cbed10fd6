"""API keys issued and revoked in a real OpenBao take effect in a running API; the API rides out
Vault being unreachable (behind a TCP proxy we stop and start, since the dev server is
in-memory and would lose everything on a restart)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import redis
import requests

from api.auth import hash_key, key_id
from scripts.local_services import free_port, start_api, start_redis, start_worker, wait_until
from scripts.random_model import make_random_model
from spamq.jobs.store import JobStore
from spamq.secrets.sources import bootstrap_vault
from tests.helpers.services import Bao
from tests.helpers.vault import answer, approle_env, spamq
from tests.integration.conftest import API_KEY

pytestmark = pytest.mark.integration

CACHE_S = 0.5  # api_keys_cache_s in the API under test (vault_cache_s 0)


class TcpProxy:
    """127.0.0.1:port -> target, in threads; stop() drops the listener and every connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        self._listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return  # listener closed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        if self._listener is not None:
            try:  # wakes the thread blocked in accept() (close alone does not, on Linux)
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, set()
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("SPAMQ_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def vault_redis(tmp_path_factory, openbao: Bao):  # noqa: F811
    """A private redis-server whose URL (and API_KEY's hash) only Vault holds."""
    proc, url = start_redis(tmp_path_factory.mktemp("vault-redis"))
    role_ids = bootstrap_vault(openbao.client(), {"redis_url": url,
                                                  "api_keys": hash_key(API_KEY)})
    yield url, role_ids
    proc.stop()


def api_env(bao: Bao, role_ids: dict[str, str], addr: str | None = None) -> dict[str, str]:
    return {**approle_env(bao, role_ids, "api", addr), "SPAMQ_API_WORKERS": "1",
            "SPAMQ_API_KEYS_CACHE_S": str(CACHE_S), "SPAMQ_VAULT_CACHE_S": "0",
            "SPAMQ_VAULT_TIMEOUT_S": "1", "SPAMQ_VAULT_START_ATTEMPTS": "2"}


def test_keys_issue_list_revoke_reach_the_running_api(
    tmp_path, clean_env, openbao: Bao, vault_redis  # noqa: F811
):
    _, role_ids = vault_redis
    api, base = start_api(api_env(openbao, role_ids), log=tmp_path / "api.log")
    operator = approle_env(openbao, role_ids, "operator")
    try:
        assert answer(base, API_KEY) == 404

        issued = spamq("keys", "issue", "--name", "ci-bot", env=operator)
        assert issued.returncode == 0, issued.stderr[-2000:]
        lines = issued.stdout.splitlines()
        assert len(lines) == 1  # the key, and nothing else, on stdout
        key = lines[0]
        kid = key_id(hash_key(key))
        assert len(key) >= 40 and kid in issued.stderr and key not in issued.stderr
        stored = openbao.client().secrets.kv.v2.read_secret_version(
            path="spamq/api", raise_on_deleted_version=False)["data"]["data"]
        assert hash_key(key) in stored["api_keys"].split(",")
        assert hash_key(API_KEY) in stored["api_keys"].split(",")  # the others are kept
        assert key not in str(stored)  # only its hash is held

        started = time.monotonic()
        wait_until(lambda: answer(base, key) == 404, timeout=CACHE_S + 2, what="issued key")
        print(f"\nissued key accepted after {time.monotonic() - started:.2f} s")

        listed = spamq("keys", "list", env=operator)
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert f"{kid}\tci-bot" in listed.stdout.splitlines()
        assert key_id(hash_key(API_KEY)) in listed.stdout
        assert key not in listed.stdout and hash_key(key) not in listed.stdout

        revoked = spamq("keys", "revoke", kid, env=operator)
        assert revoked.returncode == 0, revoked.stderr[-2000:]
        started = time.monotonic()
        wait_until(lambda: answer(base, key) == 401, timeout=CACHE_S + 2, what="revoked key")
        print(f"revoked key refused after {time.monotonic() - started:.2f} s")
        assert answer(base, API_KEY) == 404  # the other key still works
        assert kid not in spamq("keys", "list", env=operator).stdout

        again = spamq("keys", "revoke", kid, env=operator)
        assert again.returncode == 1 and f"no key with id {kid}" in again.stderr
        # the api role may read the keys but not write them
        denied = spamq("keys", "issue", env=approle_env(openbao, role_ids, "api"))
        assert denied.returncode == 1 and denied.stdout == ""
    finally:
        api.stop()
    text = (tmp_path / "api.log").read_text()
    assert key not in text and hash_key(key) not in text


def test_api_rides_out_vault_unreachable_and_recovers(
    tmp_path, clean_env, openbao: Bao, vault_redis  # noqa: F811
):
    redis_url, role_ids = vault_redis
    host, port = openbao.addr.removeprefix("http://").rsplit(":", 1)
    proxy = TcpProxy((host, int(port)))
    proxy.start()
    model = tmp_path / "model"
    make_random_model(model, seed=3)
    worker = api = None
    try:  # the worker takes its secrets from the environment: only the API depends on Vault
        worker = start_worker({"SPAMQ_REDIS_URL": redis_url, "SPAMQ_MODEL_DIR": str(model),
                               "SPAMQ_WORKER_HEARTBEAT_S": "0.5"},
                              log=tmp_path / "worker.log", name="vaultdown")
        env = api_env(openbao, role_ids, addr=f"http://127.0.0.1:{proxy.port}")
        api, base = start_api(env, log=tmp_path / "api.log")  # no SPAMQ_REDIS_URL: from Vault
        wait_until(lambda: requests.get(base + "/readyz", timeout=5).status_code == 200,
                   timeout=15, what="ready API")

        proxy.stop()
        started = time.monotonic()
        wait_until(lambda: requests.get(base + "/readyz", timeout=5).status_code == 503,
                   timeout=15, what="not-ready API")
        print(f"\nreadyz 503 {time.monotonic() - started:.2f} s after Vault went away")
        body = requests.get(base + "/readyz", timeout=5).json()
        assert "Vault" in body["message"] and body["ready"] is False, body
        assert openbao.addr not in str(body) and str(proxy.port) not in str(body)  # public

        time.sleep(CACHE_S * 3)  # the key list is due for a re-read, which fails: keys held
        created = requests.post(base + "/v1/jobs", json={"texts": ["free prize now", "hi"]},
                                timeout=10)
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        store = JobStore(redis.Redis.from_url(redis_url), ttl_s=60)
        wait_until(lambda: store.jobs.get(job_id).finished, timeout=30, what="job")
        assert store.jobs.get(job_id).status == "done"
        view = requests.get(f"{base}/v1/jobs/{job_id}", timeout=5)
        assert view.status_code == 200 and view.json()["status"] == "done"
        assert answer(base, "not-a-key") == 401  # still fenced while Vault is away

        proxy.start()
        started = time.monotonic()
        wait_until(lambda: requests.get(base + "/readyz", timeout=5).status_code == 200,
                   timeout=15, what="API ready again")
        print(f"readyz 200 {time.monotonic() - started:.2f} s after Vault came back")
        assert answer(base, API_KEY) == 404
    finally:
        for p in (api, worker):
            if p is not None:
                p.stop()
        proxy.stop()
    text = (tmp_path / "api.log").read_text()
    assert "api keys not re-read" in text and redis_url not in text
