"""Every error answer comes from the one handler (api/errors.py), in the one shape: each route
of the url_map is walked through its error cases (no key, a drained rate limit, a wrong
method, an unknown or malformed job id, a bad body, form or query, full queues, Redis down,
...), and no module builds an error body of its own."""

from __future__ import annotations

import ast
import io
import time
from pathlib import Path

import fakeredis
import pytest
import redis

from api import create_app
from api.auth import PUBLIC_ENDPOINTS, RATE_PREFIX, hash_key, key_id
from api.limits import SUBMITTING
from api.responses import Error
from spamq.jobs.store import JobStore
from spamq.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
KEY = "alice-" + "a" * 40
AUTH = {"X-API-Key": KEY}
SHAPE = {"error", "field", "message"}
UNKNOWN = "f" * 32
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def app_for(tmp_path, store=None, **overrides):
    settings = Settings(**{
        "auth_required": True, "api_keys": KEY, "artifact_dir": tmp_path, "chunk_size": 4,
        "max_texts_per_request": 5, "max_chars_per_text": 50, "max_body_bytes": 4096,
        "predict_timeout_s": 0.05, **overrides})
    return create_app(settings, store=store or JobStore(fakeredis.FakeRedis(), ttl_s=600),
                      send_task=lambda *a, **k: None)


def path_of(rule, job_id: str) -> str:
    return rule.rule.replace("<job_id:job_id>", job_id).replace("<path:name>", "x.js") \
        .replace("<name>", "x")


def cases(app, job_id: str):
    """(endpoint, method, path, request kwargs) of every error case each route has."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        op = getattr(app.view_functions[rule.endpoint], "openapi", None)
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        wrong = next(m for m in METHODS if m not in rule.methods)
        yield rule.endpoint, wrong, path_of(rule, job_id), {"headers": AUTH}
        for method in methods:
            path = path_of(rule, job_id)
            if rule.endpoint not in PUBLIC_ENDPOINTS:
                yield rule.endpoint, method, path, {}  # no key
                yield rule.endpoint, method, path, {"headers": {"X-API-Key": "not-a-key"}}
            if "job_id" in rule.arguments:
                yield rule.endpoint, method, path_of(rule, UNKNOWN), {"headers": AUTH}
                yield rule.endpoint, method, path_of(rule, "NOT-AN-ID"), {"headers": AUTH}
            if op is not None and op.body:
                for data in (b"not json", b"[1, 2]", b"{}", b"{" + b" " * 5000 + b"}"):
                    yield rule.endpoint, method, path, {
                        "headers": AUTH, "data": data, "content_type": "application/json"}
            if op is not None and op.form:
                yield rule.endpoint, method, path, {
                    "headers": AUTH, "content_type": "multipart/form-data",
                    "data": {"column": "x" * 300, "file": (io.BytesIO(b"text\nhi\n"), "a.csv")}}
                yield rule.endpoint, method, path, {
                    "headers": AUTH, "content_type": "multipart/form-data",
                    "data": {"column": "text"}}
            if op is not None and op.query:
                yield rule.endpoint, method, path + "?offset=-1&limit=x&text_sha256=zz&u=1", {
                    "headers": AUTH}


def check(resp, where) -> dict:
    assert resp.status_code >= 400, where
    assert resp.mimetype == "application/json", (where, resp.status_code)
    body = resp.get_json()
    assert SHAPE <= set(body) <= set(Error.model_fields), (where, body)
    assert isinstance(body["error"], str) and body["error"], (where, body)
    assert isinstance(body["message"], str) and body["message"], (where, body)
    assert body["field"] is None or isinstance(body["field"], str), (where, body)
    Error.model_validate(body)
    return body


def test_every_routes_error_cases_answer_in_the_one_shape(tmp_path):
    app = app_for(tmp_path)
    client = app.test_client()
    job_id = client.post("/v1/jobs", json={"texts": ["hi"]}, headers=AUTH).get_json()["id"]
    covered, statuses = set(), set()
    for endpoint, method, path, kwargs in cases(app, job_id):
        resp = client.open(path, method=method, **kwargs)
        if resp.status_code < 400:
            continue  # e.g. a bad query a route does not read
        check(resp, (endpoint, method, path))
        covered.add(endpoint)
        statuses.add(resp.status_code)
    endpoints = {r.endpoint for r in app.url_map.iter_rules()} - {"static"}
    assert covered == endpoints  # every route was answered with an error, in the shape
    assert {400, 401, 404, 405, 413, 422} <= statuses


def test_state_errors_answer_in_the_one_shape(tmp_path):
    client = app_for(tmp_path).test_client()
    job = client.post("/v1/jobs", json={"texts": ["hi"]}, headers=AUTH).get_json()
    url = job["status_url"]
    assert client.delete(url, headers=AUTH).status_code == 200
    again = client.delete(url, headers=AUTH)
    assert again.status_code == 409 and check(again, "cancel")["status"] == "cancelled"
    parts = client.get(url + "/parts", headers=AUTH)
    assert parts.status_code == 404 and check(parts, "parts")["error"] == "not_found"
    outside = client.post("/v1/jobs", headers=AUTH,
                          json={"hdfs_input": "tenants/other/in.csv", "hdfs_output": "out"})
    assert outside.status_code == 403 and check(outside, "outside")["field"] == "hdfs_input"
    slow = client.post("/v1/predict", json={"texts": ["hi"]}, headers=AUTH)
    body = check(slow, "predict")
    assert slow.status_code == 504 and slow.headers["Location"] == body["status_url"]
    metrics = client.get("/metrics", headers=AUTH)  # an API key does not open it
    assert metrics.status_code == 403 and check(metrics, "metrics")["error"] == "forbidden"


def test_limits_and_outages_answer_in_the_one_shape(tmp_path):
    app = app_for(tmp_path, max_pending_rows_per_key=2)
    client = app.test_client()
    store = app.extensions["spamq"]["store"]
    assert client.post("/v1/jobs", json={"texts": ["a", "b"]}, headers=AUTH).status_code == 202
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SUBMITTING:
            method = sorted(rule.methods - {"HEAD", "OPTIONS"})[-1]
            body = {"text" if rule.rule == "/predict" else "texts": ["hi"]}
            resp = client.open(rule.rule, method=method, json=body, headers=AUTH)
            assert resp.status_code == 429 and resp.headers["Retry-After"] == "5", rule.rule
            assert check(resp, rule.rule)["error"] == "over_quota"
    owner = key_id(hash_key(KEY))
    store.redis.hset(RATE_PREFIX + owner, mapping={"tokens": "0", "at": repr(time.time())})
    limited = client.get(f"/v1/jobs/{UNKNOWN}", headers=AUTH)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert check(limited, "rate")["error"] == "rate_limited"

    class Down(fakeredis.FakeRedis):
        def execute_command(self, *args, **kwargs):
            raise redis.ConnectionError("redis at 10.0.0.9:6379 refused")

    down = app_for(tmp_path, store=JobStore(Down(), ttl_s=60)).test_client()
    for method, path in (("GET", f"/v1/jobs/{UNKNOWN}"), ("POST", "/v1/jobs"),
                         ("GET", "/v1/feedback/stats")):
        resp = down.open(path, method=method, json={"texts": ["hi"]}, headers=AUTH)
        body = check(resp, path)
        assert resp.status_code == 503 and body["error"] == "unavailable", body
        assert "10.0.0.9" not in resp.get_data(as_text=True)


def test_every_error_handler_is_the_one_modules():
    app = app_for(Path("/tmp"))
    handlers = [fn for by_code in app.error_handler_spec[None].values()
                for fn in by_code.values()]
    assert handlers and {fn.__module__ for fn in handlers} == {"api.errors"}
    for blueprint, specs in app.error_handler_spec.items():
        assert blueprint is None or not specs, blueprint  # no blueprint answers on its own


def _builds_an_error_body(node: ast.AST) -> bool:
    if isinstance(node, ast.Dict):
        keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
        return {"error", "message"} <= keys
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict":
        return {"error", "message"} <= {k.arg for k in node.keywords}
    return False


@pytest.mark.parametrize("package", ["api", "spamq", "worker"])
def test_no_module_but_the_errors_modules_builds_an_error_body(package):
    allowed = {ROOT / "api" / "errors.py", ROOT / "spamq" / "errors.py",
               ROOT / "spamq" / "client.py"}  # the client reads answers; it stands in for one
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if path in allowed:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        found += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(tree)
                  if _builds_an_error_body(n)]
    assert found == []
