"""Slow clients against the API: do they hold what normal requests need?

    .venv/bin/python -m bench.slow_clients [--model-dir weights/default] [--servers gthread,gevent]

For each gunicorn worker class (``SPAMQ_API_WORKER_CLASS``): p50/p99 of normal
``POST /v1/predict`` calls (a few client threads), first alone, then while ``--slow`` raw
sockets send full headers with ``Content-Length: --content-length`` and then one body byte
per second each (a connection the server drops is opened again). Target: p99 with the slow
clients <= 2x p99 without. Starts its own redis-server, worker and API on free loopback ports;
without a model in --model-dir it trains a tiny one first (1-2 minutes). Prints a table and
writes bench/results/slow_clients.json.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from api.auth import hash_key
from bench.lib import hardware, model_or_tiny, percentiles, sms_texts, write_results
from scripts.local_services import start_api, start_redis, start_worker
from spamq.settings import Settings


class SlowBodies:
    """``n`` connections that send their headers, then one body byte per second each."""

    def __init__(self, base: str, key: str, *, n: int, content_length: int) -> None:
        host, port = base.removeprefix("http://").split(":")
        self._addr = (host, int(port))
        self._head = (f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {content_length}"
                      "\r\n\r\n").encode()
        self._socks = [self._open() for _ in range(n)]
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket:
        sock = socket.create_connection(self._addr, timeout=5)
        sock.sendall(self._head)
        return sock

    def _trickle(self) -> None:
        while not self._stop.wait(1.0):
            for i, sock in enumerate(self._socks):
                try:
                    sock.sendall(b" ")
                except OSError:  # the server closed it: a real attacker comes back
                    sock.close()
                    self._socks[i] = self._open()
                    self.reopened += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self._socks:
            sock.close()


def normal_calls(base: str, key: str, texts: list[str], *, clients: int,
                 timeout: float) -> dict[str, Any]:
    """``len(texts)`` POST /v1/predict calls of one text each, over ``clients`` threads; a call
    past ``timeout`` counts as failed, at ``timeout``."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(mine: list[str]) -> None:
        session = requests.Session()
        session.headers["X-API-Key"] = key
        for text in mine:
            t0 = time.perf_counter()
            try:
                resp = session.post(base + "/v1/predict", json={"texts": [text]},
                                    timeout=timeout)
                ok = resp.status_code == 200
                why = f"{resp.status_code}"
            except requests.RequestException as exc:
                ok, why = False, type(exc).__name__
            with lock:
                latencies.append(time.perf_counter() - t0)
                if not ok:
                    failures.append(why)

    threads = [threading.Thread(target=client, args=(texts[k::clients],))
               for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {**percentiles(latencies), "max_ms": max(latencies) * 1000,
            "over_5s": sum(s > 5 for s in latencies), "failures": failures}


def measure(server: str, env: dict[str, str], key: str, work: Path,
            args: argparse.Namespace) -> dict[str, Any]:
    api, base = start_api({**env, "SPAMQ_API_WORKER_CLASS": server},
                          log=work / f"api-{server}.log")
    try:
        texts = sms_texts(args.requests, seed=2)

        def calls(some: list[str]) -> dict[str, Any]:
            return normal_calls(base, key, some, clients=args.clients, timeout=args.call_timeout)

        calls(texts[:20])  # warm up
        idle = calls(texts)
        slow = SlowBodies(base, key, n=args.slow, content_length=args.content_length)
        try:
            time.sleep(2.0)  # every slow connection is accepted and waiting for its body
            loaded = calls(texts)
        finally:
            slow.close()
        loaded["slow_connections_reopened"] = slow.reopened
    finally:
        api.stop()
    return {"idle": idle, "slow_clients": loaded,
            "p99_ratio": loaded["p99_ms"] / idle["p99_ms"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--servers", default="gthread,gevent",
                        help="gunicorn worker classes to measure, in order")
    parser.add_argument("--requests", type=int, default=100, help="normal calls per phase")
    parser.add_argument("--call-timeout", type=float, default=15.0, help="seconds per call")
    parser.add_argument("--clients", type=int, default=4, help="threads sending normal calls")
    parser.add_argument("--slow", type=int, default=24, help="slow-body connections")
    parser.add_argument("--content-length", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/slow_clients.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = model_or_tiny(args.model_dir, work)
        redis_proc, redis_url = start_redis(work / "redis")
        key = secrets.token_urlsafe(32)
        env = {"SPAMQ_REDIS_URL": redis_url, "SPAMQ_MODEL_DIR": str(model_dir),
               "SPAMQ_API_KEYS": hash_key(key),
               "SPAMQ_RATE_LIMIT_PER_S": "100000", "SPAMQ_RATE_LIMIT_BURST": "100000"}
        results: dict[str, Any] = {"hardware": hardware(), "model_dir": str(model_dir),
                                   "slow": args.slow, "content_length": args.content_length,
                                   "clients": args.clients, "requests": args.requests}
        worker = start_worker(env, log=work / "worker.log", timeout=180)
        try:
            for server in args.servers.split(","):
                results[server] = measure(server, env, key, work, args)
        finally:
            worker.stop()
            redis_proc.stop()

    print(f"hardware: {results['hardware']}")
    print(f"{args.requests} POST /v1/predict over {args.clients} clients; slow: {args.slow} "
          f"connections at 1 body byte/s of {args.content_length}")
    print(f"{'server':<9}{'phase':<14}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'>5 s':>6}"
          f"{'failed':>8}")
    for server in args.servers.split(","):
        for phase in ("idle", "slow_clients"):
            r = results[server][phase]
            print(f"{server:<9}{phase:<14}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
                  f"{r['max_ms']:>9.1f}{r['over_5s']:>6}{len(r['failures']):>8}")
        ratio = results[server]["p99_ratio"]
        print(f"  {'MET ' if ratio <= 2 else 'MISS'}  {server}: p99 with slow clients "
              f"<= 2x without: {ratio:.2f}x")
    write_results(args.out, results)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
