"""HDFS down when a registry worker starts: it gives up after its bounded tries, says why, and
never announces itself ready."""

from __future__ import annotations

import os
import sys
import time

import pytest
import redis

from scripts.local_services import Process, start_redis
from spamq.jobs.store import JobStore
from tests.helpers.services import closed_port

pytestmark = pytest.mark.integration

ATTEMPTS = 3


def test_worker_exits_non_zero_when_hdfs_is_down_at_start(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("SPAMQ_"):
            monkeypatch.delenv(name)
    rproc, redis_url = start_redis(tmp_path / "redis")
    hdfs = f"http://127.0.0.1:{closed_port()}"
    env = {
        "SPAMQ_REDIS_URL": redis_url,
        "SPAMQ_MODEL_SOURCE": "registry",
        "SPAMQ_HDFS_URL": hdfs,
        "SPAMQ_HDFS_TIMEOUT_S": "2",
        "SPAMQ_MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "SPAMQ_MODEL_PULL_ATTEMPTS": str(ATTEMPTS),
        "SPAMQ_MODEL_PULL_BACKOFF_S": "0.1",
        "SPAMQ_WORKER_HEARTBEAT_S": "0.2",
    }
    log = tmp_path / "worker.log"
    client = redis.Redis.from_url(redis_url, socket_timeout=1)
    started = time.monotonic()
    proc = Process([sys.executable, "-m", "spamq.cli", "worker", "--name=hdfsdown@%h"],
                   log=log, env=env)
    seen = False
    try:
        while proc.proc.poll() is None:  # watch Redis while it tries: no heartbeat, ever
            seen = seen or bool(list(client.scan_iter(match="spamq:worker:*")))
            assert time.monotonic() - started < 60, "worker still running after 60 s"
            time.sleep(0.05)
        rc = proc.proc.returncode
        elapsed = time.monotonic() - started
        assert not seen and JobStore(client, ttl_s=60).workers.heartbeats() == []
    finally:
        proc.stop()
        rproc.stop()
    text = log.read_text()
    print(f"\nworker exited {rc} after {elapsed:.1f} s")
    assert rc == 79, text[-3000:]  # worker.lifecycle.EXIT_MODEL
    line = next((ln for ln in text.splitlines() if "worker not started" in ln), "")
    assert "model spamq-sms@production not loaded" in line, text[-3000:]
    assert "HDFS unreachable" in line and hdfs in line, line
    assert f"after {ATTEMPTS} tries" in line, line
    assert text.count("failed (try ") == ATTEMPTS - 1, text[-3000:]  # each retry is logged
    assert "hdfsdown@" not in text or " ready." not in text  # Celery never said it was ready
