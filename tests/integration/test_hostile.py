"""The hostile-client probe of the hardening issue, against the real gunicorn API, Redis and
worker: every input class is a 4xx naming its field (or a rejected row), nothing is written
across keys. Counts go to bench/results/faults.json ("hostile_inputs")."""

from __future__ import annotations

import io
import json

import pytest
import redis
import requests

from tests.integration.conftest import API_KEY_2, wait_for_job
from tests.integration.fault_counts import write_counts

pytestmark = pytest.mark.integration

TRIED: dict[str, int] = {"inputs_tried": 0, "answered_4xx_or_rejected_row": 0, "answered_5xx": 0}


@pytest.fixture(scope="module", autouse=True)
def _record():
    yield
    write_counts("hostile_inputs", TRIED)


def tally(resp: requests.Response) -> requests.Response:
    TRIED["inputs_tried"] += 1
    TRIED["answered_5xx" if resp.status_code >= 500 else "answered_4xx_or_rejected_row"] += 1
    return resp


def snapshot(r: redis.Redis, job_id: str) -> dict:
    return {k: r.dump(k) for k in sorted(r.keys(f"spamq:job:{job_id}*"))}


def test_another_keys_job_ids_with_suffixes_write_nothing_and_look_unknown(api_url, redis_url):
    r = redis.Redis.from_url(redis_url)
    job = requests.post(api_url + "/v1/jobs", json={"texts": ["hi", "win a prize"]},
                        timeout=10).json()
    done = wait_for_job(api_url, job["status_url"])
    assert done["status"] == "done"
    before, cancelled = snapshot(r, job["id"]), r.hget("spamq:stats:jobs", "cancelled")
    unknown = requests.get(f"{api_url}/v1/jobs/{'f' * 32}", timeout=10)
    other = {"X-API-Key": API_KEY_2}
    for suffix in (":results", ":texts", ":finished", ":rows", ":rejected", ""):
        for method, tail in (("delete", ""), ("get", ""), ("get", "/results")):
            resp = tally(requests.request(method, f"{api_url}/v1/jobs/{job['id']}{suffix}{tail}",
                                          headers=other, timeout=10))
            assert resp.status_code == 404, (method, suffix, tail, resp.text)
            assert resp.json() == unknown.json()
    assert snapshot(r, job["id"]) == before
    assert r.hget("spamq:stats:jobs", "cancelled") == cancelled
    assert requests.get(api_url + job["status_url"], timeout=10).json()["status"] == "done"


@pytest.mark.parametrize("body, field", [
    (b'{"texts": ["\\ud800"]}', "texts[0]"),                       # a lone surrogate
    (b'{"texts": ["ok", "\\u200b\\u200d\\ufeff"]}', "texts[1]"),   # only zero-width characters
    (b'{"texts": ["a\\u0000b"]}', "texts[0]"),
    (b"[" * 100_000 + b"]" * 100_000, None),                        # nested past any parser
    (b'{"texts": "not a list"}', "texts"),
])
def test_bad_json_bodies_are_4xx_naming_the_field(api_url, body, field):
    for key in (None, "idem-" + str(abs(hash(body)))):  # and the Idempotency-Key stays usable
        headers = {"Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})}
        resp = tally(requests.post(api_url + "/v1/jobs", data=body, headers=headers, timeout=30))
        assert 400 <= resp.status_code < 500 and resp.json()["field"] == field, resp.text
    ok = requests.post(api_url + "/v1/jobs", json={"texts": ["fine"]}, timeout=10,
                       headers={"Idempotency-Key": key})
    assert ok.status_code == 202, ok.text


def rejected_reasons(api_url: str, job: dict) -> list[str]:
    resp = requests.get(api_url + job["rejected_url"], timeout=10)
    return [json.loads(line)["reason"] for line in resp.text.splitlines()]


def test_bad_upload_rows_are_rejected_with_reasons(api_url):
    lines = [json.dumps({"text": "hello"}), '{"text": "\\ud800"}', "[" * 100_000 + "]" * 100_000,
             json.dumps({"text": "\u200b\u2060"}), json.dumps({"text": "bye"})]
    resp = tally(requests.post(api_url + "/v1/jobs", timeout=30, data={"column": "text"},
                               files={"file": ("x.jsonl", io.BytesIO("\n".join(lines).encode()))}))
    assert resp.status_code == 202, resp.text
    job = wait_for_job(api_url, resp.json()["status_url"])
    assert job["status"] == "done" and job["progress"]["total"] == 2 and job["rejected"] == 3
    reasons = rejected_reasons(api_url, job)
    assert sorted(reasons) == sorted(["not valid Unicode (a lone surrogate)",
                                      "not valid JSON (nested too deep)", "empty or blank"])
    unclosed = 'text\nhello\n"never closed, and\nthe rest of the file\n'
    resp = tally(requests.post(api_url + "/v1/jobs", timeout=30, data={"column": "text"},
                               files={"file": ("x.csv", io.BytesIO(unclosed.encode()))}))
    assert resp.status_code == 202, resp.text
    job = wait_for_job(api_url, resp.json()["status_url"])
    assert job["progress"]["total"] == 1 and job["rejected"] == 1  # not one silent merged row
    assert rejected_reasons(api_url, job) == ["csv: a quoted field is not closed"]


def test_idempotency_key_reuse_with_another_body_is_a_422(api_url):
    headers = {"Idempotency-Key": "reuse-check-1"}
    first = requests.post(api_url + "/v1/jobs", json={"texts": ["a"]}, headers=headers, timeout=10)
    assert first.status_code == 202
    resp = tally(requests.post(api_url + "/v1/jobs", json={"texts": ["b"]}, headers=headers,
                               timeout=10))
    assert resp.status_code == 422 and resp.json()["field"] == "Idempotency-Key"


def test_bad_paths_are_4xx_naming_the_field(api_url):
    for path in ("a" * 300, "x/\u0000/y", "../../etc/passwd", "x\ud800y", "/"):
        body = json.dumps({"hdfs_input": path, "hdfs_output": "out"}).encode()
        resp = tally(requests.post(api_url + "/v1/jobs", data=body, timeout=10,
                                   headers={"Content-Type": "application/json"}))
        assert 400 <= resp.status_code < 500 and resp.json()["field"] in (
            "hdfs_input", "hdfs_output"), resp.text
        assert "/work" not in resp.text and "weights" not in resp.text
