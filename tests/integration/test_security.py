"""Security over real processes: API keys, body limits, a password-protected Redis, no secret
in any log, and a bounded schema-driven fuzz of /openapi.json with zero 5xx answers."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
import requests

from api.auth import hash_key
from scripts.local_services import start_api, start_redis, start_worker
from tests.integration.conftest import API_KEY

pytestmark = pytest.mark.integration


def test_keys_are_required_except_on_public_endpoints(api_url):
    for path in ("/healthz", "/readyz", "/", "/openapi.json"):
        assert requests.get(api_url + path, timeout=5, headers={"X-API-Key": ""}).ok, path
    for headers in ({"X-API-Key": ""}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer x"}):
        resp = requests.post(api_url + "/v1/jobs", json={"texts": ["hi"]}, headers=headers,
                             timeout=5)
        assert resp.status_code == 401 and "wrong" not in resp.text
    ok = requests.post(api_url + "/v1/jobs", json={"texts": ["hi"]}, timeout=5,
                       headers={"Authorization": f"Bearer {API_KEY}"})
    assert ok.status_code == 202 and len(ok.json()["id"]) == 32


def test_oversized_bodies_are_413_before_being_read_whole(api_url):
    big = b'{"texts": ["' + b"a" * (9 << 20) + b'"]}'  # over max_body_bytes (8 MiB)
    json_headers = {"Content-Type": "application/json"}
    assert requests.post(api_url + "/v1/jobs", data=big, headers=json_headers,
                         timeout=30).status_code == 413

    def chunked():  # no Content-Length: the limit applies while reading
        for i in range(0, len(big), 1 << 20):
            yield big[i:i + (1 << 20)]

    assert requests.post(api_url + "/v1/jobs", data=chunked(), headers=json_headers,
                         timeout=30).status_code == 413
    for body in (b'{"texts": ["\xff\xfe"]}', b'{"texts": ["a\\u0000"]}', b"[" * 5000 + b"]" * 5000):
        resp = requests.post(api_url + "/v1/jobs", data=body, headers=json_headers, timeout=10)
        assert 400 <= resp.status_code < 500, (body[:20], resp.status_code)


def test_services_run_against_a_password_protected_redis_and_log_no_secret(
    tmp_path, trained_model_dir
):
    password = secrets.token_urlsafe(24)
    key = "sec-" + secrets.token_hex(16)
    proc, url = start_redis(tmp_path / "redis", password=password)
    assert password in url
    env = {"SPAMQ_REDIS_URL": url, "SPAMQ_MODEL_DIR": str(trained_model_dir),
           "SPAMQ_API_KEYS": hash_key(key), "SPAMQ_WORKER_HEARTBEAT_S": "0.5"}
    worker = api = None
    try:
        worker = start_worker(env, log=tmp_path / "worker.log", name="sec")
        api, base = start_api(env, log=tmp_path / "api.log")
        auth = {"X-API-Key": key}
        job = requests.post(base + "/v1/jobs", json={"texts": ["free prize", "hi mum"]},
                            headers=auth, timeout=10).json()
        deadline = time.monotonic() + 60
        while (view := requests.get(base + job["status_url"], headers=auth,
                                    timeout=5).json())["status"] != "done":
            assert time.monotonic() < deadline, view
            time.sleep(0.05)
        assert len(view["results"]) == 2
        assert requests.get(base + "/v1/jobs/nope", headers={"X-API-Key": "bad-" + key},
                            timeout=5).status_code == 401
        import redis

        record = redis.Redis.from_url(url).hgetall(f"spamq:job:{job['id']}")
        flat = b" ".join(k + b"=" + v for k, v in record.items()).decode()
        assert key not in flat and password not in flat and hash_key(key) not in flat
    finally:
        for p in (api, worker, proc):
            if p is not None:
                p.stop()
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*.log"))
    assert "Ready" in logs or "ready" in logs
    for secret in (password, key, hash_key(key)):
        assert secret not in logs


def test_session_logs_hold_no_secret(api_url, services_dir):
    requests.get(api_url + "/v1/jobs/none", headers={"X-API-Key": "leak-me-" + "z" * 20}, timeout=5)
    logs = "".join(p.read_text(errors="replace") for p in Path(services_dir).rglob("*.log"))
    assert logs and API_KEY not in logs and hash_key(API_KEY) not in logs
    assert "leak-me-" not in logs


def test_schema_fuzz_of_the_served_openapi_gets_no_5xx(api_url):
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(api_url + "/openapi.json")
    failures = []
    started = time.monotonic()
    def checker(op):
        @settings(max_examples=15, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(op.as_strategy())
        def check(case):
            resp = case.call(base_url=api_url, headers={"X-API-Key": API_KEY}, timeout=30)
            if resp.status_code >= 500 and resp.status_code != 504:
                failures.append((op.label, resp.status_code, resp.text[:200]))
        return check

    calls = 0
    for operation in schema.get_all_operations():
        checker(operation.ok())()
        calls += 1
        assert time.monotonic() - started < 90
    assert calls >= 8  # every documented operation was fuzzed
    assert not failures, failures
