"""The transport against loopback servers: the pinned address, no redirects, capped reads,
one deadline, verified TLS."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spamq.webhooks.http import post
from spamq.webhooks.urls import Target

SEEN: list[dict] = []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        SEEN.append({"host": self.headers["Host"], "path": self.path, "body": body})
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        status = 302 if self.path.startswith("/redirect") else 200
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
        big = b"x" * 200_000 if self.path.startswith("/big") else b"ok"
        self.send_header("Content-Length", str(len(big)))
        self.end_headers()
        try:
            self.wfile.write(big)
        except OSError:
            pass

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    SEEN.clear()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def target(srv: ThreadingHTTPServer, path: str, scheme: str = "http") -> Target:
    """A name that does not resolve anywhere, pinned to the server's loopback address."""
    return Target(scheme, "hooks.example.com", srv.server_address[1], path, ("127.0.0.1",))


def test_connects_to_the_pinned_address_with_the_hosts_name(server):
    status = post(target(server, "/in?q=1"), {"webhook-id": "msg_1"}, b'{"a":1}',
                  timeout_s=2, max_response_bytes=1024)
    assert status == 200
    assert SEEN == [{"host": f"hooks.example.com:{server.server_address[1]}", "path": "/in?q=1",
                     "body": b'{"a":1}'}]


def test_redirects_are_not_followed(server):
    assert post(target(server, "/redirect"), {}, b"{}", timeout_s=2,
                max_response_bytes=1024) == 302
    assert [s["path"] for s in SEEN] == ["/redirect"]


def test_large_answers_are_read_only_up_to_the_cap(server):
    assert post(target(server, "/big"), {}, b"{}", timeout_s=2, max_response_bytes=64) == 200


def test_one_deadline_for_the_attempt(server):
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        post(target(server, "/slow"), {}, b"{}", timeout_s=0.3, max_response_bytes=64)
    assert time.monotonic() - started < 0.9


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_tls_certificates_are_verified(tmp_path, monkeypatch):
    """A self-signed certificate is refused (no trust without a CA); once trusted, it is
    checked against the host's name, not the pinned address (which it does not name)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=hooks.example.com", "-addext",
                    "subjectAltName=DNS:hooks.example.com", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            post(target(srv, "/in", "https"), {}, b"{}", timeout_s=2, max_response_bytes=64)
        trusted = ssl.create_default_context(cafile=str(cert))
        monkeypatch.setattr(ssl, "create_default_context", lambda: trusted)
        assert post(target(srv, "/in", "https"), {}, b"{}", timeout_s=2,
                    max_response_bytes=64) == 200
        wrong = Target("https", "other.example.com", srv.server_address[1], "/", ("127.0.0.1",))
        with pytest.raises(ssl.SSLCertVerificationError):
            post(wrong, {}, b"{}", timeout_s=2, max_response_bytes=64)
    finally:
        srv.shutdown()
        srv.server_close()
