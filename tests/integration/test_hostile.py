"""The hostile-client probe of the hardening issues, against the real gunicorn API, Redis and
worker: every input class is a 4xx naming its field (or a rejected row), nothing is written
across keys, and no input is answered 5xx. Counts go to bench/results/faults.json
("hostile_inputs"); the module fails if any input was answered 5xx."""

from __future__ import annotations

import io
import json
import os
import socket
import uuid
from pathlib import Path

import pytest
import redis
import requests

from tests.helpers.fault_counts import write_counts
from tests.integration.conftest import API_KEY_2, HOME_2, key_areas, wait_for_job

pytestmark = pytest.mark.integration

TRIED: dict[str, int] = {"inputs_tried": 0, "answered_4xx_or_rejected_row": 0, "answered_4xx": 0,
                         "answered_5xx": 0}


@pytest.fixture(scope="module", autouse=True)
def _record():
    yield
    write_counts("hostile_inputs", TRIED)
    assert TRIED["answered_5xx"] == 0, TRIED


def tally(resp: requests.Response) -> requests.Response:
    count(resp.status_code)
    return resp


def count(status: int) -> None:
    TRIED["inputs_tried"] += 1
    TRIED["answered_5xx" if status >= 500 else "answered_4xx_or_rejected_row"] += 1
    TRIED["answered_4xx"] += 400 <= status < 500


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


# --- a compact replay of round 2's hostile inputs (each cheap: no model pass needed) --------

SECRET_ROW = "B-only secret row, never A's"


@pytest.fixture
def areas(service_env):
    """A fresh run directory in each key's area of the services' local store: (store root,
    API_KEY's dir holding in/rows.jsonl, API_KEY_2's dir holding in/rows.csv)."""
    with key_areas(service_env, "hostile") as (root, a, b):
        (a / "in" / "rows.jsonl").write_text('{"text": "hi", "label": "x", "ref": 1, "file": 2}\n')
        (b / "in" / "rows.csv").write_text(f"text\n{SECRET_ROW}\n" * 3)
        yield root, a, b


def rel(root: Path, p: Path) -> str:
    return p.relative_to(root).as_posix()


def tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(d.rglob("*"))}


def refused(resp: requests.Response, status: int, field: str, *hidden: str) -> dict:
    """``resp`` is ``status`` naming ``field`` in the error shape, echoing none of ``hidden``."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error", "field", "message"} and body["field"] == field, body
    for text in hidden:
        assert text not in resp.text, (text, resp.text)
    return body


SURROGATE_HOOK = {"url": "http://127.0.0.1:9/hook\ud800", "events": ["job.completed"]}


@pytest.mark.parametrize("surface", ["texts", "predict", "store", "upload"])
def test_a_lone_surrogate_in_webhook_url_is_422(api_url, areas, surface):
    root, a, _ = areas
    hook = {"webhook": SURROGATE_HOOK}
    if surface == "upload":
        resp = requests.post(api_url + "/v1/jobs", timeout=30,
                             files={"file": ("in.csv", b"text\nhello\n")},
                             data={"column": "text", "webhook": json.dumps(SURROGATE_HOOK)})
    elif surface == "store":
        resp = requests.post(api_url + "/v1/jobs", timeout=30, json={
            "hdfs_input": f"{rel(root, a)}/in/rows.jsonl", "hdfs_output": f"{rel(root, a)}/out",
            **hook})
    else:
        path = "/v1/predict" if surface == "predict" else "/v1/jobs"
        resp = requests.post(api_url + path, json={"texts": ["hi"], **hook}, timeout=30)
    refused(tally(resp), 422, "webhook.url")
    assert not (a / "out").exists()


@pytest.mark.parametrize(("extra", "field"), [
    ({"id_column": "file"}, "id_column"),
    ({"id_column": "ref"}, "id_column"),
    ({"id_column": "label"}, "id_column"),
    ({"keep_columns": ["text", "file"]}, "keep_columns[1]"),
    ({"keep_columns": ["ref"]}, "keep_columns[0]"),
    ({"keep_columns": ["label"]}, "keep_columns[0]"),
])
def test_an_id_or_kept_column_named_file_ref_or_label_is_422(api_url, areas, extra, field):
    root, a, _ = areas
    resp = tally(requests.post(api_url + "/v1/jobs", timeout=30, json={
        "hdfs_input": f"{rel(root, a)}/in/rows.jsonl", "hdfs_output": f"{rel(root, a)}/out",
        **extra}))
    refused(resp, 422, field)
    assert not (a / "out").exists()


#: ends like Parquet (a 300-byte footer) but is none: the request reads the footer itself
FRAMED_GARBAGE = b"PAR1" + b"\x07 SECRET not parquet at all " * 40 + (300).to_bytes(4, "little") \
    + b"PAR1"


@pytest.mark.parametrize("content", [b"SECRET-ROW-CONTENT " * 100, FRAMED_GARBAGE],
                         ids=["not-parquet", "parquet-framed"])
def test_a_garbage_parquet_file_is_422_naming_hdfs_input(api_url, areas, content):
    root, a, _ = areas
    (a / "in" / "bad.parquet").write_bytes(content)
    resp = tally(requests.post(api_url + "/v1/jobs", timeout=30, json={
        "hdfs_input": f"{rel(root, a)}/in/bad.parquet", "hdfs_output": f"{rel(root, a)}/out"}))
    refused(resp, 422, "hdfs_input", "SECRET", str(root))
    assert not (a / "out").exists()


def test_a_symlink_into_another_keys_area_is_422_and_writes_nothing_there(api_url, areas):
    root, a, b = areas
    os.symlink(os.path.relpath(b, a), a / "linkB")  # <A>/run/linkB -> <B>/run
    (a / "deep").mkdir()
    os.symlink(os.path.relpath(b / "in", a / "deep"), a / "deep" / "linkBin")  # a level lower
    before = tree(b)
    mine, out = f"{rel(root, a)}/in/rows.jsonl", f"{rel(root, a)}/out/r1"
    for bad in ("linkB/in/rows.csv", "linkB/in", "linkB/in/*.csv", "deep/linkBin/rows.csv"):
        resp = tally(requests.post(api_url + "/v1/jobs", timeout=30, json={
            "hdfs_input": f"{rel(root, a)}/{bad}", "hdfs_output": out, "column": "text",
            "keep_columns": ["text"]}))
        refused(resp, 422, "hdfs_input", SECRET_ROW, str(root), HOME_2.split("/")[1])
    for bad in ("linkB/out/r1", "linkB/in", "deep/linkBin/out"):
        resp = tally(requests.post(api_url + "/v1/jobs", timeout=30, json={
            "hdfs_input": mine, "hdfs_output": f"{rel(root, a)}/{bad}"}))
        refused(resp, 422, "hdfs_output", str(root), HOME_2.split("/")[1])
    assert tree(b) == before  # nothing written in the other key's area
    assert not (a / "out").exists()


def test_a_malformed_key_header_is_400_and_not_echoed(api_url):
    host, port = api_url.removeprefix("http://").split(":")
    secret = "spamq-leak-" + uuid.uuid4().hex
    for line in (f"X-API-Key {secret}", f"X-API-Key: {secret}\x01", f"X-API-Key {secret}: x"):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(f"GET /v1/jobs/{'0' * 32} HTTP/1.1\r\nHost: t\r\n{line}\r\n\r\n"
                      .encode("latin-1"))
            answer = b""
            while data := s.recv(65536):
                answer += data
        count(int(answer.split(b" ", 2)[1]))
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert secret.encode() not in answer


def test_an_output_inside_or_around_another_jobs_output_is_409(api_url, areas):
    root, a, _ = areas
    mine, first = f"{rel(root, a)}/in/rows.jsonl", f"{rel(root, a)}/out/first"
    job = requests.post(api_url + "/v1/jobs", timeout=30,
                        json={"hdfs_input": mine, "hdfs_output": first})
    assert job.status_code == 202, job.text
    resp = tally(requests.post(api_url + "/v1/jobs", timeout=30,  # reserved in Redis
                               json={"hdfs_input": mine, "hdfs_output": f"{first}/inner"}))
    refused(resp, 409, "hdfs_output", str(root))
    assert wait_for_job(api_url, job.json()["status_url"])["status"] == "done"
    assert (a / "out" / "first" / "_SUCCESS").exists()
    for out in (f"{first}/inner", f"{first}/a/b", f"{rel(root, a)}/out"):  # _SUCCESS; around
        resp = tally(requests.post(api_url + "/v1/jobs", timeout=30,
                                   json={"hdfs_input": mine, "hdfs_output": out}))
        refused(resp, 409, "hdfs_output", str(root))
    assert sorted(p.name for p in (a / "out" / "first").iterdir() if p.is_dir()) == []


def test_no_hostile_input_was_answered_5xx():
    """Last in the module: the tally so far (the module's teardown checks it again)."""
    if not TRIED["inputs_tried"]:
        pytest.skip("no hostile input was tried in this run")
    assert TRIED["answered_5xx"] == 0, TRIED
