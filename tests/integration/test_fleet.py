"""A worker fleet on one store job, over real processes (redis-server, gunicorn, the local
artifact store): three workers, each started as if on its own host (its own node name, TMPDIR
and settings; the same Redis and artifact store), share a job of many splits; one is SIGKILLed
while it holds a split, a fourth joins late. Every row comes out once, the splits spread over
the workers (the job's own record says which worker committed each), and the kill costs at
most one split scored twice (the attempts the job counts per split)."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
import requests

from scripts.local_services import Process, start_api, wait_until
from spamq.jobs.store import JobStore
from spamq.jobs.store_jobs import StoreJobs
from tests.integration.conftest import HOME, METRICS_TOKEN, private_services, wait_for_job

pytestmark = pytest.mark.integration

# Sized so that the job outlasts a late worker's start (imports and model load: 8-30 s on
# 2 cores) with splits to spare: ~180 splits of ~1200 rows (60 splits took 8.9 s, less than
# a late worker's start, once the bulk path got faster).
ROWS = 216_000
SPLIT_BYTES = 114_000
NAMES = ("fleet-a", "fleet-b", "fleet-c")  # fleet-a is killed
LATE = "fleet-d"


def _start(name: str, root: Path, env: dict[str, str]) -> Process:
    """``spamq worker`` as a host of the fleet would run it: its node name, its own TMPDIR."""
    tmp = root / f"host-{name}" / "tmp"
    tmp.mkdir(parents=True)
    return Process([sys.executable, "-m", "spamq.cli", "worker", f"--name={name}@%h"],
                   log=root / f"{name}.log", env={**env, "TMPDIR": str(tmp)})


def _beating(client: redis.Redis) -> dict[int, dict]:
    """Live heartbeats with a model loaded, by process id (a heartbeat is named host:pid)."""
    beats = [json.loads(v) for v in (client.get(k) for k in
                                     client.scan_iter(match="spamq:worker:*")) if v]
    return {int(b["name"].rsplit(":", 1)[1]): b for b in beats if b.get("model_version")}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, service_env):
    root = tmp_path_factory.mktemp("fleet")
    redis_proc, env, store = private_services(
        root, service_env, SPAMQ_LOG_FORMAT="json", SPAMQ_SPLIT_BYTES=str(SPLIT_BYTES),
        # one split at a time per worker: a killed worker holds one split, not a batch
        SPAMQ_BULK_MAX_IN_FLIGHT="1", SPAMQ_WORKER_CONCURRENCY="1", SPAMQ_TORCH_THREADS="1",
        # a dead worker's split is re-sent within a second or two of its last beat
        SPAMQ_SWEEP_EVERY_S="0.5")
    client = redis.Redis.from_url(env["SPAMQ_REDIS_URL"], socket_timeout=2)
    workers = {name: _start(name, root, env) for name in NAMES}  # started side by side
    wait_until(lambda: len(_beating(client)) >= len(NAMES), timeout=180,
               what="three workers with a model", proc=workers[NAMES[0]].proc,
               log=root / f"{NAMES[0]}.log")
    api, base = start_api(env, log=root / "api.log")
    yield {"base": base, "store": store, "root": root, "env": env, "redis": client,
           "url": env["SPAMQ_REDIS_URL"], "workers": workers}
    api.stop()
    for proc in workers.values():
        proc.stop()
    redis_proc.stop()


def test_a_fleet_shares_a_job_survives_a_kill_and_takes_a_late_worker(fleet):
    client, workers = fleet["redis"], fleet["workers"]
    target = fleet["store"] / HOME / "in" / "rows.jsonl"
    target.parent.mkdir(parents=True)
    target.write_text("".join(json.dumps({"id": i, "text": f"message number {i}: win a free "
                                          "prize now, call back, see you at lunch"}) + "\n"
                              for i in range(ROWS)))
    started = time.monotonic()
    resp = requests.post(fleet["base"] + "/v1/jobs", json={
        "hdfs_input": f"{HOME}/in/rows.jsonl", "hdfs_output": f"{HOME}/out/rows",
        "id_column": "id"}, timeout=30)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    store_jobs = StoreJobs(JobStore(client, ttl_s=3600))
    total = int(client.hget(f"spamq:job:{job_id}", "chunks_total"))
    assert total >= 30

    # kill fleet-a while it holds a split of the job (its lease names it), a few splits in
    victim = workers[NAMES[0]]
    victim_name = next(b["name"] for pid, b in _beating(client).items()
                       if pid == victim.proc.pid)

    def victim_mid_split() -> bool:
        done = len(store_jobs.committed(job_id))
        held = [v.decode() for k in client.scan_iter(match=f"spamq:lease:{job_id}:*")
                if (v := client.get(k))]
        return done >= 3 and any(v.startswith(victim_name + "|") for v in held)

    wait_until(victim_mid_split, timeout=60, what="fleet-a scoring a split")
    victim.stop(signal.SIGKILL)
    killed_at = len(store_jobs.committed(job_id))
    assert killed_at < total, "the job ended before the kill"

    late = _start(LATE, fleet["root"], fleet["env"])  # joins the running job
    workers[LATE] = late
    launched = time.monotonic()
    wait_until(lambda: late.proc.pid in _beating(client), timeout=120, what="the late worker",
               proc=late.proc, log=late.log)
    joined_at = len(store_jobs.committed(job_id))
    late_start_s = time.monotonic() - launched

    job = wait_for_job(fleet["base"], f"/v1/jobs/{job_id}", timeout=240)
    elapsed = time.monotonic() - started
    assert job["status"] == "done", job
    assert job["chunks"]["total"] == total

    # every input row once in the parts, and _SUCCESS says so
    out = fleet["store"] / HOME / "out" / "rows"
    ids = Counter(json.loads(line)["id"] for part in sorted(out.glob("part-*"))
                  for line in part.read_text().splitlines())
    assert sorted(ids) == list(range(ROWS)) and set(ids.values()) == {1}
    assert len(list(out.glob("part-*"))) == total
    assert json.loads((out / "_SUCCESS").read_text())["output_rows"] == ROWS

    # the job's record: which worker committed each split
    by_split = store_jobs.split_workers(job_id)
    assert sorted(by_split) == list(range(total))
    pid_label = {str(p.proc.pid): name for name, p in workers.items()}
    counts = Counter(pid_label.get(w.rsplit(":", 1)[1], w) for w in by_split.values())
    rework = store_jobs.rework(job_id)
    print(f"\nfleet: {total} splits, {ROWS} rows in {elapsed:.1f} s; splits committed per "
          f"worker: {dict(sorted(counts.items()))}; fleet-a SIGKILLed after {killed_at} "
          f"splits, fleet-d ready {late_start_s:.0f} s later, after {joined_at} splits; splits "
          "scored more than once: "
          f"{sum(rework.values())} {rework}")
    assert set(counts) <= {*NAMES, LATE}, counts  # every commit is one of the fleet's
    assert joined_at < total, "the job ended before the late worker was up: more ROWS"
    assert all(counts[name] >= 1 for name in (*NAMES, LATE)), counts  # spread over all four
    assert sum(rework.values()) <= 1, rework  # the kill cost at most one split's rework
    parts = requests.get(f"{fleet['base']}/v1/jobs/{job_id}/parts", timeout=10).json()
    assert parts["workers"] == len(counts) and len(parts["parts"]) == total

    # /metrics: a heartbeat for each live worker, none for the killed one, no lease left
    text = requests.get(f"{fleet['base']}/metrics", timeout=10,
                        headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    beats = {line.split('worker="', 1)[1].split('"', 1)[0] for line in text.splitlines()
             if line.startswith("spamq_worker_heartbeat_age_seconds{")}
    assert {b.rsplit(":", 1)[1] for b in beats} == {
        str(workers[n].proc.pid) for n in (*NAMES[1:], LATE)}, beats
    assert not [line for line in text.splitlines() if line.startswith("spamq_worker_leases{")]
