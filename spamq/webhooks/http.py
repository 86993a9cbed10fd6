"""One POST to a checked :class:`Target`: to the address the guard checked, no redirects, a
capped read of the answer and one deadline for the whole attempt."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time

from spamq.webhooks.urls import Target

USER_AGENT = "spamq-webhooks/1"


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to one of ``addresses``, whatever DNS says of the host now; TLS
    still checks the certificate against the host name (SNI too)."""

    def __init__(self, target: Target, timeout_s: float,
                 tls: ssl.SSLContext | None = None) -> None:
        super().__init__(target.host, target.port, timeout=timeout_s)
        self.default_port = 443 if target.scheme == "https" else 80  # for the Host header
        self._addresses, self._tls = target.addresses, tls

    def connect(self) -> None:
        error: OSError = OSError("no address")
        for address in self._addresses:
            try:
                sock = socket.create_connection((address, self.port), self.timeout)
                break
            except OSError as exc:
                error = exc
        else:
            raise error
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        self.sock = sock


def post(target: Target, headers: dict[str, str], body: bytes, *, timeout_s: float,
         max_response_bytes: int) -> int:
    """POST ``body``; the response status (3xx too: redirects are not followed). Raises
    OSError or http.client.HTTPException, TimeoutError when the attempt took over
    ``timeout_s`` in all."""
    started = time.monotonic()
    tls = ssl.create_default_context() if target.scheme == "https" else None
    conn = _PinnedConnection(target, timeout_s, tls)
    watchdog = threading.Timer(timeout_s, _cut, args=(conn,))  # a server that trickles bytes
    watchdog.start()
    try:
        conn.request("POST", target.path, body=body, headers={
            **headers, "Content-Type": "application/json", "User-Agent": USER_AGENT})
        resp = conn.getresponse()
        resp.read(max_response_bytes)  # read and dropped: never logged, never stored
        status = resp.status
    except (OSError, http.client.HTTPException) as exc:
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"no complete answer within {timeout_s}s") from exc
        raise
    finally:
        watchdog.cancel()
        conn.close()
    if time.monotonic() - started > timeout_s:
        raise TimeoutError(f"no complete answer within {timeout_s}s")
    return status


def _cut(conn: http.client.HTTPConnection) -> None:
    """End a connection from another thread: a blocked read returns at once."""
    try:
        if conn.sock is not None:
            conn.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
