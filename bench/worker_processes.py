"""``spamq worker --processes N`` measured: each process's memory once its model is loaded, and
a store job's rows/s with N = 1, 2, ... worker processes on this machine, alternated.

    .venv/bin/python -m bench.worker_processes [--model-dir weights/default] [--processes 1 2]
        [--rows 3000] [--rounds 2]

Starts its own redis-server, API (no auth: loopback only) and local artifact store; for each
N, a fresh ``spamq worker --processes N`` (torch threads cores / N; N=1 as `spamq worker`
runs it: cores-1, or SPAMQ_TORCH_THREADS). Memory is ``ps -o rss`` of each process after its
first heartbeat (model loaded and warmed). The job is a JSONL file of SMS texts cut into
``--split-bytes`` splits, so several processes can share it. Writes
bench/results/worker_processes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import requests

from bench.lib import hardware, require_model, sms_texts, write_results
from scripts.local_services import Process, start_api, start_redis, wait_until
from spamq.cli.processes import positive_int
from spamq.jobs.schema import should_stop
from spamq.settings import Settings


def rss_mb(pid: int) -> float:
    out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True)
    return int(out.stdout.strip() or 0) / 1024


def beats(client: redis.Redis) -> list[dict[str, Any]]:
    values = [client.get(k) for k in client.scan_iter(match="spamq:worker:*")]
    return [json.loads(v) for v in values if v]


def one(n: int, *, env: dict[str, str], work: Path, base: str, client: redis.Redis,
        input_path: str, rows: int, label: str, threads: int | None) -> dict[str, Any]:
    log = work / f"workers-{label}.log"
    t0 = time.perf_counter()
    if threads is not None:
        env = {**env, "SPAMQ_TORCH_THREADS": str(threads)}
    group = Process([sys.executable, "-m", "spamq.cli", "worker", f"--processes={n}",
                     f"--name=p{label}@%h"], log=log, env=env)
    try:
        wait_until(lambda: sum(1 for b in beats(client) if b.get("model_version")) >= n,
                   timeout=600, what=f"{n} worker processes", proc=group.proc, log=log)
        ready_s = time.perf_counter() - t0
        pids = [int(b["name"].rsplit(":", 1)[1]) for b in beats(client)]
        rss = [round(rss_mb(p), 1) for p in pids]
        t = time.perf_counter()
        resp = requests.post(base + "/v1/jobs", json={"hdfs_input": input_path,
                                                      "hdfs_output": f"out/{label}"}, timeout=60)
        assert resp.status_code == 202, resp.text
        url = base + resp.json()["status_url"]
        while not should_stop((job := requests.get(url, timeout=30).json())["status"]):
            time.sleep(0.2)
        wall = time.perf_counter() - t
        assert job["status"] == "done", job
        return {"processes": n, "torch_threads": threads or "default",
                "ready_s": round(ready_s, 1), "rss_mb_per_process": rss,
                "rows": rows, "splits": job["chunks"]["total"], "wall_s": round(wall, 2),
                "rows_per_s": round(rows / wall, 1)}
    finally:
        group.stop()
        wait_until(lambda: not beats(client), timeout=30, what="heartbeats gone")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--processes", type=positive_int, nargs="+", default=[1, 2])
    parser.add_argument("--rows", type=positive_int, default=3000)
    parser.add_argument("--split-bytes", type=positive_int, default=16_000)
    parser.add_argument("--rounds", type=positive_int, default=2)
    parser.add_argument("--cores-over-n", action="store_true",
                        help="torch threads cores / N for N = 1 too (default: N = 1 as "
                             "`spamq worker` runs it, cores - 1)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/worker_processes.json"))
    args = parser.parse_args()
    require_model(parser, args.model_dir)
    r: dict[str, Any] = {"hardware": hardware(), "model_dir": str(args.model_dir), "runs": []}
    texts = sms_texts(args.rows, seed=5)
    with tempfile.TemporaryDirectory(prefix="spamq-procs-") as tmp:
        work = Path(tmp)
        store = work / "store"
        (store / "in").mkdir(parents=True)
        (store / "in" / "sms.jsonl").write_text(
            "".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        redis_proc, url = start_redis(work / "redis")
        env = {"SPAMQ_REDIS_URL": url, "SPAMQ_MODEL_DIR": str(args.model_dir),
               "SPAMQ_ARTIFACT_DIR": str(store), "SPAMQ_AUTH_REQUIRED": "false",
               "SPAMQ_SPLIT_BYTES": str(args.split_bytes), "SPAMQ_WORKER_HEARTBEAT_S": "0.5"}
        api, base = start_api(env, log=work / "api.log")
        client = redis.Redis.from_url(url)
        try:
            for k in range(args.rounds):
                for n in args.processes:
                    res = one(n, env=env, work=work, base=base, client=client,
                              input_path="in/sms.jsonl", rows=args.rows, label=f"{n}-{k}",
                              threads=max(1, (os.cpu_count() or 1) // n)
                              if args.cores_over_n else None)
                    print(json.dumps(res), flush=True)
                    r["runs"].append(res)
                    write_results(args.out, r)
        finally:
            api.stop()
            redis_proc.stop()
    print(f"{'processes':>10}{'rows/s (each round)':>30}{'RSS MB per process':>40}")
    for n in args.processes:
        runs = [x for x in r["runs"] if x["processes"] == n]
        print(f"{n:>10}{', '.join(str(x['rows_per_s']) for x in runs):>30}"
              f"{'; '.join(str(x['rss_mb_per_process']) for x in runs):>40}")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
