"""Redis Sentinel failover under load, against real processes: a master, a replica and three
sentinels (redis-server --sentinel, down-after-milliseconds 1000, failover-timeout 5000), the
API and a worker that know only the sentinels (SPAMQ_REDIS_SENTINELS, SPAMQ_REDIS_MASTER; the
host in SPAMQ_REDIS_URL is a closed port) and the webhook deliverer. A texts job with a
webhook runs and /v1/predict is called in a loop while the master is SIGKILLed; the replica
is promoted and every client follows it.

Measured and printed (the summary also goes to bench/results/faults.json, section "sentinel"):
- recovery_s: from the kill until a /v1/predict sent after it has succeeded;
- failed_predicts: /v1/predict calls that did not answer 200 during the failover;
- the job's rows: every row exactly once, in order (results equal the pattern of scores);
- its job.completed webhook: told once (by id) through the outbox on the new master.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import requests

from scripts.local_services import (
    Process,
    free_port,
    start_api,
    start_deliverer,
    start_redis,
    wait_until,
)
from spamq.jobs.store import JobStore
from spamq.redis_client import redis_client
from spamq.settings import Settings
from tests.helpers.fault_counts import write_counts
from tests.helpers.receiver import Receiver
from tests.integration.conftest import WEBHOOK_SECRET

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MASTER = "mymaster"
ROWS = 4000
#: texts repeated with period 7, spam and ham mixed: a chunk (64 rows) stored at the wrong
#: place or twice breaks the pattern of scores, as 64 is not a multiple of 7
SAMPLES = [
    "WINNER!! You have won a 1000 cash prize, call 09061701461 now to claim",
    "are we still on for lunch tomorrow?",
    "URGENT: your mobile number was awarded a free ringtone, text WIN to 80086",
    "ok see you at home later, love you",
    "Free entry in 2 a wkly comp to win FA Cup final tkts, text FA to 87121",
    "I'll be late, the bus broke down again",
    "Congratulations! claim your free holiday voucher, reply YES now",
]


def texts(n: int) -> list[str]:
    return [SAMPLES[i % len(SAMPLES)] for i in range(n)]


def start_sentinel(root: Path, master_port: int) -> tuple[Process, int]:
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "sentinel.conf"  # sentinel rewrites its own file: one per sentinel
    conf.write_text("\n".join([
        f"port {port}", "bind 127.0.0.1", f"dir {root}",
        f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2",
        f"sentinel down-after-milliseconds {MASTER} 1000",
        f"sentinel failover-timeout {MASTER} 5000",
        f"sentinel parallel-syncs {MASTER} 1", ""]))
    proc = Process([shutil.which("redis-server") or "redis-server", str(conf), "--sentinel"],
                   log=root / "sentinel.log")
    return proc, port


@pytest.fixture(scope="module")
def stack(tmp_path_factory, service_env):
    root = tmp_path_factory.mktemp("sentinel")
    master, master_url = start_redis(root / "master")
    master_port = int(master_url.rsplit(":", 1)[1].split("/")[0])
    replica_port = free_port()
    (root / "replica").mkdir()
    replica = Process([shutil.which("redis-server") or "redis-server", "--port", str(replica_port),
                       "--bind", "127.0.0.1", "--dir", str(root / "replica"), "--save", "",
                       "--appendonly", "no", "--replicaof", "127.0.0.1", str(master_port)],
                      log=root / "replica" / "redis.log")
    replica_client = redis.Redis(port=replica_port, socket_timeout=1)
    wait_until(lambda: replica_client.info("replication")["master_link_status"] == "up",
               timeout=15, what="replica in sync", proc=replica.proc, log=replica.log)
    sentinels = [start_sentinel(root / f"sentinel-{i}", master_port) for i in range(3)]

    def sentinels_agree() -> bool:  # each knows the replica and the two other sentinels
        for _, port in sentinels:
            info = redis.Redis(port=port, socket_timeout=1).sentinel_master(MASTER)
            if info["num-other-sentinels"] < 2 or info["num-slaves"] < 1:
                return False
        return True

    wait_until(sentinels_agree, timeout=30, what="three sentinels and a replica")
    addresses = ",".join(f"127.0.0.1:{port}" for _, port in sentinels)
    env = {**service_env,
           # the host here is a closed port: only the sentinels can lead to Redis
           "SPAMQ_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
           "SPAMQ_REDIS_SENTINELS": addresses, "SPAMQ_REDIS_MASTER": MASTER,
           "SPAMQ_CHUNK_SIZE": "64", "SPAMQ_MAX_TEXTS_PER_REQUEST": str(ROWS),
           "SPAMQ_LOG_FORMAT": "json"}
    settings = Settings(redis_url=env["SPAMQ_REDIS_URL"], redis_sentinels=addresses,
                        redis_master=MASTER)
    store = JobStore.from_settings(settings)
    worker = Process([sys.executable, "-m", "spamq.cli", "worker", "--name=sentinel@%h"],
                     log=root / "worker.log", env=env)
    wait_until(lambda: any(w.get("model_version") for w in store.workers.heartbeats()), timeout=120,
               what="worker through the sentinels", proc=worker.proc, log=worker.log)
    api, base = start_api(env, log=root / "api.log")
    deliverer = start_deliverer(env, log=root / "webhooks.log")
    receiver = Receiver(secret=WEBHOOK_SECRET)
    yield {"root": root, "base": base, "store": store, "settings": settings,
           "master": master, "master_port": master_port, "replica_port": replica_port,
           "sentinels": sentinels, "worker": worker, "api": api, "deliverer": deliverer,
           "receiver": receiver}
    receiver.close()
    deliverer.stop()
    api.stop()
    worker.stop()
    for proc, _ in sentinels:
        proc.stop()
    replica.stop()
    master.stop()


class PredictStream(threading.Thread):
    """/v1/predict one request after another; each call's (sent, ended, status)."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.calls, self.stop = base, [], threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                resp = requests.post(self.base + "/v1/predict",
                                     json={"texts": [SAMPLES[len(self.calls) % 7]]}, timeout=30)
                status = resp.status_code
                if status != 200:
                    self.errors.append(resp.text[:300])
            except requests.RequestException as exc:
                status = 0
                self.errors.append(repr(exc)[:300])
            self.calls.append((sent, time.monotonic(), status))
            time.sleep(0.05)


def test_master_sigkilled_mid_job_fails_over_with_every_row_once(stack):
    base, store = stack["base"], stack["store"]
    stream = PredictStream(base)
    stream.start()
    wait_until(lambda: sum(1 for *_, s in stream.calls if s == 200) >= 3, timeout=60,
               what="predicts before the kill")
    hook = {"url": stack["receiver"].url(), "events": ["job.completed", "job.failed"]}
    resp = requests.post(base + "/v1/jobs", json={"texts": texts(ROWS), "webhook": hook},
                         timeout=30)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    wait_until(lambda: store.jobs.get(job_id).chunks_done >= 4, timeout=60, what="some chunks")

    done_at_kill = store.jobs.get(job_id).chunks_done
    stack["master"].stop(signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: store.jobs.get(job_id).finished, timeout=90, what="the job after failover",
               proc=stack["worker"].proc, log=stack["worker"].log)
    job_s = time.monotonic() - killed
    receiver = stack["receiver"]  # the deliverer found the new master too: the end is told
    wait_until(lambda: bool(receiver.processed()), timeout=30, what="job.completed webhook",
               proc=stack["deliverer"].proc, log=stack["deliverer"].log)
    wait_until(lambda: any(c[0] >= killed and c[2] == 200 for c in stream.calls), timeout=40,
               what="a /v1/predict sent after the kill to succeed")
    stream.stop.set()
    stream.join(35)

    after = [c for c in stream.calls if c[0] >= killed]
    failed = [c for c in stream.calls if c[1] >= killed and c[2] != 200]
    first_ok = min((c[1] for c in after if c[2] == 200), default=None)
    assert first_ok is not None, stream.calls[-5:]
    recovery = first_ok - killed
    slowest = max(c[1] - c[0] for c in stream.calls if c[1] >= killed)

    # the replica is the master now, and every client found it
    promoted = redis.Redis(port=stack["replica_port"], socket_timeout=1)
    assert promoted.info("replication")["role"] == "master"
    assert redis_client(stack["settings"]).connection_pool.get_master_address() == (
        "127.0.0.1", stack["replica_port"])

    job = store.jobs.get(job_id)
    results = store.results.results(job_id)
    stored_chunks = store.redis.hlen(f"spamq:job:{job_id}:results")
    lost = max(0, job.total - len(results))
    duplicated = max(0, len(results) - job.total) + max(0, job.done - job.total)
    reference = [r["spam_probability"] for r in results[:7]]
    misplaced = [i for i, r in enumerate(results)
                 if abs(r["spam_probability"] - reference[i % 7]) > 1e-4]
    summary = {"rows": ROWS, "chunks": job.chunks_total, "chunks_done_at_kill": done_at_kill,
               "recovery_s": round(recovery, 2), "job_end_after_kill_s": round(job_s, 1),
               "predicts_after_kill": len(after), "failed_predicts": len(failed),
               "slowest_predict_s": round(slowest, 2), "rows_lost": lost,
               "rows_duplicated": duplicated, "rows_misplaced": len(misplaced),
               "webhook_events": len(receiver.processed()),
               "webhook_deliveries": len(receiver.requests)}
    print("\nsentinel failover: " + json.dumps(summary))
    print("predicts around the kill (sent, ended, status; s after it): " + json.dumps(
        [(round(a - killed, 2), round(b - killed, 2), st) for a, b, st in stream.calls
         if b >= killed - 1][:12]))
    write_counts("sentinel", summary)

    assert job.status == "done", job
    assert (lost, duplicated, misplaced) == (0, 0, [])
    assert job.done == job.total == ROWS and job.chunks_done == job.chunks_total == stored_chunks
    # the pattern can tell a shifted chunk: 7 is prime, so a period-7 pattern that is not
    # constant differs from every shift of itself (a chunk of 64 rows shifts it by 64 % 7)
    assert max(reference) - min(reference) > 0.1, reference
    assert done_at_kill < job.chunks_total  # killed mid-job
    [event] = receiver.processed().values()  # one event (a repeat would carry the same id)
    told = json.loads(event["body"])
    assert (told["type"], told["data"]["id"], told["data"]["progress"]) == (
        "job.completed", job_id, {"done": ROWS, "total": ROWS})
    assert recovery <= 30, summary
    assert len(failed) <= 1, (summary, failed, stream.errors)


def test_predict_and_jobs_work_on_the_promoted_master(stack):
    resp = requests.post(stack["base"] + "/v1/predict", json={"texts": SAMPLES[:2]}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert [r["label"] in ("spam", "ham") for r in resp.json()["results"]] == [True, True]
    assert stack["worker"].proc.poll() is None and stack["api"].proc.poll() is None
