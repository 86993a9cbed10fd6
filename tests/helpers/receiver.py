"""A real webhook endpoint on 127.0.0.1 for the integration tests: it answers by a script,
checks each request's signature and keeps what it saw."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from spamq.webhooks.signing import verify


class Receiver:
    """A webhook endpoint: answers each request by the next (status, delay) of ``script``
    (then 200), checks signatures and headers, and keeps what it saw."""

    def __init__(self, *, secret: str, port: int = 0,
                 script: list[tuple[int, float]] | None = None) -> None:
        self.script, self.secret = list(script or []), secret
        self.requests: list[dict[str, Any]] = []
        self.lock, self.arrived = threading.Lock(), threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = dict(self.headers.items())
                with receiver.lock:
                    status, delay = receiver.script.pop(0) if receiver.script else (200, 0.0)
                    receiver.requests.append({
                        "at": time.time(), "path": self.path, "headers": headers, "body": body,
                        "valid": verify(receiver.secret, headers, body), "status": status})
                receiver.arrived.set()
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the deliverer is gone (killed)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def url(self, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.port}/hook?token=query-secret"

    def processed(self) -> dict[str, dict]:
        """What a receiver acts on: validly signed requests it answered 2xx, once per id."""
        out: dict[str, dict] = {}
        with self.lock:
            for r in self.requests:
                if r["valid"] and 200 <= r["status"] < 300:
                    out.setdefault(r["headers"]["webhook-id"], r)
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
