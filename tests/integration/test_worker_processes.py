"""``spamq worker --processes 2`` over real processes (redis-server, gunicorn, the local
artifact store): both processes load the model and heartbeat under distinct names, a store
job's splits are scored by both, every row once, and /v1/predict answers through them."""

from __future__ import annotations

import json
import sys
from collections import Counter

import pytest
import redis
import requests

from scripts.local_services import Process, start_api, wait_until
from tests.integration.conftest import HOME, private_services, wait_for_job

pytestmark = pytest.mark.integration

ROWS = 1200


@pytest.fixture(scope="module")
def stack(tmp_path_factory, service_env):
    root = tmp_path_factory.mktemp("worker-processes")
    redis_proc, env, store = private_services(
        root, service_env, SPAMQ_LOG_FORMAT="json", SPAMQ_SPLIT_BYTES="4000",
        # one split at a time per process: the other process takes the next one
        SPAMQ_BULK_MAX_IN_FLIGHT="1")
    log = root / "workers.log"
    workers = Process([sys.executable, "-m", "spamq.cli", "worker", "--processes", "2",
                       "--name", "procs@%h"], log=log, env=env)
    client = redis.Redis.from_url(env["SPAMQ_REDIS_URL"], socket_timeout=1)
    wait_until(lambda: len(list(client.scan_iter(match="spamq:worker:*"))) >= 2, timeout=300,
               what="two worker processes", proc=workers.proc, log=log)
    api, base = start_api(env, log=root / "api.log")
    yield {"base": base, "store": store, "log": log, "redis": client, "workers": workers}
    api.stop()
    workers.stop()
    redis_proc.stop()


def test_both_processes_heartbeat_under_distinct_names(stack):
    beats = [json.loads(v) for v in (stack["redis"].get(k) for k in
                                     stack["redis"].scan_iter(match="spamq:worker:*")) if v]
    names = {b["name"] for b in beats if b.get("model_version")}
    assert len(names) == 2, beats
    pids = {name.rsplit(":", 1)[1] for name in names}
    assert len(pids) == 2 and stack["workers"].proc.pid not in {int(p) for p in pids}


def test_a_store_jobs_splits_are_scored_by_both_processes_every_row_once(stack):
    target = stack["store"] / HOME / "in" / "rows.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(json.dumps({"id": i, "text": f"message number {i}, call me back"})
                              + "\n" for i in range(ROWS)))
    resp = requests.post(stack["base"] + "/v1/jobs", json={
        "hdfs_input": f"{HOME}/in/rows.jsonl", "hdfs_output": f"{HOME}/out/rows",
        "id_column": "id"}, timeout=30)
    assert resp.status_code == 202, resp.text
    job = wait_for_job(stack["base"], resp.json()["status_url"], timeout=240)
    assert job["status"] == "done", job
    splits = job["chunks"]["total"]
    assert splits >= 4

    out = stack["store"] / HOME / "out" / "rows"
    ids = Counter(json.loads(line)["id"] for part in sorted(out.glob("part-*"))
                  for line in part.read_text().splitlines())
    assert sorted(ids) == list(range(ROWS)) and set(ids.values()) == {1}
    assert json.loads((out / "_SUCCESS").read_text())["output_rows"] == ROWS

    by_pid: dict[int, list[int]] = {}  # the worker's own log: "split N: R rows, 0 rejected"
    rows = 0
    for line in stack["log"].read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = entry.get("message", "") if isinstance(entry, dict) else ""
        if entry.get("job_id") == job["id"] and message.startswith("split "):
            index, counts = message.removeprefix("split ").split(": ", 1)
            by_pid.setdefault(entry["pid"], []).append(int(index))
            rows += int(counts.split(" rows")[0])
    scored = sorted(i for indices in by_pid.values() for i in indices)
    assert scored == list(range(splits)), by_pid  # each split once
    assert len(by_pid) == 2, by_pid  # by both processes
    assert rows == ROWS


def test_predict_answers_through_the_processes(stack):
    resp = requests.post(stack["base"] + "/v1/predict",
                         json={"texts": ["WIN a free prize now!!!", "see you at lunch"]},
                         timeout=60)
    assert resp.status_code == 200, resp.text
    assert [r["label"] in ("spam", "ham") for r in resp.json()["results"]] == [True, True]
