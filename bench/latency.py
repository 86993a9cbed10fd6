"""Single-text latency end to end: HTTP -> Flask -> Redis -> Celery worker -> model -> Redis.

    .venv/bin/python -m bench.latency [--model-dir weights/default] [--requests 300]

Starts its own redis-server, worker and API on free loopback ports, so nothing else
must be running. Prints a table and writes bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

import requests

from api.auth import hash_key
from bench.common import hardware, percentiles, sms_texts, write_results
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench/results/latency.json"))
    args = parser.parse_args()
    if not (args.model_dir / "manifest.json").exists():
        parser.error(f"no model in {args.model_dir}: run `spamq train` first")
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
