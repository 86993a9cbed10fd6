"""Planning a store job over many tiny Parquet row groups: submit time, Redis memory, and how
long Redis answers nobody else while the plan is written.

    .venv/bin/python -m bench.plan_probe [--files 24] [--row-groups 100000]

Builds the input in a temporary local artifact store (one Parquet file of ``--row-groups``
one-row row groups, linked under ``--files`` names), starts a real redis-server
(scripts/local_services.py) and submits through the real code path: the API's Flask app on that
Redis (create_app, its test client; the tasks it sends are recorded, not run). Then runs the
plan task's planning (worker/split_tasks.plan_job) on the same Redis and store. A process PINGs
Redis every 5 ms throughout (its slowest answer: what another client waited, CPU contention
on this machine included); Redis's slow log gives the longest single command (server side).
Prints JSON and writes bench/results/plan_probe.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import redis

from bench.lib import hardware, write_results
from scripts.local_services import REPO, start_redis


class Tasks:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []

    def __call__(self, name: str, *, args: list[Any], queue: str,
                 headers: dict[str, Any] | None = None) -> None:
        self.sent.append((name, list(args)))


class Pinger:
    """PINGs Redis every 5 ms from a process of its own (so this one's GIL never delays it);
    ``worst()``: the slowest round trip so far."""

    def __init__(self, url: str) -> None:
        self._worst = multiprocessing.Value("d", 0.0)
        self._stop = multiprocessing.Event()
        self._proc = multiprocessing.Process(target=_ping, args=(url, self._worst, self._stop),
                                             daemon=True)
        self._proc.start()

    def worst(self) -> float:
        return float(self._worst.value)

    def stop(self) -> None:
        self._stop.set()
        self._proc.join(10)


def _ping(url: str, worst: Any, stop: Any) -> None:
    client = redis.Redis.from_url(url, socket_timeout=300)
    while not stop.is_set():
        t0 = time.perf_counter()
        client.ping()
        worst.value = max(worst.value, time.perf_counter() - t0)
        time.sleep(0.005)


def build_input(root: Path, files: int, row_groups: int) -> int:
    """``files`` Parquet files of ``row_groups`` one-row row groups under root/in; bytes."""
    (root / "in").mkdir(parents=True)
    first = root / "in" / "part-00000.parquet"
    table = pa.table({"id": list(range(row_groups)),
                      "text": [f"message {i}" for i in range(row_groups)]})
    pq.write_table(table, first, row_group_size=1)
    for k in range(1, files):
        os.link(first, root / "in" / f"part-{k:05d}.parquet")
    return files * first.stat().st_size


def slowest_command_ms(client: redis.Redis) -> float:
    """The longest single command Redis ran since the last call (its slow log, which
    ``main`` sets to log every command over 1 ms): how long it answered nobody else."""
    entries = client.slowlog_get(10_000)
    client.slowlog_reset()
    return round(max((e["duration"] for e in entries), default=0) / 1000, 1)


def job_memory(client: redis.Redis, job_id: str) -> int:
    return sum(client.memory_usage(k) or 0 for k in client.scan_iter(f"spamq:job:{job_id}*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--row-groups", type=int, default=100_000)
    parser.add_argument("--submit-only", action="store_true",
                        help="no plan task (to measure a tree without one)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" /
                        "plan_probe.json")
    args = parser.parse_args()

    from api import create_app
    from spamq.jobs.store import JobStore
    from spamq.jobs.store_jobs import StoreJobs
    from spamq.settings import Settings
    from spamq.storage.artifacts import LocalArtifactStore

    with tempfile.TemporaryDirectory(prefix="spamq-plan-probe-") as tmp:
        root = Path(tmp) / "store"
        t0 = time.perf_counter()
        input_bytes = build_input(root, args.files, args.row_groups)
        build_s = time.perf_counter() - t0
        redis_proc, url = start_redis(Path(tmp) / "redis")
        try:
            settings = Settings(artifact_dir=root, redis_url=url, auth_required=False,
                                redis_timeout_s=120)
            jobs = JobStore.from_settings(settings)
            client = jobs.redis
            tasks = Tasks()
            app = create_app(settings, store=jobs, send_task=tasks)
            client.config_set("slowlog-log-slower-than", 1000)
            client.config_set("slowlog-max-len", 10_000)
            client.slowlog_reset()
            before = int(client.info("memory")["used_memory"])
            pinger = Pinger(url)
            t0 = time.perf_counter()
            resp = app.test_client().post("/v1/jobs", json={
                "hdfs_input": "in/*.parquet", "hdfs_output": "out/probe", "id_column": "id"})
            submit_s = time.perf_counter() - t0
            submit_ping = pinger.worst()
            submit_slowest = slowest_command_ms(client)
            assert resp.status_code == 202, resp.get_json()
            job_id = resp.get_json()["id"]
            after_submit = int(client.info("memory")["used_memory"])
            submit_job_bytes = job_memory(client, job_id)
            plan_s = 0.0
            if not args.submit_only:
                from worker.split_tasks import plan_job

                t0 = time.perf_counter()
                plan_job(jobs, LocalArtifactStore(root), job_id,
                         split_bytes=settings.split_bytes,
                         max_splits=settings.max_splits_per_job,
                         footers_max_files=settings.plan_footers_max_files)
                plan_s = time.perf_counter() - t0
            pinger.stop()
            plan_slowest = slowest_command_ms(client)
            after_plan = int(client.info("memory")["used_memory"])
            job = jobs.jobs.get(job_id)
            plan = StoreJobs(jobs).splits(job_id)
        finally:
            redis_proc.stop()
    results = {
        "input": {"files": args.files, "row_groups_per_file": args.row_groups,
                  "rows": args.files * args.row_groups, "bytes": input_bytes,
                  "build_s": round(build_s, 1)},
        "submit": {"status": resp.status_code, "seconds": round(submit_s, 3),
                   "tasks_sent": [name for name, _ in tasks.sent],
                   "redis_used_memory_delta_bytes": after_submit - before,
                   "job_keys_bytes": submit_job_bytes,
                   "slowest_redis_command_ms": submit_slowest,
                   "slowest_ping_s": round(submit_ping, 4)},
        "plan_task": None if args.submit_only else {
            "seconds": round(plan_s, 2), "splits": job.chunks_total,
            "max_splits_per_job": settings.max_splits_per_job,
            "row_groups_per_split_max": max(
                ((s.get("last_group") or s["row_group"]) - s["row_group"] + 1 for s in plan),
                default=0),
            "redis_used_memory_delta_bytes": after_plan - before,
            "slowest_redis_command_ms": plan_slowest,
            "slowest_ping_s": round(pinger.worst(), 4)},
        "splits_after_submit": None if not args.submit_only else job.chunks_total,
        "hardware": hardware(),
    }
    write_results(args.out, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
