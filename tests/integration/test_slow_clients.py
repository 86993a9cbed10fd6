"""The server layer (api/gunicorn_workers.py) under gunicorn: slow clients hold no request
thread, a body that stalls is cut off, gunicorn's own errors are JSON, no query strings in the
access log."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from scripts.local_services import start_api
from spamq.samples import SAMPLES
from tests.integration.conftest import API_KEY

pytestmark = pytest.mark.integration


def slow_body(base: str, content_length: int = 1000) -> socket.socket:
    """A connection that sent its headers and the first body byte, and then nothing: the
    server waits on it exactly as on a client sending one byte a second."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {API_KEY}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n{{"
                 .encode())
    return sock


def test_slow_bodies_do_not_hold_back_normal_calls(api_url):
    slow = [slow_body(api_url) for _ in range(24)]  # more than gthread's 2 x 8 threads
    try:
        time.sleep(1.0)  # every one is accepted and waiting for its body

        def call(text: str) -> tuple[int, dict, float]:
            t0 = time.perf_counter()
            resp = requests.post(api_url + "/v1/predict", json={"texts": [text]}, timeout=10)
            return resp.status_code, resp.json(), time.perf_counter() - t0

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(call, (SAMPLES * 20)[:20]))
    finally:
        for sock in slow:
            sock.close()
    for status, body, seconds in answers:
        assert status == 200 and len(body["results"]) == 1, body
        assert seconds < 5, f"a normal call took {seconds:.1f} s behind slow clients"


def test_a_stalled_body_is_cut_off_with_a_json_408(service_env, services_dir):
    env = {**service_env, "SPAMQ_API_BODY_TIMEOUT_S": "1"}
    api, base = start_api(env, log=services_dir / "api-body-timeout.log")
    try:
        sock = slow_body(base)
        t0 = time.monotonic()
        answer = b""
        while chunk := sock.recv(4096):  # the answer, then the server closes the connection
            answer += chunk
        sock.close()
        assert 0.9 < time.monotonic() - t0 < 5
        head, body = answer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 408 ")
        assert b"application/json" in head
        assert json.loads(body)["error"] == "request_timeout"
        assert requests.get(base + "/healthz", timeout=5).status_code == 200
    finally:
        api.stop()


def test_a_too_large_header_answers_json_431(api_url):
    resp = requests.get(api_url + "/healthz", headers={"X-Big": "a" * 8200}, timeout=10)
    assert resp.status_code == 431
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["error"] == "request_header_fields_too_large"
    assert resp.json()["message"]


def test_gunicorn_bad_request_line_answers_json_400(api_url):
    host, port = api_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"NOT AN HTTP REQUEST LINE\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["error"] == "bad_request"


def test_query_strings_are_not_in_the_access_log(api_url, services_dir):
    log = services_dir / "api.log"
    start = log.stat().st_size
    assert requests.get(api_url + "/healthz?api_key=SECRET123", timeout=10).status_code == 200
    deadline = time.monotonic() + 10
    while b'"GET /healthz HTTP/1.1" 200' not in log.read_bytes()[start:]:
        assert time.monotonic() < deadline, "no access line for the request"
        time.sleep(0.1)
    assert b"SECRET123" not in log.read_bytes()
