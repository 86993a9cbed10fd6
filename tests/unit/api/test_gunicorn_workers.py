"""api/gunicorn_workers.py and the gunicorn command line (the real server:
tests/integration/test_slow_clients.py)."""

from __future__ import annotations

import argparse
import json
import socket

import gevent
import pytest
from werkzeug.exceptions import RequestTimeout

from api.gunicorn_workers import body_deadline, write_json_error
from spamq.cli import main as cli


def test_gunicorn_errors_are_written_as_json():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        write_json_error(ours, 431, "Request Header Fields Too Large", "Error parsing headers")
        ours.shutdown(socket.SHUT_WR)
        answer = theirs.recv(65536)
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"Content-Type: application/json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {"error": "request_header_fields_too_large", "field": None,
                                "message": "Error parsing headers"}


class SlowStream:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def read(self, size: int = -1) -> bytes:
        gevent.sleep(self.seconds)  # where gunicorn's gevent worker waits on the socket
        return b"{}"


def _read_body(stream_seconds: float, deadline_s: float) -> bytes:
    app = body_deadline(lambda environ, start: [environ["wsgi.input"].read()], deadline_s)
    return app({"wsgi.input": SlowStream(stream_seconds)}, None)[0]


def test_a_body_within_the_deadline_is_read():
    assert _read_body(0.01, 5.0) == b"{}"


def test_a_body_past_the_deadline_raises_a_408():
    with pytest.raises(RequestTimeout):
        _read_body(5.0, 0.05)


@pytest.mark.parametrize(("worker_class", "expected"), [
    ("gevent", "--worker-class=api.gunicorn_workers.GeventWorker"),
    ("gthread", "--worker-class=api.gunicorn_workers.ThreadWorker"),
])
def test_the_api_command(monkeypatch, tmp_path, worker_class, expected):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("SPAMQ_API_WORKER_CLASS", worker_class)
    seen = []
    monkeypatch.setattr(cli, "_exec", lambda argv: seen.append(argv) or 0)
    cli._api(argparse.Namespace())
    assert expected in seen[0]
    log_format = next(a for a in seen[0] if a.startswith("--access-logformat="))
    assert "%(U)s" in log_format
    for atom in ("%(r)s", "%(q)s", "%(f)s"):  # request line, query string, referer
        assert atom not in log_format
