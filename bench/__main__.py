"""The serving benchmark, every design side by side in one run on one machine and model.

    .venv/bin/python -m bench [--model-dir weights/default] [--seconds 4] [--bulk-seconds 8]
    make bench

(1) the model's own batched throughput (tokenise + length-sorted batches, no queue);
(2) bulk throughput end to end (file upload -> API -> Redis -> Celery -> batcher), with the
    progress timeline; (3) single-text latency at 1, 8 and 32 concurrent clients; (4) the naive
    design (one Celery task per text, solo pool: no cross-request batching), same model;
(5) interactive latency while a large bulk job runs; (6) the study project's way (one text per
forward pass, padded to 256, fp32); (7) the null model: the same worker, tokenizer and I/O with
a forward pass that costs nothing (SPAMQ_NULL_MODEL, bench only): the pipeline's ceiling for
bulk and for /v1/predict at 32 clients; (8) the fast tokenizer alone (``encode_batch``) on the
same texts and cores (bench/null_model.py). ``--null-only`` runs (7) and (8) alone. Starts its
own redis-server, worker(s) and API on free ports. Prints a table and writes
bench/results/bench.json.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

from bench import null_model
from bench.lib import (
    add_serving_arguments,
    hardware,
    percentiles,
    require_model,
    serving_env,
    sms_texts,
    write_results,
)
from scripts.local_services import start_api, start_redis, start_worker
from spamq.cli.processes import positive_int
from spamq.jobs.schema import should_stop
from spamq.settings import Settings

#: the model-alone passes on CUDA: rows and tokens per pass sized for a GPU, not a CPU
GPU_PASS = {"batch_size": 512, "max_batch_tokens": 512 * 64}


def model_limit(model_dir: Path, texts: list[str], *, precision: str, threads: int,
                device: str = "cpu", batch_size: int | None = None,
                max_batch_tokens: int | None = None) -> dict[str, Any]:
    """(1) and the batch-1 time: the runner alone, in this process."""
    import torch

    from worker.runner import BatchClassifier

    torch.set_num_threads(threads)
    s = Settings()
    runner = BatchClassifier(model_dir, device=device, precision=precision,
                             batch_size=batch_size or s.batch_size,
                             max_batch_tokens=max_batch_tokens or s.batch_max_tokens)
    runner.warm_up()
    runner.predict(texts[:256])
    batched, cpu_ms = 0.0, float("inf")
    for _ in range(2):  # the first pass over new shapes pays kernel set-up: keep the best
        t0, c0 = time.perf_counter(), time.process_time()
        runner.predict(texts)
        batched = max(batched, len(texts) / (time.perf_counter() - t0))
        cpu_ms = min(cpu_ms, (time.process_time() - c0) * 1000 / len(texts))
    one = []
    for text in texts[:200]:
        t = time.perf_counter()
        runner.predict([text])
        one.append(time.perf_counter() - t)
    return {"msgs_per_s": batched, "n": len(texts), "batch1": percentiles(one),
            "cpu_ms_per_text": cpu_ms}


def study_way(model_dir: Path, texts: list[str], *, threads: int,
              device: str = "cpu") -> dict[str, Any]:
    """(6) one text per forward pass, padded to 256 tokens, fp32."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from spamq.text import normalize

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
    model.eval().to(device)
    with torch.inference_mode():
        t0 = time.perf_counter()
        for text in texts:
            enc = tok(normalize(text), padding="max_length", truncation=True, max_length=256,
                      return_tensors="pt").to(device)
            torch.softmax(model(**enc).logits, dim=-1).cpu()
        seconds = time.perf_counter() - t0
    return {"msgs_per_s": len(texts) / seconds, "n": len(texts)}


def clients(base: str, texts: list[str], *, n: int, seconds: float,
            headers: dict[str, str] | None = None) -> dict[str, Any]:
    """``n`` concurrent clients, each POSTing one text at a time to /v1/predict (with
    ``headers``, e.g. an API key, on every request)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(k: int) -> None:
        session = requests.Session()
        session.headers.update(headers or {})
        mine, i = [], k
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            resp = session.post(base + "/v1/predict", json={"texts": [texts[i % len(texts)]]},
                                timeout=60)
            if resp.status_code != 200:
                errors[0] += 1
            mine.append(time.perf_counter() - t)
            i += n
        with lock:
            latencies.extend(mine)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {**percentiles(latencies), "msgs_per_s": len(latencies) / wall, "errors": errors[0],
            "clients": n}


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by every live process of a process group."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ... utime stime
            total += int(fields[11]) + int(fields[12])
    return total / tick


def cpu_profile(groups: dict[str, int], run) -> tuple[Any, dict[str, float]]:
    """Run ``run()``; where the CPU went meanwhile: seconds per process group and this process."""
    before = {name: group_cpu_s(pgid) for name, pgid in groups.items()}
    own = os.times()
    result = run()
    own_after = os.times()
    used = {name: group_cpu_s(pgid) - before[name] for name, pgid in groups.items()}
    used["bench clients (this process)"] = (own_after.user + own_after.system
                                           - own.user - own.system)
    return result, used


def csv_upload(texts: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text"])
    writer.writerows([t] for t in texts)
    return buffer.getvalue().encode()


def bulk_job(base: str, texts: list[str], *, poll_s: float = 0.25) -> dict[str, Any]:
    """(2) a file upload job, polled for progress until done."""
    t0 = time.perf_counter()
    created = requests.post(base + "/v1/jobs", files={"file": ("bulk.csv", csv_upload(texts))},
                            timeout=120).json()
    timeline = []
    while True:
        job = requests.get(base + created["status_url"], timeout=30).json()
        timeline.append({"t": round(time.perf_counter() - t0, 3), "done": job["progress"]["done"],
                         "rows_per_s": job["rate"]["rows_per_s"], "eta_s": job["rate"]["eta_s"]})
        if should_stop(job["status"]):
            break
        time.sleep(poll_s)
    wall = time.perf_counter() - t0
    assert job["status"] == "done", job
    return {"n": len(texts), "wall_s": wall, "msgs_per_s": len(texts) / wall,
            "server_rows_per_s": job["rate"]["rows_per_s"], "timeline": timeline}


def bulk_with_interactive(base: str, bulk_texts: list[str], texts: list[str], *,
                          seconds: float) -> dict[str, Any]:
    """(5) one interactive client while a large bulk job runs."""
    created = requests.post(base + "/v1/jobs", files={"file": ("bulk.csv", csv_upload(bulk_texts))},
                            timeout=120).json()
    while requests.get(base + created["status_url"], timeout=30).json()["progress"]["done"] == 0:
        time.sleep(0.05)
    loaded = clients(base, texts, n=1, seconds=seconds)
    job = requests.get(base + created["status_url"], timeout=30).json()
    loaded["bulk_still_running"] = job["status"] == "running"
    loaded["bulk_done_during"] = job["progress"]["done"]
    requests.delete(base + created["status_url"], timeout=30)
    return loaded


def batch_stats(redis_url: str) -> dict[str, Any]:
    import redis

    from spamq.jobs.store import JobStore

    store = JobStore(redis.Redis.from_url(redis_url), ttl_s=60)
    return next(iter(store.workers.batch_stats().values()), {})


def run(args: argparse.Namespace) -> dict[str, Any]:
    from worker.runner import pick_device

    settings = Settings()
    precision = args.precision or settings.precision
    device = pick_device(settings.device).type  # the worker's own choice (SPAMQ_DEVICE)
    texts = sms_texts(args.texts, seed=11)
    r: dict[str, Any] = {"hardware": hardware(), "model_dir": str(args.model_dir),
                         "precision": precision, "torch_threads": args.threads, "device": device,
                         "workers": args.workers}
    def step(what: str) -> None:
        """Progress, with the results so far written (a run cut off by a limit keeps them)."""
        write_results(args.out, r)
        print(what, flush=True)

    if not args.null_only:
        step(f"(1) model alone on {device} ...")
        gpu_sized = GPU_PASS if device == "cuda" else {}
        r["limit"] = model_limit(args.model_dir, texts, precision=precision,
                                 threads=args.threads, device=device, **gpu_sized)
        step("(6) study way ...")
        r["study"] = study_way(args.model_dir, texts[: args.study_texts], threads=args.threads,
                               device=device)
    step("(8) tokenizer alone ...")
    r["tokenizer_1"] = null_model.tokenizer_alone(args.model_dir, texts, threads=1)
    tok_threads = null_model.worker_tokenizer_threads()
    r["tokenizer"] = r["tokenizer_1"] if tok_threads == 1 else null_model.tokenizer_alone(
        args.model_dir, texts, threads=tok_threads)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis_proc, redis_url = start_redis(work / "redis")
        env = serving_env(redis_url, args.model_dir, precision, args.threads)
        api, base = start_api(env, log=work / "api.log")
        workers: list[Any] = []
        try:
            if args.null_only:
                null_legs(args, r, env, work, base, api, redis_proc, texts, step, workers)
                return r
            workers = [start_worker(env, log=work / f"worker{k}.log", name=f"w{k}",
                                    timeout=300) for k in range(1, args.workers + 1)]
            groups = worker_groups(api, redis_proc, workers)
            clients(base, texts, n=8, seconds=1.0)  # warm connections and caches
            for n in (1, 8, 32):
                step(f"(3) {n} clients ...")
                r[f"clients_{n}"], cpu = cpu_profile(
                    groups, lambda n=n: clients(base, texts, n=n, seconds=args.seconds))
                done = r[f"clients_{n}"]["msgs_per_s"] * args.seconds
                r[f"clients_{n}"]["cpu_ms_per_request"] = {
                    k: round(v * 1000 / max(done, 1), 2) for k, v in cpu.items()}
            r["batching_after_latency_runs"] = batch_stats(redis_url)
            n_bulk = int(min(max(r["limit"]["msgs_per_s"] * args.bulk_seconds, 2000), 200_000))
            bulk_texts = (texts * (n_bulk // len(texts) + 1))[:n_bulk]
            step(f"(2) bulk job of {n_bulk} texts ...")
            r["bulk"] = bulk_job(base, bulk_texts)
            step("(5) interactive during bulk ...")
            r["idle_1_client"] = clients(base, texts, n=1, seconds=args.seconds)
            big = bulk_texts * 3  # outlasts the measurement
            r["during_bulk"] = bulk_with_interactive(base, big, texts, seconds=args.seconds)
            for w in workers:
                w.stop()
            step("(4) naive: one task per text, solo pool ...")
            naive_env = {**env, "SPAMQ_WORKER_POOL": "solo", "SPAMQ_WORKER_CONCURRENCY": "1"}
            workers = [start_worker(naive_env, log=work / "worker-naive.log", timeout=300)]
            clients(base, texts, n=8, seconds=1.0)
            r["naive_32"] = clients(base, texts, n=32, seconds=args.seconds)
            for w in workers:
                w.stop()
            workers = []
            null_legs(args, r, env, work, base, api, redis_proc, texts, step, workers)
        finally:
            for w in workers:
                w.stop()
            api.stop()
            redis_proc.stop()
    return r


def worker_groups(api: Any, redis_proc: Any, workers: list[Any],
                  what: str = "worker (celery + model)") -> dict[str, int]:
    """The process groups whose CPU the bench counts: API, Redis, each worker."""
    return {"API (gunicorn)": api.proc.pid, "redis-server": redis_proc.proc.pid,
            **{what + (f" w{k}" if k > 1 else ""): w.proc.pid
               for k, w in enumerate(workers, 1)}}


def null_legs(args: argparse.Namespace, r: dict[str, Any], env: dict[str, str], work: Path,
              base: str, api: Any, redis_proc: Any, texts: list[str], step: Any,
              workers: list[Any]) -> None:
    """(7) the null model: ``args.workers`` worker processes whose forward pass costs nothing
    (appended to ``workers``, which the caller stops), /v1/predict at 32 clients and a bulk
    file job end to end."""
    for k in range(1, args.workers + 1):
        workers.append(start_worker(null_model.null_env(env), log=work / f"worker-null{k}.log",
                                    name=f"null{k}", timeout=300))
    groups = worker_groups(api, redis_proc, workers, what="worker (null model)")
    clients(base, texts, n=8, seconds=1.0)
    step("(7) null model, 32 clients ...")
    r["null_32"], cpu = cpu_profile(
        groups, lambda: clients(base, texts, n=32, seconds=args.seconds))
    done = r["null_32"]["msgs_per_s"] * args.seconds
    r["null_32"]["cpu_ms_per_request"] = {k: round(v * 1000 / max(done, 1), 2)
                                          for k, v in cpu.items()}
    # sized from the tokenizer's own rate: the ceiling is at most that
    n = int(min(max(r["tokenizer"]["msgs_per_s"] * args.bulk_seconds / 2, 5000), 200_000))
    step(f"(7) null model, bulk job of {n} texts ...")
    r["null_bulk"], cpu = cpu_profile(
        groups, lambda: bulk_job(base, (texts * (n // len(texts) + 1))[:n]))
    r["null_bulk"]["cpu_ms_per_row"] = {k: round(v * 1000 / n, 3) for k, v in cpu.items()}


def outside_model_ratio(r: dict[str, Any], n: int = 32) -> float:
    """CPU per request spent outside the model (API, worker's own code, Redis) over the
    model's CPU per text (batched, in-process): the fixed per-request cost, in model units."""
    model_ms = r["limit"]["cpu_ms_per_text"]
    shares = r[f"clients_{n}"]["cpu_ms_per_request"]
    total = sum(v for k, v in shares.items() if not k.startswith("bench clients"))
    return (total - model_ms) / model_ms


def targets(r: dict[str, Any]) -> list[tuple[str, str, bool]]:
    null = null_model.target(r)
    return full_targets(r) + ([null] if null else [])


def full_targets(r: dict[str, Any]) -> list[tuple[str, str, bool]]:
    if "limit" not in r:  # --null-only
        return []
    lim = r["limit"]["msgs_per_s"]
    c32 = r["clients_32"]["msgs_per_s"]
    p50_gap = r["clients_1"]["p50_ms"] - r["limit"]["batch1"]["p50_ms"]
    return [
        ("(2) bulk >= 0.9x (1)", f"{r['bulk']['msgs_per_s'] / lim:.2f}x",
         r["bulk"]["msgs_per_s"] >= 0.9 * lim),
        ("(3) 32 clients >= 0.6x (1)", f"{c32 / lim:.2f}x", c32 >= 0.6 * lim),
        ("(3) 32 clients >= 2x (4)", f"{c32 / r['naive_32']['msgs_per_s']:.2f}x",
         c32 >= 2 * r["naive_32"]["msgs_per_s"]),
        ("(3) p50 @1 <= batch-1 + 3 ms", f"+{p50_gap:.2f} ms", p50_gap <= 3.0),
        ("(5) p99 under bulk <= 2x idle",
         f"{r['during_bulk']['p99_ms'] / r['idle_1_client']['p99_ms']:.2f}x",
         r["during_bulk"]["p99_ms"] <= 2 * r["idle_1_client"]["p99_ms"]),
        ("(3) CPU outside model <= model's, 32 cl.", f"{outside_model_ratio(r):.2f}x",
         outside_model_ratio(r) <= 1.0),
        ("(1) >= 10x (6)", f"{lim / r['study']['msgs_per_s']:.1f}x",
         lim >= 10 * r["study"]["msgs_per_s"]),
    ]


def print_table(r: dict[str, Any]) -> None:
    print(f"\nhardware: {r['hardware']}  model: {r['model_dir']}  precision: {r['precision']}")
    print(f"--workers {r['workers']}: worker processes serving (2), (3), (5) and (7); torch "
          f"threads {r['torch_threads']}")
    print(f"{'what':<44}{'msgs/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    tok = r["tokenizer"]
    rows = [
        ("(1) model alone, batched", r.get("limit")),
        ("    model alone, batch of 1",
         {**r["limit"]["batch1"], "msgs_per_s": None} if "limit" in r else None),
        ("(2) bulk file job end to end", r.get("bulk")),
        ("(3) /v1/predict, 1 client", r.get("clients_1")),
        ("(3) /v1/predict, 8 clients", r.get("clients_8")),
        ("(3) /v1/predict, 32 clients", r.get("clients_32")),
        ("(4) naive (task per text, solo), 32 clients", r.get("naive_32")),
        ("(5) 1 client, idle", r.get("idle_1_client")),
        ("(5) 1 client, during a bulk job", r.get("during_bulk")),
        ("(6) study way (1/pass, pad 256, fp32)", r.get("study")),
        ("(7) null model: bulk file job end to end", r.get("null_bulk")),
        ("(7) null model: /v1/predict, 32 clients", r.get("null_32")),
        ("(8) tokenizer alone, encode_batch, 1 thr.", r["tokenizer_1"]),
        (f"(8) tokenizer alone, encode_batch, {tok['threads']} thr.",
         tok if tok is not r["tokenizer_1"] and tok["threads"] != 1 else None),
    ]
    for label, v in rows:
        if v is None:
            continue
        def f(key: str, v: dict = v) -> str:
            x = v.get(key)
            return f"{x:>9.1f}" if isinstance(x, float | int) else f"{'':>9}"
        print(f"{label:<44}{f('msgs_per_s')}{f('p50_ms')}{f('p95_ms')}{f('p99_ms')}")
    if "limit" in r:
        print(f"batching (worker counters): {r['batching_after_latency_runs']}")
        print(f"model CPU per text (batched, in-process): {r['limit']['cpu_ms_per_text']:.2f} ms")
        for n in (1, 8, 32):
            shares = r[f"clients_{n}"].get("cpu_ms_per_request", {})
            print(f"CPU ms per request, {n} client(s): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in shares.items()))
    if "null_bulk" in r:
        print("(7) null model, CPU ms per request at 32 clients: " + ", ".join(
            f"{k} {v:.2f}" for k, v in r["null_32"]["cpu_ms_per_request"].items()))
        print(f"(7) null model, CPU ms per bulk row ({r['null_bulk']['n']} rows, server "
              f"{r['null_bulk']['server_rows_per_s']} rows/s): " + ", ".join(
                  f"{k} {v:.3f}" for k, v in r["null_bulk"]["cpu_ms_per_row"].items()))
        print(f"(7) null bulk / (8) tokenizer: {null_model.null_ratio(r):.2f}x at "
              f"{tok['threads']} thread(s), "
              f"{r['null_bulk']['msgs_per_s'] / r['tokenizer_1']['msgs_per_s']:.2f}x at 1; "
              f"in CPU time (tokenizer {r['tokenizer_1']['cpu_ms_per_text']:.3f} ms per text "
              f"/ null worker per row): {null_model.cpu_ratio(r):.2f}x")
    for name, value, ok in targets(r):
        print(f"  {'MET ' if ok else 'MISS'}  {name:<34} {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_serving_arguments(
        parser, seconds_help="per latency measurement",
        threads_help="torch threads, in-process and in both workers (default cores-1)")
    parser.add_argument("--study-texts", type=int, default=150)
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="worker processes for (2), (3), (5) and (7) (e.g. several per GPU)")
    parser.add_argument("--null-only", action="store_true",
                        help="only (7) the null model and (8) the tokenizer alone")
    parser.add_argument("--bulk-seconds", type=float, default=8.0, help="size of the bulk job")
    parser.add_argument("--out", type=Path, default=Path("bench/results/bench.json"))
    args = parser.parse_args()
    require_model(parser, args.model_dir)
    results = run(args)
    results["targets"] = [{"target": n, "value": v, "met": ok} for n, v, ok in targets(results)]
    print_table(results)
    write_results(args.out, results)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
