"""Hardening over real processes (gunicorn, a Celery worker, Redis; OpenBao for key revocation):
uploads deleted on refusal and after their job, a per-key upload quota, changed part files
answered 409, a revoked key refused within seconds, a malformed key header never echoed or
logged, a bare public /readyz that drops a killed worker, security headers and a page that asks
before a link's key replaces the kept one."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests

from api.auth import hash_key, key_id
from scripts.local_services import start_api, start_worker, wait_until
from spamq.settings import Settings
from tests.helpers.vault import answer, approle_env, spamq
from tests.integration.conftest import API_KEY, HOME, wait_for_job

pytestmark = pytest.mark.integration

CSV = "id,text\n1,see you at the station at 6\n2,WINNER!! Claim your free prize now\n"
#: a key only this module's private API accepts: a tenant no other test writes
KEY_3 = "spamq-test-" + "z" * 32
HOME_3 = f"tenants/{key_id(hash_key(KEY_3))}"


def store_root() -> Path:
    """The local artifact store the session's API and worker use (their environment's)."""
    return Settings().artifact_dir


def upload(base: str, content: str = CSV, key: str = API_KEY, **form) -> requests.Response:
    return requests.post(base + "/v1/jobs", files={"file": ("in.csv", content.encode())},
                         data={"column": "text", **form}, headers={"X-API-Key": key},
                         timeout=30)


def uploads_of(home: str) -> set[str]:
    where = store_root() / home / "uploads"
    return {p.name for p in where.iterdir()} if where.is_dir() else set()


# --- uploads: deleted on refusal and after their job; a quota per key ---------------------


def test_a_refused_upload_leaves_nothing_in_the_store(api_url):
    before = uploads_of(HOME)
    resp = upload(api_url, column="no_such_column")  # refused after the file was stored
    assert resp.status_code == 422 and resp.json()["field"] == "column", resp.text
    assert uploads_of(HOME) == before


def test_an_upload_is_deleted_once_its_job_has_expired(api_url, redis_url):
    resp = upload(api_url)
    assert resp.status_code == 202, resp.text
    job = wait_for_job(api_url, resp.json()["status_url"])
    assert job["status"] == "done"
    token = job["output"].split("/")[-2]
    assert token in uploads_of(HOME)
    r = redis.Redis.from_url(redis_url)
    member = f"{key_id(hash_key(API_KEY))}/{token}"
    assert r.hget("spamq:uploads:job", member).decode() == job["id"]
    held = int(r.hget(f"spamq:uploads:bytes:{key_id(hash_key(API_KEY))}", "total"))
    # the retention passes: the job's keys expire, and the upload is due for a look
    r.delete(*r.keys(f"spamq:job:{job['id']}*"))
    r.zadd("spamq:uploads:due", {member: 0}, xx=True)
    started = time.monotonic()
    wait_until(lambda: token not in uploads_of(HOME), timeout=20, what="upload deleted")
    print(f"\nupload deleted {time.monotonic() - started:.1f} s after its job expired")
    assert r.hget("spamq:uploads:job", member) is None
    after = int(r.hget(f"spamq:uploads:bytes:{key_id(hash_key(API_KEY))}", "total"))
    assert after == held - len(CSV)


@pytest.fixture(scope="module")
def quota_api(service_env, services_dir, worker):
    """The API with KEY_3 accepted too and a 2.5-upload byte quota per key."""
    env = {**service_env,
           "SPAMQ_API_KEYS": service_env["SPAMQ_API_KEYS"] + "," + hash_key(KEY_3),
           "SPAMQ_MAX_UPLOAD_BYTES_PER_KEY": str(len(CSV) * 5 // 2)}
    proc, base = start_api(env, log=services_dir / "api-quota.log")
    yield base
    proc.stop()


def test_uploads_past_the_key_quota_are_413_naming_file_and_leave_nothing(quota_api):
    earlier = uploads_of(HOME_3)  # an earlier session's (its Redis, and count, are gone)
    first, second = upload(quota_api, key=KEY_3), upload(quota_api, key=KEY_3)
    assert first.status_code == second.status_code == 202
    held = uploads_of(HOME_3)
    assert len(held - earlier) == 2
    third = upload(quota_api, key=KEY_3)
    assert third.status_code == 413 and third.json()["field"] == "file", third.text
    assert uploads_of(HOME_3) == held  # nothing left behind
    other = upload(quota_api)  # another key's quota is its own
    assert other.status_code == 202, other.text


# --- parts changed after they were written -------------------------------------------------


@pytest.mark.parametrize("forged", [
    b"[" * 200_000 + b"]" * 200_000 + b"\n",  # nested deeper than any parser's stack
    b'{"text": "\xff\xfe"}\n',  # not UTF-8
    b"not json at all\n",
    b'{"row": 9999, "label": "ham", "spam_probability": 0.0}\n',  # a row past the count
])
def test_a_changed_part_is_a_409_never_a_500_nor_a_forged_row(api_url, forged):
    resp = upload(api_url)
    job = wait_for_job(api_url, resp.json()["status_url"])
    assert job["status"] == "done", job
    parts = requests.get(f"{api_url}/v1/jobs/{job['id']}/parts", timeout=5).json()["parts"]
    assert [p["rows"] for p in parts] == [2]
    part = store_root() / job["output"] / parts[0]["name"]
    original = part.read_bytes()
    part.write_bytes(original + forged)  # the key's own file, changed in the store
    for query in ("?limit=100", "?format=jsonl", "?format=csv"):
        answer = requests.get(api_url + job["results_url"] + query, timeout=30)
        assert answer.status_code == 409, (query, answer.status_code, answer.text[:200])
        assert answer.json()["error"] == "output_changed"
        assert b"9999" not in answer.content and b"not json" not in answer.content
    part.write_bytes(original)
    whole = requests.get(api_url + job["results_url"] + "?limit=100", timeout=30)
    assert whole.status_code == 200 and len(whole.json()["results"]) == 2


# --- a malformed key header -------------------------------------------------------------------


def raw_request(base: str, head: str) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head.encode("latin-1"))
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_a_malformed_key_header_is_neither_echoed_nor_logged(api_url, services_dir):
    secret = "spamq-leak-" + uuid.uuid4().hex
    for line in (f"X-API-Key {secret}",  # no colon
                 f"X-API-Key: {secret}\x01",  # a control character
                 f"X-API-Key {secret}: x"):  # a header name that is no token
        answer = raw_request(api_url, f"GET /v1/jobs/{'0' * 32} HTTP/1.1\r\nHost: t\r\n"
                                      f"{line}\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert secret.encode() not in answer
        assert b"malformed" in answer
    assert b"header X-API-Key" in raw_request(
        api_url, f"GET / HTTP/1.1\r\nHost: t\r\nX-API-Key {secret}\r\n\r\n")
    time.sleep(0.5)
    assert secret not in (services_dir / "api.log").read_text(errors="replace")


# --- /readyz -----------------------------------------------------------------------------------


def test_readyz_is_a_count_of_live_workers_and_drops_a_killed_one(api_url, service_env,
                                                                   services_dir, redis_url):
    def ready() -> dict:
        return requests.get(api_url + "/readyz", timeout=5).json()

    body = ready()
    assert set(body) == {"ready", "status", "workers"} and body["ready"] is True, body
    live = body["workers"]
    assert isinstance(live, int) and live >= 1
    r = redis.Redis.from_url(redis_url)
    before = set(r.scan_iter(match="spamq:worker:*"))
    env = {**service_env, "SPAMQ_WORKER_HEARTBEAT_S": "3"}  # its heartbeat key lives 9 s
    extra = start_worker(env, log=services_dir / "worker-readyz.log", name="readyz-extra")
    try:
        wait_until(lambda: ready()["workers"] == live + 1, timeout=30, what="a second worker")
        assert "readyz-extra" not in requests.get(api_url + "/readyz", timeout=5).text
        (key,) = set(r.scan_iter(match="spamq:worker:*")) - before
        os.killpg(extra.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: ready()["workers"] == live, timeout=15, what="the killed worker gone")
        print(f"\nkilled worker uncounted after {time.monotonic() - killed:.1f} s")
        assert r.exists(key)  # its heartbeat key outlives it: /readyz no longer counts it
    finally:
        extra.stop()


# --- security headers and the page's key -------------------------------------------------------


def test_every_answer_carries_the_security_headers(api_url):
    for path in ("/", "/static/app.js", "/readyz", "/v1/jobs/" + "0" * 32):
        resp = requests.get(api_url + path, timeout=5)
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "'unsafe-inline'" not in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"


def test_a_links_key_does_not_silently_replace_the_kept_one(browser, api_url):  # noqa: F811
    from selenium.webdriver.common.by import By

    def kept() -> str:
        return browser.execute_script("return localStorage.getItem('spamq-api-key')")

    def follow(link: str) -> None:  # a fresh load (from "/" a fragment alone would not reload)
        browser.get("about:blank")
        browser.get(link)

    browser.get(api_url + "/")
    browser.execute_script("localStorage.clear()")
    follow(api_url + "/#key=" + API_KEY)  # nothing kept yet: the link's key is kept
    assert kept() == API_KEY and "#" not in browser.current_url
    assert not browser.find_element(By.ID, "key-notice").is_displayed()

    follow(api_url + "/#key=attacker-key")
    assert "#" not in browser.current_url and "attacker" not in browser.current_url
    assert kept() == API_KEY  # not replaced
    assert browser.find_element(By.ID, "api-key").get_attribute("value") == API_KEY
    notice = browser.find_element(By.ID, "key-notice")
    assert notice.is_displayed()
    browser.find_element(By.ID, "key-keep").click()
    assert not notice.is_displayed() and kept() == API_KEY

    follow(api_url + "/#key=another-key")
    browser.find_element(By.ID, "key-use").click()  # asked, and said yes
    assert kept() == "another-key"
    browser.execute_script("localStorage.clear()")


# --- a revoked key (keys in a real OpenBao) ----------------------------------------------------


@pytest.fixture
def vault_api(tmp_path, openbao, monkeypatch):  # noqa: F811
    """An API whose keys and Redis URL only OpenBao holds, with the default key-list and
    secret caches (api_keys_cache_s, vault_cache_s): what an operator runs."""
    from scripts.local_services import start_redis
    from spamq.secrets.sources import bootstrap_vault

    for name in list(os.environ):
        if name.startswith("SPAMQ_"):
            monkeypatch.delenv(name)
    proc, url = start_redis(tmp_path / "redis")
    role_ids = bootstrap_vault(openbao.client(), {"redis_url": url, "api_keys": hash_key(API_KEY)})
    env = {**approle_env(openbao, role_ids, "api"), "SPAMQ_API_WORKERS": "1"}
    api, base = start_api(env, log=tmp_path / "api.log")
    yield base, approle_env(openbao, role_ids, "operator")
    api.stop()
    proc.stop()


def test_a_revoked_key_is_refused_within_seconds(vault_api):
    base, operator = vault_api
    issued = spamq("keys", "issue", env=operator)
    assert issued.returncode == 0, issued.stderr[-2000:]
    key = issued.stdout.strip()
    wait_until(lambda: answer(base, key) == 404, timeout=10, what="issued key accepted")
    for _ in range(5):  # the key list is now in every cache the API holds
        assert answer(base, key) == 404
    revoked = spamq("keys", "revoke", key_id(hash_key(key)), env=operator)
    assert revoked.returncode == 0, revoked.stderr[-2000:]
    started = time.monotonic()
    while answer(base, key) != 401:
        assert time.monotonic() - started < 10, "a revoked key still works after 10 s"
        time.sleep(0.05)
    took = time.monotonic() - started
    print(f"\nrevoked key refused {took:.2f} s after `spamq keys revoke` returned")
    assert took <= Settings().api_keys_cache_s + 1.0
    assert answer(base, API_KEY) == 404  # the others still work
