"""What a shadow costs: the worker's memory (RSS) and /v1/predict throughput with no shadow,
with a candidate at ``--sample 0.1`` and at ``1.0``, alternated over rounds (medians).

    .venv/bin/python -m bench.shadow_cost [--model-dir weights/default]
        [--candidate-dir DIR] [--clients 8] [--seconds 15] [--rounds 3]

Starts its own redis-server, local artifact store (the registry: ``--model-dir`` pushed as
production, ``--candidate-dir`` as the candidate; without one, an untrained tiny model of the
test suite's shape), one ``spamq worker`` on the registry source and the API (no auth:
loopback only). For each leg it sets (or stops) the shadow the way ``spamq models shadow``
does, waits for the worker's heartbeat to show it, then ``--clients`` threads post single
texts (distinct, so the hash sample is the share) to /v1/predict for ``--seconds``. RSS is
``ps -o rss`` of the worker process at the end of the leg (the candidate stays loaded
between legs of the same version only; a stop drops it, Python may keep the freed pages).
The worker's shadow counters (scored, dropped) come from its heartbeat. On a shared, loaded
machine the legs are alternated within each round and medians reported; say so with the
figures. Writes bench/results/shadow_cost.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis
import requests

from bench.lib import hardware, require_model, sms_texts, write_results
from scripts.local_services import Process, start_api, start_redis, wait_until
from spamq.cli.processes import positive_int
from spamq.models import shadow
from spamq.models.registry import ModelRegistry
from spamq.settings import Settings
from spamq.storage.artifacts import LocalArtifactStore

NAME = "spamq-sms"
LEGS = ("off", "0.1", "1.0")


def rss_mb(pid: int) -> float:
    out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True)
    return int(out.stdout.strip() or 0) / 1024


def beat(client: redis.Redis) -> dict[str, Any]:
    values = [client.get(k) for k in client.scan_iter(match="spamq:worker:*")]
    beats = [json.loads(v) for v in values if v]
    assert len(beats) == 1, beats
    return beats[0]


def load(base: str, texts: list[str], *, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads posting one text each to /v1/predict for ``seconds``."""
    done, failed, lat = [0] * clients, [0] * clients, [[] for _ in range(clients)]
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        session = requests.Session()
        k = i
        while time.monotonic() < stop:
            t = time.perf_counter()
            resp = session.post(base + "/v1/predict", json={"texts": [texts[k % len(texts)]]},
                                timeout=30)
            k += clients
            if resp.status_code == 200:
                done[i] += 1
                lat[i].append(time.perf_counter() - t)
            else:
                failed[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    every = sorted(x for xs in lat for x in xs)
    return {"requests": sum(done), "failed": sum(failed), "rps": round(sum(done) / wall, 1),
            "p50_ms": round(1000 * every[len(every) // 2], 1) if every else None,
            "p99_ms": round(1000 * every[int(len(every) * 0.99)], 1) if every else None}


def set_leg(client: redis.Redis, leg: str, candidate: str) -> None:
    if leg == "off":
        shadow.clear_state(client)
        wait_until(lambda: "shadow" not in beat(client), timeout=60, what="shadow off")
        return
    state = shadow.check_state(NAME, candidate, float(leg), time.time())
    shadow.write_state(client, state)
    wait_until(lambda: (beat(client).get("shadow") or {}).get("version") == candidate,
               timeout=120, what=f"shadow at {leg}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--candidate-dir", type=Path, default=None)
    parser.add_argument("--clients", type=positive_int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/shadow_cost.json"))
    args = parser.parse_args()
    require_model(parser, args.model_dir)
    r: dict[str, Any] = {"hardware": hardware(), "model_dir": str(args.model_dir),
                         "clients": args.clients, "seconds": args.seconds, "runs": []}
    with tempfile.TemporaryDirectory(prefix="spamq-shadow-") as tmp:
        work = Path(tmp)
        registry = ModelRegistry(LocalArtifactStore(work / "store"))
        production = registry.push(args.model_dir, name=NAME)
        registry.promote(NAME, production, alias="production")
        cand_dir = args.candidate_dir
        if cand_dir is None:
            from scripts.random_model import make_random_model

            cand_dir = work / "candidate"
            make_random_model(cand_dir, seed=7)
        candidate = registry.push(cand_dir, name=NAME)
        r.update(production=production, candidate=candidate, candidate_dir=str(cand_dir))
        redis_proc, url = start_redis(work / "redis")
        env = {"SPAMQ_REDIS_URL": url, "SPAMQ_ARTIFACT_DIR": str(work / "store"),
               "SPAMQ_MODEL_SOURCE": "registry", "SPAMQ_MODEL_NAME": NAME,
               "SPAMQ_MODEL_CACHE_DIR": str(work / "cache"), "SPAMQ_AUTH_REQUIRED": "false",
               "SPAMQ_WORKER_HEARTBEAT_S": "0.5", "SPAMQ_SHADOW_FLUSH_S": "5"}
        client = redis.Redis.from_url(url)
        worker = Process([sys.executable, "-m", "spamq.cli", "worker", "--name=shadow@%h"],
                         log=work / "worker.log", env=env)
        api = None
        try:
            wait_until(lambda: bool(beat(client).get("model_version")), timeout=300,
                       what="worker", proc=worker.proc, log=work / "worker.log")
            pid = int(beat(client)["name"].rsplit(":", 1)[1])
            api, base = start_api(env, log=work / "api.log")
            r["rss_mb_before_any_shadow"] = round(rss_mb(pid), 1)
            for k in range(args.rounds):
                texts = [f"{t} [{k}:{i}]" for i, t in enumerate(sms_texts(20_000, seed=k))]
                order = LEGS[k % 3:] + LEGS[:k % 3]  # alternate which leg goes first
                for leg in order:
                    set_leg(client, leg, candidate)
                    load(base, texts[:200], clients=args.clients, seconds=2)  # warm
                    before = (beat(client).get("shadow") or {}).copy()
                    res = {"round": k, "leg": leg, **load(base, texts, clients=args.clients,
                                                          seconds=args.seconds),
                           "rss_mb": round(rss_mb(pid), 1)}
                    time.sleep(1.0)  # a heartbeat, so the counters include the leg
                    after = beat(client).get("shadow") or {}
                    for key in ("scored", "dropped"):
                        res[f"shadow_{key}"] = after.get(key, 0) - before.get(key, 0)
                    print(json.dumps(res), flush=True)
                    r["runs"].append(res)
                    write_results(args.out, r)
        finally:
            shadow.clear_state(client)
            if api is not None:
                api.stop()
            worker.stop()
            redis_proc.stop()
    r["medians"] = {}
    print(f"{'shadow':>8}{'rps (median)':>14}{'p50 ms':>9}{'p99 ms':>9}{'RSS MB':>9}"
          f"{'scored':>9}{'dropped':>9}   rps each round")
    for leg in LEGS:
        runs = [x for x in r["runs"] if x["leg"] == leg]
        m = {k: statistics.median(x[k] for x in runs)
             for k in ("rps", "p50_ms", "p99_ms", "rss_mb", "shadow_scored", "shadow_dropped")}
        r["medians"][leg] = m
        print(f"{leg:>8}{m['rps']:>14}{m['p50_ms']:>9}{m['p99_ms']:>9}{m['rss_mb']:>9}"
              f"{m['shadow_scored']:>9}{m['shadow_dropped']:>9}   "
              f"{', '.join(str(x['rps']) for x in runs)}")
    write_results(args.out, r)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
