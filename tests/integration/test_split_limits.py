"""A store job's splits within bounds, over real processes (redis-server, a Celery worker,
gunicorn; the local artifact store): an input changed after the 202 fails the job; a
cancelled split stops writing its rejected rows; a split whose worker dies more often than
the attempt limit fails the job, and the next worker deletes the dead one's temporary parts;
an id or kept column named like an output column is a 422."""

from __future__ import annotations

import gzip
import json
import os
import signal
import time
from pathlib import Path

import pytest
import requests

from scripts.local_services import start_api, start_worker, wait_until
from tests.integration.conftest import HOME, private_services, wait_for_job

pytestmark = pytest.mark.integration

#: a .gz of one good row and then 20M ``{}`` rows (each rejected "missing"): small, and minutes
#: of reading
EMPTY_ROWS = 20_000_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory, service_env):
    root = tmp_path_factory.mktemp("split-limits")
    tmp = root / "tmp"
    tmp.mkdir()
    redis_proc, env, store = private_services(
        root, service_env, TMPDIR=str(tmp), SPAMQ_SPLIT_MAX_ATTEMPTS="1",
        SPAMQ_MAX_REJECTED_PER_SPLIT=str(10 * EMPTY_ROWS))
    s = {"root": root, "env": env, "store": store, "tmp": tmp, "redis": redis_proc}
    s["worker"] = start_worker(env, log=root / "worker-1.log", name="limits1")
    s["api"], s["base"] = start_api(env, log=root / "api.log")
    yield s
    for name in ("api", "worker", "redis"):
        s[name].stop()


def put(stack, path: str, data: bytes) -> Path:
    target = stack["store"] / HOME / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def submit(stack, body: dict) -> dict:
    resp = requests.post(stack["base"] + "/v1/jobs", json=body, timeout=30)
    assert resp.status_code == 202, resp.text
    return resp.json()


def part_bytes(stack) -> dict[str, int]:
    """The worker's temporary part files (anywhere under its TMPDIR) and their sizes."""
    found = {}
    for p in stack["tmp"].rglob("*part*"):
        try:
            if p.is_file():
                found[str(p)] = p.stat().st_size
        except FileNotFoundError:
            pass
    return found


def empty_rows_gz() -> bytes:
    return gzip.compress(b'{"text": "hello there"}\n' + b"{}\n" * EMPTY_ROWS, compresslevel=1)


@pytest.mark.parametrize(("extra", "field"), [
    ({"id_column": "label"}, "id_column"),
    ({"id_column": "ref"}, "id_column"),
    ({"keep_columns": ["text", "file"]}, "keep_columns[1]"),
    ({"keep_columns": ["spam_probability"]}, "keep_columns[0]"),
])
def test_an_id_or_kept_column_named_like_an_output_column_is_a_422(stack, extra, field):
    put(stack, "in/cols/a.jsonl", b'{"text": "hi", "label": "x", "ref": 1, "file": 2}\n')
    resp = requests.post(stack["base"] + "/v1/jobs", json={
        "hdfs_input": f"{HOME}/in/cols/a.jsonl", "hdfs_output": f"{HOME}/out/cols", **extra},
        timeout=30)
    body = resp.json()
    assert (resp.status_code, body["field"]) == (422, field), body
    assert set(body) == {"error", "field", "message"}


def test_an_input_changed_after_the_202_fails_the_job(stack):
    """The worker is stopped (SIGSTOP) from before the submission until one input has had rows
    appended: the job fails naming the file's index, never a silent ``done``."""
    rows = "".join(json.dumps({"text": f"message {i}"}) + "\n" for i in range(300)).encode()
    first = put(stack, "in/changed/a.jsonl", rows)
    put(stack, "in/changed/b.jsonl", rows)
    worker = stack["worker"].proc
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        job = submit(stack, {"hdfs_input": f"{HOME}/in/changed/*.jsonl",
                             "hdfs_output": f"{HOME}/out/changed"})
        time.sleep(0.05)  # a different mtime, even on a coarse clock
        with open(first, "ab") as fh:
            fh.write(b'{"text": "appended after the 202"}\n')
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    done = wait_for_job(stack["base"], job["status_url"], timeout=90)
    assert done["status"] == "failed", done
    assert done["error"].startswith("input changed: file 0 "), done["error"]
    assert HOME not in done["error"] and str(stack["store"]) not in done["error"]
    assert not (stack["store"] / HOME / "out" / "changed" / "_SUCCESS").exists()


def test_a_cancelled_split_stops_writing_its_rejected_rows(stack):
    put(stack, "in/cancel/empty.jsonl.gz", empty_rows_gz())
    job = submit(stack, {"hdfs_input": f"{HOME}/in/cancel/empty.jsonl.gz",
                         "hdfs_output": f"{HOME}/out/cancel"})
    wait_until(lambda: sum(part_bytes(stack).values()) > 100_000, timeout=60,
               what="the split writing rejected rows", proc=stack["worker"].proc,
               log=stack["worker"].log)
    cancel = requests.delete(stack["base"] + job["status_url"], timeout=5)
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    time.sleep(3)  # at most one check period (0.5 s) and the cleanup, with room
    assert part_bytes(stack) == {}, "the cancelled split's temporary parts are still there"
    time.sleep(1)
    assert part_bytes(stack) == {}
    view = requests.get(stack["base"] + job["status_url"], timeout=5).json()
    assert view["status"] == "cancelled"
    assert not (stack["store"] / HOME / "out" / "cancel" / "_rejected").exists()


def test_a_split_whose_worker_dies_more_than_the_attempt_limit_fails_the_job(stack):
    """SPAMQ_SPLIT_MAX_ATTEMPTS=1: the worker is SIGKILLed mid-split; the next worker's sweeper
    re-sends the split, and its second attempt fails the job with a reason instead of
    scoring it again (and again). That worker, starting, deleted the dead one's parts."""
    put(stack, "in/dies/empty.jsonl.gz", empty_rows_gz())
    job = submit(stack, {"hdfs_input": f"{HOME}/in/dies/empty.jsonl.gz",
                         "hdfs_output": f"{HOME}/out/dies"})
    old = stack["worker"]
    wait_until(lambda: sum(part_bytes(stack).values()) > 100_000, timeout=60,
               what="the split running", proc=old.proc, log=old.log)
    os.killpg(old.proc.pid, signal.SIGKILL)
    old.proc.wait(10)
    old.stop()
    left = part_bytes(stack)
    assert left, "the killed worker left its temporary parts"
    stack["worker"] = start_worker(stack["env"], log=stack["root"] / "worker-2.log",
                                   name="limits2")
    after_start = part_bytes(stack)
    done = wait_for_job(stack["base"], job["status_url"], timeout=90)
    assert done["status"] == "failed", done
    assert done["error"] == ("split 0 failed after 1 attempt (the worker died while scoring "
                             "it)"), done["error"]
    assert not set(left) & set(after_start), "a dead worker's parts survived a start"
