"""Ahead of the peer (issue 16): spamq against BentoML's adaptive batching on the same model.

    make bench-peer [BENCH_ARGS="--seconds 4"]
    .venv-peer/bin/python -m bench.peer [--model-dir weights/default] [--seconds 4] [--threads N]

spamq runs as deployed (API keys required, Redis with a password and AOF fsync every second,
gevent API, Celery worker with the dynamic batcher); the peer is bench/peer_service.py under
``bentoml serve`` (1 worker, ``batchable=True, max_batch_size=32``), loading the same model
directory with the same runner, precision and torch threads. Both serve ``POST /v1/predict
{"texts": [one text]}``; the clients are bench's own (a requests.Session per client: persistent
connections). For n in 1, 8, 32 clients the two are measured alternately (spamq n, then the
peer n; the second round goes peer first), both servers up all along. Prints a table and
writes bench/results/peer.json. BentoML is installed only in .venv-peer (``make bench-peer``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import redis
import requests

from bench.__main__ import clients, cpu_profile
from bench.common import add_serving_arguments, hardware, require_model, sms_texts, write_results
from scripts.local_services import (
    Process,
    free_port,
    start_api,
    start_redis,
    start_worker,
    wait_until,
)

SYSTEMS = ("spamq", "BentoML")


def start_peer(env: dict[str, str], *, log: Path, timeout: float = 300) -> tuple[Process, str]:
    """``bentoml serve`` of bench/peer_service.py on a free port, ready once /readyz answers."""
    port = free_port()
    proc = Process([sys.executable, "-m", "bentoml", "serve", "bench.peer_service:PeerClassifier",
                    "--host", "127.0.0.1", "--port", str(port)], log=log, env=env)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(base + "/readyz", timeout=1).ok, timeout=timeout,
               what="bentoml serve", proc=proc.proc, log=log)
    return proc, base


def descendant_groups(pid: int) -> set[int]:
    """Process groups of ``pid``'s descendants: BentoML starts its workers in new sessions."""
    parent: dict[int, int] = {}
    group: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(stat.parent.name)
        parent[child], group[child] = int(fields[1]), int(fields[2])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, ppid in parent.items():
            if ppid == p and child not in found:
                found.add(child)
                todo.append(child)
    return {group[c] for c in found} - {pid}


def agreement(spamq_base: str, peer_base: str, texts: list[str],
              headers: dict[str, str]) -> dict[str, Any]:
    """Both serve the same model: the same labels, and spam probabilities alike."""
    ours = [requests.post(spamq_base + "/v1/predict", json={"texts": [t]}, headers=headers,
                          timeout=60).json()["results"][0] for t in texts]
    theirs = [requests.post(peer_base + "/v1/predict", json={"texts": [t]},
                            timeout=60).json()[0] for t in texts]
    return {"n": len(texts),
            "same_label": sum(a["label"] == b["label"] for a, b in zip(ours, theirs, strict=True)),
            "max_abs_prob_diff": max(abs(a["spam_probability"] - b["spam_probability"])
                                     for a, b in zip(ours, theirs, strict=True))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    precision = args.precision or os.environ.get("SPAMQ_PRECISION") or "auto"
    texts = sms_texts(args.texts, seed=11)
    key = secrets.token_urlsafe(24)
    auth = {"Authorization": f"Bearer {key}"}
    r: dict[str, Any] = {
        "hardware": hardware(), "model_dir": str(args.model_dir), "precision": precision,
        "torch_threads": args.threads, "seconds": args.seconds, "rounds": args.rounds,
        "python": sys.executable,
        "spamq": "API keys required (rate limit raised past the bench's rate, still checked), "
                 "Redis with password and AOF everysec",
        "peer": f"bentoml {bentoml_version()}, 1 worker, batchable, max_batch_size 32",
        "note": "2 shared vCPUs: timings are noisy", "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis_proc, redis_url = start_redis(work / "redis", password=secrets.token_hex(16))
        conn = redis.Redis.from_url(redis_url)
        conn.config_set("appendonly", "yes")  # as docker-compose.yml runs it
        conn.config_set("appendfsync", "everysec")
        common = {"SPAMQ_MODEL_DIR": str(args.model_dir), "SPAMQ_PRECISION": precision,
                  "SPAMQ_TORCH_THREADS": str(args.threads)}
        env = {**common, "SPAMQ_REDIS_URL": redis_url, "SPAMQ_API_THREADS": "32",
               "SPAMQ_WORKER_HEARTBEAT_S": "0.5", "SPAMQ_AUTH_REQUIRED": "true",
               "SPAMQ_API_KEYS": key, "SPAMQ_RATE_LIMIT_PER_S": "1000000",
               "SPAMQ_RATE_LIMIT_BURST": "1000000"}
        peer_env = {**common, "BENTOML_DO_NOT_TRACK": "true",
                    "BENTOML_HOME": str(work / "bentoml")}
        api, spamq_base = start_api(env, log=work / "api.log")
        worker = start_worker(env, log=work / "worker.log", timeout=300)
        print("starting bentoml serve ...", flush=True)
        peer, peer_base = start_peer(peer_env, log=work / "peer.log")
        peer_workers = sorted(descendant_groups(peer.proc.pid))
        side = {"spamq": (spamq_base, auth, {"API (gunicorn)": api.proc.pid,
                                             "worker (celery + model)": worker.proc.pid,
                                             "redis-server": redis_proc.proc.pid}),
                "BentoML": (peer_base, {}, {
                    "bentoml serve (arbiter)": peer.proc.pid,
                    **{f"bentoml worker (pgid {g})": g for g in peer_workers}})}
        try:
            r["agreement"] = agreement(spamq_base, peer_base, texts[:20], auth)
            for name in SYSTEMS:  # warm connections and caches
                base, headers, _ = side[name]
                clients(base, texts, n=8, seconds=1.0, headers=headers)
            for rnd in range(args.rounds):
                for n in (1, 8, 32):
                    order = SYSTEMS if rnd % 2 == 0 else SYSTEMS[::-1]
                    for name in order:
                        base, headers, groups = side[name]
                        print(f"round {rnd + 1}: {name}, {n} clients ...", flush=True)
                        res, cpu = cpu_profile(groups, lambda b=base, h=headers, n=n: clients(
                            b, texts, n=n, seconds=args.seconds, headers=h))
                        done = max(res["msgs_per_s"] * args.seconds, 1)
                        res["cpu_ms_per_request"] = {k: round(v * 1000 / done, 2)
                                                     for k, v in cpu.items()}
                        r["runs"].append({"round": rnd + 1, "system": name, **res})
        finally:
            peer.stop()
            for g in peer_workers:  # the arbiter stops them; should it not have, they go too
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(g, signal.SIGKILL)
            worker.stop()
            api.stop()
            redis_proc.stop()
    r["summary"] = summary(r["runs"])
    return r


def bentoml_version() -> str:
    from importlib.metadata import version

    return version("bentoml")


def summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per n: the mean over rounds of each system's req/s and p50, and whether spamq is ahead."""
    out = []
    for n in (1, 8, 32):
        row: dict[str, Any] = {"clients": n}
        for name in SYSTEMS:
            mine = [x for x in runs if x["system"] == name and x["clients"] == n]
            row[name] = {"msgs_per_s": statistics.fmean(x["msgs_per_s"] for x in mine),
                         "p50_ms": statistics.fmean(x["p50_ms"] for x in mine),
                         "errors": sum(x["errors"] for x in mine)}
        row["ratio"] = row["spamq"]["msgs_per_s"] / row["BentoML"]["msgs_per_s"]
        row["spamq_ahead"] = row["ratio"] >= 1.0
        out.append(row)
    return out


def print_table(r: dict[str, Any]) -> None:
    print(f"\nhardware: {r['hardware']}  model: {r['model_dir']}  precision: {r['precision']}  "
          f"torch threads: {r['torch_threads']}  ({r['note']})")
    print(f"spamq: {r['spamq']}\npeer: {r['peer']}\nagreement: {r['agreement']}")
    print(f"{'clients':>7} | {'spamq req/s':>11} {'p50 ms':>7} | {'BentoML req/s':>13} "
          f"{'p50 ms':>7} | {'spamq/BentoML':>13}")
    for x in r["runs"]:
        if x["system"] != "spamq":
            continue
        peer = next(y for y in r["runs"] if y["system"] == "BentoML"
                    and y["round"] == x["round"] and y["clients"] == x["clients"])
        print(f"{x['clients']:>7} | {x['msgs_per_s']:>11.1f} {x['p50_ms']:>7.1f} | "
              f"{peer['msgs_per_s']:>13.1f} {peer['p50_ms']:>7.1f} | "
              f"{x['msgs_per_s'] / peer['msgs_per_s']:>12.2f}x  (round {x['round']})")
    for row in r["summary"]:
        s, p = row["spamq"], row["BentoML"]
        print(f"  {'MET ' if row['spamq_ahead'] else 'MISS'}  spamq >= BentoML at "
              f"{row['clients']:>2} clients: {s['msgs_per_s']:.1f} vs {p['msgs_per_s']:.1f} "
              f"req/s ({row['ratio']:.2f}x), p50 {s['p50_ms']:.1f} vs {p['p50_ms']:.1f} ms, "
              f"errors {s['errors']}/{p['errors']}")
    for x in r["runs"]:
        print(f"CPU ms per request, round {x['round']}, {x['system']}, {x['clients']} client(s): "
              + ", ".join(f"{k} {v:.2f}" for k, v in x["cpu_ms_per_request"].items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_serving_arguments(
        parser, seconds_help="per measurement",
        precision_help="both sides; default SPAMQ_PRECISION or auto",
        threads_help="torch threads in spamq's worker and the peer (default cores-1)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--out", type=Path, default=Path("bench/results/peer.json"))
    args = parser.parse_args()
    require_model(parser, args.model_dir)
    try:
        bentoml_version()
    except ImportError:
        parser.error("bentoml is not installed here: run `make bench-peer` (.venv-peer)")
    args.model_dir = args.model_dir.resolve()
    results = run(args)
    print_table(results)
    write_results(args.out, results)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
