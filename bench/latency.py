"""Single-text latency end to end: HTTP -> Flask -> Redis -> Celery worker -> model -> Redis.

    .venv/bin/python -m bench.latency [--model-dir weights/default] [--requests 300]
    .venv/bin/python -m bench.latency --legs [--threads 2] [--seconds 8]

Starts its own redis-server, worker and API on free loopback ports, so nothing else
must be running. Prints a table and writes bench/results/latency.json.

``--legs`` runs only the interactive legs of ``python -m bench`` (the model alone, batched and
batch-1; /v1/predict at 1, 8 and 32 clients with the CPU of each process group) and their three
targets: p50 at 1 client <= batch-1 + 5 ms, 32 clients >= 0.6x the model alone, and the worker's
CPU per request outside the model <= the model's CPU per text.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from api.auth import hash_key
from bench.lib import hardware, percentiles, serving_env, sms_texts, write_results
from scripts.local_services import start_api, start_redis, start_worker
from spamq.settings import Settings


def model_forward_batch1(model_dir: Path, texts: list[str]) -> dict[str, float]:
    """The model's own time for one text (tokenise + forward), configured as the worker is."""
    import torch

    from worker.runner import BatchClassifier, default_threads

    s = Settings()
    torch.set_num_threads(s.torch_threads or max(1, default_threads(1) - 1))  # as worker/process.py
    runner = BatchClassifier(model_dir, device="cpu", precision=s.precision)
    runner.warm_up()
    times = []
    for text in texts:
        t0 = time.perf_counter()
        runner.predict([text])
        times.append(time.perf_counter() - t0)
    return percentiles(times)


def breakdown(redis_url: str, marks: list[tuple[str, float, float]]) -> dict[str, float]:
    """Median ms of each leg of a /v1/predict call, from the job's own timestamps."""
    import statistics

    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    legs: dict[str, list[float]] = {"client -> worker picks it up": [],
                                    "worker: score + store": [], "stored -> client has it": []}
    for job_id, sent, received in marks:
        job = client.hgetall(f"spamq:job:{job_id}")
        started, finished = float(job["started_at"]), float(job["finished_at"])
        legs["client -> worker picks it up"].append(started - sent)
        legs["worker: score + store"].append(finished - started)
        legs["stored -> client has it"].append(received - finished)
    return {leg: statistics.median(v) * 1000 for leg, v in legs.items()}


def time_requests(fn, texts: list[str]) -> dict[str, float]:
    times = []
    for text in texts:
        t0 = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - t0)
    return percentiles(times)


def legs(args: argparse.Namespace) -> dict[str, Any]:
    """The bench's interactive legs alone (see the module's docstring), on ``args.threads``
    torch threads in-process and in the worker."""
    from bench.__main__ import batch_stats, clients, cpu_profile, model_limit, worker_groups

    precision = args.precision or Settings().precision
    texts = sms_texts(args.texts, seed=11)
    r: dict[str, Any] = {"hardware": hardware(), "model_dir": str(args.model_dir),
                         "precision": precision, "torch_threads": args.threads}
    if not args.no_model:
        print("model alone ...", flush=True)
        r["limit"] = model_limit(args.model_dir, texts, precision=precision,
                                 threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis_proc, redis_url = start_redis(work / "redis")
        env = serving_env(redis_url, args.model_dir, precision, args.threads)
        api, base = start_api(env, log=work / "api.log")
        worker = start_worker(env, log=work / "worker.log", timeout=300)
        try:
            groups = worker_groups(api, redis_proc, [worker])
            clients(base, texts, n=8, seconds=1.0)  # warm connections and caches
            for n in args.clients:
                print(f"{n} clients ...", flush=True)
                r[f"clients_{n}"], cpu = cpu_profile(
                    groups, lambda n=n: clients(base, texts, n=n, seconds=args.seconds))
                done = max(r[f"clients_{n}"]["msgs_per_s"] * args.seconds, 1)
                r[f"clients_{n}"]["cpu_ms_per_request"] = {
                    k: round(v * 1000 / done, 2) for k, v in cpu.items()}
            r["batching"] = batch_stats(redis_url)
        finally:
            worker.stop()
            api.stop()
            redis_proc.stop()
    return r


def print_legs(r: dict[str, Any]) -> None:
    print(f"hardware: {r['hardware']}  precision: {r['precision']}  "
          f"torch threads: {r['torch_threads']}")
    if "limit" in r:
        lim = r["limit"]
        print(f"model alone: {lim['msgs_per_s']:.1f} msgs/s batched, batch-1 p50 "
              f"{lim['batch1']['p50_ms']:.2f} ms, {lim['cpu_ms_per_text']:.2f} ms CPU per text")
    for key in sorted((k for k in r if k.startswith("clients_")), key=lambda k: int(k[8:])):
        c = r[key]
        print(f"{key[8:]:>3} clients: {c['msgs_per_s']:7.1f} req/s  p50 {c['p50_ms']:7.2f}  "
              f"p99 {c['p99_ms']:7.2f} ms  errors {c['errors']}  CPU ms/request: "
              + ", ".join(f"{k} {v:.2f}" for k, v in c["cpu_ms_per_request"].items()))
    print(f"batching (worker counters, all legs): {r.get('batching')}")
    if "limit" not in r:
        return
    lim, model_ms = r["limit"], r["limit"]["cpu_ms_per_text"]
    if "clients_1" in r:
        gap = r["clients_1"]["p50_ms"] - lim["batch1"]["p50_ms"]
        print(f"  p50 @1 - batch-1: +{gap:.2f} ms (target <= 5)")
    if "clients_32" in r:
        c32 = r["clients_32"]
        worker = c32["cpu_ms_per_request"]["worker (celery + model)"] - model_ms
        print(f"  32 clients / model alone: {c32['msgs_per_s'] / lim['msgs_per_s']:.2f}x "
              f"(target >= 0.6)")
        print(f"  worker CPU outside the model per request: {worker:.2f} ms against the "
              f"model's {model_ms:.2f} ms per text (target <=)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench/results/latency.json"))
    parser.add_argument("--legs", action="store_true",
                        help="only the bench's interactive legs and their targets")
    parser.add_argument("--clients", type=lambda v: [int(x) for x in v.split(",")],
                        default=[1, 8, 32], help="--legs: client counts, e.g. 1,32")
    parser.add_argument("--seconds", type=float, default=4.0, help="--legs: per leg")
    parser.add_argument("--texts", type=int, default=3000, help="--legs: distinct texts")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 1) - 1),
                        help="--legs: torch threads")
    parser.add_argument("--precision", default=None, help="--legs: SPAMQ_PRECISION")
    parser.add_argument("--no-model", action="store_true",
                        help="--legs: skip the model alone (compare two services' legs)")
    args = parser.parse_args()
    if not (args.model_dir / "manifest.json").exists():
        parser.error(f"no model in {args.model_dir}: run `spamq train` first")
    if args.legs:
        r = legs(args)
        print_legs(r)
        write_results(args.out, r)
        return 0
    texts = sms_texts(args.requests, seed=1)
    results = {"hardware": hardware(), "model_dir": str(args.model_dir)}
    results["model_batch1"] = model_forward_batch1(args.model_dir, texts)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis_proc, redis_url = start_redis(work / "redis")
        bench_key = secrets.token_urlsafe(32)  # the API holds only its hash
        env = {"SPAMQ_REDIS_URL": redis_url, "SPAMQ_MODEL_DIR": str(args.model_dir),
               "SPAMQ_API_KEYS": hash_key(bench_key),
               # auth stays on (its cost is measured); polling every ms is no abuse here
               "SPAMQ_RATE_LIMIT_PER_S": "100000", "SPAMQ_RATE_LIMIT_BURST": "100000"}
        worker = start_worker(env, log=work / "worker.log", timeout=180)
        api, base = start_api(env, log=work / "api.log")
        try:
            session = requests.Session()
            session.headers["X-API-Key"] = bench_key
            for text in texts[:20]:  # warm connections and caches
                session.post(base + "/v1/predict", json={"texts": [text]}, timeout=30)

            marks: list[tuple[str, float, float]] = []

            def sync_predict(text: str) -> None:
                sent = time.time()
                resp = session.post(base + "/v1/predict", json={"texts": [text]}, timeout=30)
                assert resp.status_code == 200, resp.text
                marks.append((resp.json()["id"], sent, time.time()))

            def job_and_poll(text: str) -> None:
                url = base + session.post(base + "/v1/jobs", json={"texts": [text]},
                                          timeout=30).json()["status_url"]
                while session.get(url, timeout=30).json()["status"] != "done":
                    time.sleep(0.001)

            results["sync_predict"] = time_requests(sync_predict, texts)
            results["job_then_poll"] = time_requests(job_and_poll, texts)
            results["sync_predict_breakdown_ms"] = breakdown(redis_url, marks)
        finally:
            api.stop()
            worker.stop()
            redis_proc.stop()

    print(f"hardware: {results['hardware']}")
    print(f"{'what':<32}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'n':>6}")
    for key, label in [("model_batch1", "model alone, batch of 1"),
                       ("sync_predict", "POST /v1/predict (1 text)"),
                       ("job_then_poll", "POST /v1/jobs + poll GET")]:
        r = results[key]
        print(f"{label:<32}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['n']:>6}")
    print("where a /v1/predict call spends its time (medians):")
    for leg, ms in results["sync_predict_breakdown_ms"].items():
        print(f"  {leg:<32}{ms:>9.2f} ms")
    write_results(args.out, results)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
