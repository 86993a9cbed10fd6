"""One key floods, another is measured: are the shares fair?

    .venv/bin/python -m bench.flood_probe [--model-dir weights/default] [--flood-s 20]
        [--env SPAMQ_MAX_QUEUE_DEPTH=2000 ...] [--phases idle,all_flood]

Starts its own redis-server, Celery worker, API (gunicorn) and webhook deliverer on free
loopback ports (scripts/local_services.py), with two keys, A and B, each with a webhook
signing secret, http webhooks to 127.0.0.1 allowed, and rate limits raised (a 429 is then the
shares', not the token bucket's). Phases, each bounded by ``--flood-s``:

  idle         B alone;
  store_flood  A submits store jobs over a glob of ``--files`` files from ``--threads``
               threads without pause;
  interactive_flood  A submits 256-text jobs from ``--threads`` threads without pause;
  all_flood    all three of A's floods at once, ``--threads`` threads each: store jobs,
               256-text jobs, and one-text jobs whose webhook is a tarpit (a loopback server
               that accepts connections and never answers).

Meanwhile B, each from its own thread every ``--b-every-s``: ``POST /v1/predict`` (one
text), ``POST /v1/jobs`` with one text, and ``POST /v1/jobs`` with a one-file store job; both
jobs carry a webhook to B's own receiver (answers 200 at once). Reports B's p50/p99/max
latency and status counts per endpoint (429, 503 and 504 counted apart), B's webhook delivery
latency (the job's ``finished_at`` to the event's arrival), the time B's jobs took to end,
and A's status counts (429 by kind). A's jobs are cancelled after each phase. Without a
model in --model-dir it trains a tiny one first (1-2 minutes). Prints a table and writes
bench/results/flood_probe.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import secrets
import selectors
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from api.auth import hash_key, key_id
from bench.lib import hardware, model_or_tiny, percentiles, sms_texts, write_results
from scripts.local_services import start_api, start_deliverer, start_redis, start_worker
from spamq.settings import Settings
from spamq.webhooks.signing import new_secret


def _inputs(store: Path, home: str, files: int, rows: int) -> None:
    (store / home / "in").mkdir(parents=True)
    texts = sms_texts(rows, seed=3)
    for f in range(files):
        (store / home / "in" / f"part-{f:03d}.jsonl").write_text(
            "".join(json.dumps({"text": t}) + "\n" for t in texts))


class Tarpit:
    """A loopback server that accepts every connection and never answers (reads and drops
    what it is sent); counts the connections held at once. One thread, one selector: in each
    round the closes seen are counted before the new connections, so a connection closed just
    before the next one opens is not counted as held beside it. At most ``limit`` are held."""

    def __init__(self, limit: int = 256) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.limit, self.held, self.most, self.accepted = limit, 0, 0, 0
        self._closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        conns: list[socket.socket] = []
        while not self._closed.is_set():
            ready = [key.fileobj for key, _ in sel.select(timeout=0.5)]
            for conn in [c for c in ready if c is not self.sock]:
                assert isinstance(conn, socket.socket)
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the client closed (or reset) it
                    sel.unregister(conn)
                    conn.close()
                    conns.remove(conn)
            if self.sock in ready:
                try:
                    while True:
                        conn, _ = self.sock.accept()
                        if len(conns) >= self.limit:
                            conn.close()
                            continue
                        conn.setblocking(False)
                        sel.register(conn, selectors.EVENT_READ)
                        conns.append(conn)
                        self.accepted += 1
                except (BlockingIOError, OSError):
                    pass
            self.held = len(conns)
            self.most = max(self.most, self.held)
        for conn in conns:
            conn.close()
        sel.close()

    def close(self) -> None:
        self._closed.set()
        time.sleep(0.6)
        self.sock.close()


class Receiver:
    """B's webhook receiver: answers 200 at once, keeps (arrival time, body) of each event."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                at = time.time()
                try:
                    event = json.loads(body)
                except ValueError:
                    event = {}
                with receiver._lock:
                    receiver.seen.append((at, event))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def arrivals(self) -> dict[str, tuple[float, dict[str, Any]]]:
        """The first arrival of each job's ``job.completed`` event, by job id."""
        out: dict[str, tuple[float, dict[str, Any]]] = {}
        with self._lock:
            for at, event in self.seen:
                if event.get("type") == "job.completed":
                    out.setdefault(event.get("data", {}).get("id", ""), (at, event))
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def delivery_latency(base: str, key: str, receiver: Receiver, job_ids: dict[str, list[str]],
                     *, wait_s: float) -> dict[str, Any]:
    """B's webhook latency over ``job_ids`` (its jobs answered 202 in one phase, by kind): the
    event's arrival minus the job's ``finished_at`` (``GET /v1/jobs/<id>``), and each job's time
    from ``created_at`` to ``finished_at``; waits at most ``wait_s`` for the last events."""
    every = [j for ids in job_ids.values() for j in ids]
    end = time.monotonic() + wait_s
    while time.monotonic() < end and not set(every) <= set(receiver.arrivals()):
        time.sleep(0.2)
    got = receiver.arrivals()
    session = requests.Session()
    session.headers["X-API-Key"] = key
    lat, unfinished, missing = [], 0, 0
    took: dict[str, list[float]] = {}
    for kind, ids in job_ids.items():
        for job_id in ids:
            view = session.get(f"{base}/v1/jobs/{job_id}", timeout=10).json()
            if not view.get("finished_at"):
                unfinished += 1  # the job itself has not ended: no event is due
                continue
            finished = dt.datetime.fromisoformat(view["finished_at"]).timestamp()
            took.setdefault(kind, []).append(
                finished - dt.datetime.fromisoformat(view["created_at"]).timestamp())
            if job_id in got:
                lat.append(got[job_id][0] - finished)
            else:
                missing += 1  # ended, its event not arrived
    out: dict[str, Any] = {"jobs": len(every), "arrived": len(lat), "missing": missing,
                           "unfinished": unfinished,
                           "job_s": {kind: {"n": len(t), "p50_s": round(statistics.median(t), 2),
                                            "max_s": round(max(t), 2)}
                                     for kind, t in took.items()}}
    if lat:
        out |= {**percentiles(lat), "max_ms": max(lat) * 1000}
    return out


class Flood:
    """Key A's submissions from ``threads`` threads until stopped (or ``limit_s``)."""

    def __init__(self, base: str, key: str, body, *, threads: int, limit_s: float) -> None:
        self.codes: Counter[str] = Counter()
        self.ids: list[str] = []
        self._stop = threading.Event()
        self._end = time.monotonic() + limit_s
        self._lock = threading.Lock()
        self._n = iter(range(10**9))
        self._threads = [threading.Thread(target=self._run, args=(base, key, body), daemon=True)
                         for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self, base: str, key: str, body) -> None:
        session = requests.Session()
        session.headers["X-API-Key"] = key
        while not self._stop.is_set() and time.monotonic() < self._end:
            with self._lock:
                n = next(self._n)
            try:
                resp = session.post(base + "/v1/jobs", json=body(n), timeout=30)
                code = str(resp.status_code)
                if resp.status_code == 429:
                    code += " " + resp.json().get("error", "")
                elif resp.status_code == 202:
                    with self._lock:
                        self.ids.append(resp.json()["id"])
            except requests.RequestException as exc:
                code = type(exc).__name__
            with self._lock:
                self.codes[code] += 1

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def probe_b(base: str, key: str, home: str, *, seconds: float, every_s: float,
            timeout: float, hook_url: str) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Key B's calls for ``seconds``, each kind from its own thread every ``every_s`` (a slow
    answer of one kind does not thin out the others' samples): latency and status counts per
    endpoint, and the ids of its jobs answered 202 by kind (each with a webhook to
    ``hook_url``)."""
    hook = {"url": hook_url, "events": ["job.completed"]}
    calls: dict[str, tuple[str, Callable[[int], dict[str, Any]]]] = {
        "predict": ("/v1/predict", lambda n: {"texts": ["free entry! text WIN to 80085"]}),
        "texts_job": ("/v1/jobs", lambda n: {"texts": ["are you coming tonight?"],
                                             "webhook": hook}),
        "store_job": ("/v1/jobs", lambda n: {"hdfs_input": f"{home}/in/part-000.jsonl",
                                             "hdfs_output": f"{home}/out/{secrets.token_hex(6)}",
                                             "webhook": hook}),
    }
    seen: dict[str, dict[str, Any]] = {name: {"lat": [], "codes": Counter(), "ids": []}
                                       for name in calls}
    end = time.monotonic() + seconds

    def run(name: str, path: str, body: Callable[[int], dict[str, Any]]) -> None:
        session = requests.Session()
        session.headers["X-API-Key"] = key
        n = 0
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                resp = session.post(base + path, json=body(n), timeout=timeout)
                code = str(resp.status_code)
                if resp.status_code >= 400:
                    try:
                        code += " " + resp.json().get("error", "")
                    except ValueError:  # a proxy's or gunicorn's own page
                        pass
                elif resp.status_code == 202 and path == "/v1/jobs":
                    seen[name]["ids"].append(resp.json()["id"])
            except requests.RequestException as exc:
                code = type(exc).__name__
            seen[name]["lat"].append(time.perf_counter() - t0)
            seen[name]["codes"][code] += 1
            n += 1
            time.sleep(every_s)

    threads = [threading.Thread(target=run, args=(name, *call), daemon=True)
               for name, call in calls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + timeout + 10)
    out: dict[str, Any] = {}
    for name, s in seen.items():
        codes = s["codes"]
        out[name] = {**percentiles(s["lat"]), "max_ms": max(s["lat"]) * 1000, "n": len(s["lat"]),
                     "codes": dict(codes),
                     "4xx": sum(v for c, v in codes.items() if c.startswith("4")),
                     "5xx": sum(v for c, v in codes.items() if c.startswith("5")),
                     **{str(status): sum(v for c, v in codes.items()
                                         if c.split(" ")[0] == str(status))
                        for status in (429, 503, 504)}}
    return out, {name: s["ids"] for name, s in seen.items() if s["ids"]}


def _cancel(base: str, key: str, ids: list[str]) -> None:
    session = requests.Session()
    session.headers["X-API-Key"] = key
    for job_id in ids:
        session.delete(f"{base}/v1/jobs/{job_id}", timeout=10)


def _drain(redis_url: str, settings: Settings, limit_s: float = 60.0) -> float:
    """Wait (at most ``limit_s``) until the broker queues are empty; the seconds it took."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        if not client.llen(settings.bulk_queue) + client.llen(settings.interactive_queue):
            break
        time.sleep(0.2)
    return time.monotonic() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--flood-s", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--threads", type=int, default=8, help="key A's submitting threads")
    parser.add_argument("--files", type=int, default=100, help="files in A's store-job glob")
    parser.add_argument("--rows", type=int, default=200, help="rows per input file")
    parser.add_argument("--b-every-s", type=float, default=0.2, help="B's pause between rounds")
    parser.add_argument("--b-timeout", type=float, default=30.0, help="B's client timeout")
    parser.add_argument("--phases", default="idle,store_flood,interactive_flood,all_flood")
    parser.add_argument("--hook-wait-s", type=float, default=60.0,
                        help="the longest wait for B's last webhook events after a phase")
    parser.add_argument("--env", action="append", default=[],
                        help="NAME=VALUE for the services (e.g. SPAMQ_MAX_QUEUE_DEPTH=2000)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/flood_probe.json"))
    args = parser.parse_args()

    key_a, key_b = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    home_a, home_b = (f"tenants/{key_id(hash_key(k))}" for k in (key_a, key_b))
    texts = sms_texts(256, seed=4)
    tarpit, receiver = Tarpit(), Receiver()
    tarpit_hook = {"url": tarpit.url(), "events": ["job.completed"]}

    def store_job(n: int) -> dict[str, Any]:
        return {"hdfs_input": f"{home_a}/in/*.jsonl",
                "hdfs_output": f"{home_a}/out/{n}-{secrets.token_hex(4)}"}

    def texts_job(n: int) -> dict[str, Any]:
        return {"texts": texts}

    def tarpit_job(n: int) -> dict[str, Any]:
        return {"texts": [f"A's text {n}"], "webhook": tarpit_hook}

    bodies: dict[str, dict[str, Callable[[int], dict[str, Any]]]] = {
        "store_flood": {"store": store_job},
        "interactive_flood": {"interactive": texts_job},
        "all_flood": {"store": store_job, "interactive": texts_job, "tarpit_hook": tarpit_job},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = model_or_tiny(args.model_dir, work)
        store = work / "store"
        _inputs(store, home_a, args.files, args.rows)
        _inputs(store, home_b, 1, 20)
        redis_proc, redis_url = start_redis(work / "redis")
        env = {"SPAMQ_REDIS_URL": redis_url, "SPAMQ_MODEL_DIR": str(model_dir),
               "SPAMQ_API_KEYS": f"{hash_key(key_a)},{hash_key(key_b)}",
               "SPAMQ_ARTIFACT_DIR": str(store),
               "SPAMQ_RATE_LIMIT_PER_S": "100000", "SPAMQ_RATE_LIMIT_BURST": "100000",
               # webhooks to loopback receivers (development settings), a secret per key
               "SPAMQ_WEBHOOK_ALLOW_HTTP": "true", "SPAMQ_WEBHOOK_ALLOW_HOSTS": '["127.0.0.1"]',
               "SPAMQ_WEBHOOK_SECRETS": json.dumps(
                   {key_id(hash_key(k)): {"current": new_secret()} for k in (key_a, key_b)}),
               "SPAMQ_WEBHOOK_POLL_S": "0.2",
               **dict(kv.split("=", 1) for kv in args.env)}
        settings = Settings(**{k.removeprefix("SPAMQ_").lower(): v for k, v in env.items()
                               if k.startswith("SPAMQ_") and k != "SPAMQ_API_KEYS"
                               and not k.startswith("SPAMQ_WEBHOOK_")})
        results: dict[str, Any] = {
            "hardware": hardware(), "model_dir": str(model_dir), "flood_s": args.flood_s,
            "threads": args.threads, "files": args.files, "rows": args.rows,
            "env": {k: v for k, v in env.items() if k.startswith("SPAMQ_") and "KEY" not in k
                    and "SECRET" not in k
                    and k not in ("SPAMQ_REDIS_URL", "SPAMQ_MODEL_DIR", "SPAMQ_ARTIFACT_DIR")},
            "max_queue_depth": settings.max_queue_depth,
            "predict_timeout_s": settings.predict_timeout_s,
            "webhook_timeout_s": settings.webhook_timeout_s,
            "webhook_key_concurrency": settings.webhook_key_concurrency}
        worker = start_worker(env, log=work / "worker.log", timeout=180)
        api, base = start_api(env, log=work / "api.log")
        deliverer = start_deliverer(env, log=work / "webhooks.log")
        try:
            for phase in args.phases.split(","):
                floods = {kind: Flood(base, key_a, body, threads=args.threads,
                                      limit_s=args.flood_s + 5)
                          for kind, body in bodies.get(phase, {}).items()}
                if floods:
                    time.sleep(min(3.0, args.flood_s / 4))  # A's backlog builds first
                b, b_jobs = probe_b(base, key_b, home_b, seconds=args.flood_s,
                                    every_s=args.b_every_s, timeout=args.b_timeout,
                                    hook_url=receiver.url())
                results[phase] = {"b": b}
                for flood in floods.values():
                    flood.stop()
                results[phase]["b_webhook"] = delivery_latency(
                    base, key_b, receiver, b_jobs, wait_s=args.hook_wait_s)
                if floods:
                    results[phase]["a_codes"] = {kind: dict(f.codes) for kind, f in floods.items()}
                    if "tarpit_hook" in floods:
                        results[phase]["tarpit"] = {"connections": tarpit.accepted,
                                                    "most_held_at_once": tarpit.most}
                    for flood in floods.values():
                        _cancel(base, key_a, flood.ids)
                    results[phase]["drain_s"] = round(_drain(redis_url, settings), 1)
                print(f"{phase}: done", flush=True)
        finally:
            deliverer.stop()
            api.stop()
            worker.stop()
            redis_proc.stop()
            tarpit.close()
            receiver.close()

    print(f"hardware: {results['hardware']}")
    print(f"{'phase':<18}{'B call':<11}{'n':>5}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'4xx':>5}{'5xx':>5}{'429':>5}{'503':>5}{'504':>5}  codes")
    for phase in args.phases.split(","):
        for name, r in results[phase]["b"].items():
            print(f"{phase:<18}{name:<11}{r['n']:>5}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
                  f"{r['max_ms']:>9.1f}{r['4xx']:>5}{r['5xx']:>5}{r['429']:>5}{r['503']:>5}"
                  f"{r['504']:>5}  {r['codes']}")
        hook = results[phase]["b_webhook"]
        if hook.get("arrived"):
            print(f"{'':<18}{'B webhook':<11}{hook['arrived']:>5}{hook['p50_ms']:>9.1f}"
                  f"{hook['p99_ms']:>9.1f}{hook['max_ms']:>9.1f}  (finished_at to arrival; of "
                  f"{hook['jobs']} jobs, {hook['missing']} ended without an event yet, "
                  f"{hook['unfinished']} not ended)")
        else:
            print(f"{'':<18}B webhook: {hook}")
        for kind, t in hook.get("job_s", {}).items():
            print(f"{'':<18}B {kind} created to finished: n={t['n']} p50 {t['p50_s']} s, "
                  f"max {t['max_s']} s")
        if "a_codes" in results[phase]:
            print(f"{'':<18}key A: {results[phase]['a_codes']}")
        if "tarpit" in results[phase]:
            print(f"{'':<18}tarpit: {results[phase]['tarpit']}")
    write_results(args.out, results)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
