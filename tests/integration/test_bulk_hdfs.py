"""Store jobs: input splits read from HDFS, part files written back (worker/split_tasks.py).

Real processes: redis-server, a celery worker and the gunicorn API, both on a real HDFS.
"""

from __future__ import annotations

import io
import json
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from scripts.local_services import start_api, start_redis, start_worker
from spamq.storage.artifacts import HdfsArtifactStore
from tests.helpers.data import sample_csv
from tests.integration.conftest import API_KEY_2, HOME, HOME_2, wait_for_job

pytestmark = pytest.mark.integration

CHUNK = 100
STACK: dict = {}  # the module's worker process, for the kill test
SPLIT_BYTES = 8 * 1024  # several splits per test file


@pytest.fixture(scope="module")
def hdfs_job_env(hdfs_url, service_env, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("bulk-hdfs")
    root = f"/spamq-test/{uuid.uuid4().hex}"
    store = HdfsArtifactStore(hdfs_url, user="spamq", root=root, timeout_s=10)
    rproc, rurl = start_redis(tmp / "redis")
    env = {**service_env, "SPAMQ_REDIS_URL": rurl, "SPAMQ_HDFS_URL": hdfs_url,
           "SPAMQ_STORE_GRANTS": json.dumps({HOME_2.rsplit("/", 1)[1]: ["shared"]}),
           "SPAMQ_HDFS_ROOT": root, "SPAMQ_CHUNK_SIZE": str(CHUNK),
           "SPAMQ_SPLIT_BYTES": str(SPLIT_BYTES)}
    STACK.update(env=env, tmp=tmp, worker=start_worker(env, log=tmp / "worker.log"))
    api, base = start_api(env, log=tmp / "api.log")
    try:
        yield base, store, redis.Redis.from_url(rurl)
    finally:
        api.stop()
        STACK["worker"].stop()
        rproc.stop()
        store.delete("", recursive=True)


def all_results(base: str, job_id: str) -> list[dict]:
    r = requests.get(f"{base}/v1/jobs/{job_id}/results", params={"format": "jsonl"}, timeout=30)
    assert r.ok, r.text
    return [json.loads(line) for line in r.text.splitlines()]


def check_output(store: HdfsArtifactStore, base: str, job: dict, out: str, n: int,
                 bad: set[int]) -> None:
    """A done store job's output: one part per split, _rejected, _SUCCESS; every input row
    exactly once (by its echoed id), parts = what the API serves."""
    names = store.list(out)  # a done job's output is complete: _SUCCESS is there already
    assert job["status"] == "done" and "_SUCCESS" in names, (job["status"], names)
    parts = sorted(x for x in names if x.startswith("part-"))
    assert parts == [f"part-{i:05d}.jsonl" for i in range(job["chunks"]["total"])], names
    assert not [x for x in names if x.startswith(".tmp-")], names  # no half-written files
    success = json.loads(store.read_bytes(f"{out}/_SUCCESS"))
    assert (success["job_id"], success["input_rows"], success["output_rows"],
            success["rejected_rows"]) == (job["id"], n, n - len(bad), len(bad)), success
    assert success["model_version"] == job["model_version"] and success["inputs"]
    rejected = [json.loads(x) for name in (store.list(f"{out}/_rejected") or [])
                for x in store.read_bytes(f"{out}/_rejected/{name}").splitlines()]
    assert sorted(int(r["id"]) for r in rejected) == sorted(bad)
    part_rows = [json.loads(x) for name in parts
                 for x in store.read_bytes(f"{out}/{name}").splitlines()]
    assert len(part_rows) + len(rejected) == n
    ids = sorted(int(r["id"]) for r in part_rows + rejected)
    assert ids == list(range(n))  # every row exactly once
    assert all(set(r) >= {"id", "file", "ref", "label", "spam_probability", "truncated",
                          "model_version"} for r in part_rows)
    assert all_results(base, job["id"]) == part_rows


def test_hdfs_input_to_hdfs_output(hdfs_job_env):
    base, store, _ = hdfs_job_env
    n, bad = 600, {5, 123, 350, 599}
    store.write_bytes(f"{HOME}/in/sms.csv", sample_csv(n, bad))
    r = requests.post(f"{base}/v1/jobs", json={"hdfs_input": f"/{HOME}/in/sms.csv",
                                              "column": "text", "id_column": "id",
                                              "hdfs_output": f"/{HOME}/out/ok"}, timeout=30)
    assert r.status_code == 202, r.text
    job = wait_for_job(base, f"/v1/jobs/{r.json()['id']}", timeout=180)
    assert job["status"] == "done", job
    assert job["output"] == f"{HOME}/out/ok"
    assert job["chunks"]["total"] >= 3 and job["progress"]["total"] == n - len(bad)
    assert job["progress"]["bytes_done"] == job["progress"]["bytes_total"] > 0
    check_output(store, base, job, f"{HOME}/out/ok", n, bad)
    # a new job may not write into an output that already holds files: 409, nothing touched
    before = store.files(f"{HOME}/out/ok")
    again = requests.post(f"{base}/v1/jobs", json={"hdfs_input": f"/{HOME}/in/sms.csv",
                                                   "hdfs_output": f"/{HOME}/out/ok"}, timeout=30)
    assert again.status_code == 409 and again.json()["field"] == "hdfs_output", again.text
    assert "file(s)" in again.json()["message"] and "_SUCCESS" not in again.json()["message"]
    assert store.files(f"{HOME}/out/ok") == before


def test_hdfs_input_validation(hdfs_job_env):
    base, store, _ = hdfs_job_env
    post = lambda body: requests.post(f"{base}/v1/jobs", json=body, timeout=30)  # noqa: E731
    r = post({"hdfs_input": f"/{HOME}/in/missing.csv", "hdfs_output": f"/{HOME}/out/x"})
    assert r.status_code == 422 and r.json()["field"] == "hdfs_input", r.text
    r = post({"hdfs_input": f"/{HOME}/in/sms.csv"})
    assert r.status_code == 422 and r.json()["field"] == "hdfs_output", r.text
    r = post({"hdfs_input": f"/{HOME}/in/sms.xlsx", "hdfs_output": f"/{HOME}/out/x"})
    assert r.status_code == 422 and r.json()["field"] in ("format", "hdfs_input"), r.text
    r = post({"hdfs_input": "../etc/passwd", "hdfs_output": f"/{HOME}/out/x"})
    assert r.status_code == 422 and r.json()["field"] == "hdfs_input", r.text


def test_part_write_failure_fails_job_and_resume_completes(hdfs_job_env):
    """A real HDFS refusal: part-00001.jsonl is a non-empty directory, so the rename over it
    fails on every try. The job fails, no temp file is left; once the obstacle is gone a
    resubmission with the same Idempotency-Key re-sends that chunk and the output completes."""
    base, store, _ = hdfs_job_env
    n, bad = 350, {7}
    store.write_bytes(f"{HOME}/in/fail.csv", sample_csv(n, bad))
    store.write_bytes(f"{HOME}/out/fail/part-00001.jsonl/blocker", b"x")
    body = {"hdfs_input": f"{HOME}/in/fail.csv", "hdfs_output": f"{HOME}/out/fail",
            "id_column": "id"}
    headers = {"Idempotency-Key": f"hdfs-{uuid.uuid4().hex}"}
    r = requests.post(f"{base}/v1/jobs", json=body, headers=headers, timeout=30)
    assert r.status_code == 202, r.text
    job = wait_for_job(base, f"/v1/jobs/{r.json()['id']}", timeout=180)
    assert job["status"] == "failed", job
    assert "split 1 failed" in job["error"] and "/spamq-test" not in job["error"], job
    time.sleep(1.0)  # chunks in flight finish writing their parts
    names = store.list(f"{HOME}/out/fail")
    assert "_SUCCESS" not in names and not [x for x in names if x.startswith(".tmp-")], names

    store.delete(f"{HOME}/out/fail/part-00001.jsonl", recursive=True)
    r = requests.post(f"{base}/v1/jobs", json=body, headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["resent_chunks"] >= 1, r.text
    job = wait_for_job(base, f"/v1/jobs/{job['id']}", timeout=180)
    assert job["status"] == "done", job
    check_output(store, base, job, f"{HOME}/out/fail", n, bad)


def test_a_key_reads_and_writes_only_its_own_area_and_what_it_is_granted(hdfs_job_env):
    """The probe's cross-tenant reads: key 2 scoring key 1's files, a wrong column quoting a
    file's first line, a 409 listing another directory, messages naming the store."""
    base, store, _ = hdfs_job_env
    secret_line = "id,text,SECRET-COLUMN-NAME"
    store.write_bytes(f"{HOME}/in/private.csv", (secret_line + "\n1,hello,x\n").encode())
    store.write_bytes(f"{HOME}/out/private/part-00000.jsonl", b'{"row": 0}\n')
    store.write_bytes("shared/sms.csv", sample_csv(20, set()))
    other = {"X-API-Key": API_KEY_2}

    def post(body, headers=None):
        return requests.post(f"{base}/v1/jobs", json=body, headers=headers or {}, timeout=30)

    for body in ({"hdfs_input": f"{HOME}/in/private.csv", "hdfs_output": f"{HOME_2}/out/a"},
                 {"hdfs_input": f"/{HOME}/in/../in/private.csv", "hdfs_output": f"{HOME_2}/o"},
                 {"hdfs_input": "shared/sms.csv", "hdfs_output": f"{HOME}/out/stolen"}):
        r = post(body, other)
        assert r.status_code in (403, 422), (body, r.text)
        assert "SECRET" not in r.text and HOME.rsplit("/", 1)[1] not in r.text, r.text
        assert "hdfs://" not in r.text and "http://" not in r.text and "/spamq-test" not in r.text
    assert store.list(f"{HOME}/out/stolen") == []
    r = post({"hdfs_input": f"{HOME}/in/private.csv", "column": "nope",
              "hdfs_output": f"{HOME}/out/b"})
    assert r.status_code == 422 and r.json()["field"] == "column", r.text
    assert "SECRET" not in r.text and "3 columns" in r.text
    r = post({"hdfs_input": f"{HOME}/in/private.csv", "hdfs_output": f"{HOME}/out/private"})
    assert r.status_code == 409 and "part-00000" not in r.text, r.text
    r = post({"hdfs_input": f"{HOME}/in/private.csv", "hdfs_output": f"{HOME}/in/private.csv/x"})
    assert r.status_code == 422 and r.json()["field"] == "hdfs_output", r.text
    r = post({"hdfs_input": f"{HOME}/in/missing.csv", "hdfs_output": f"{HOME}/out/c"})
    assert r.status_code == 422 and "/spamq-test" not in r.text, r.text
    # an operator's grant: key 2 may read shared/ and write its result to its own area
    r = post({"hdfs_input": "shared/sms.csv", "hdfs_output": f"{HOME_2}/out/shared"}, other)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = requests.get(f"{base}/v1/jobs/{r.json()['id']}", headers=other, timeout=10).json()
        if job["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert job["status"] == "done" and job["output"] == f"{HOME_2}/out/shared", job
    # and key 1 cannot see key 2's job at all
    assert requests.get(f"{base}/v1/jobs/{job['id']}", timeout=10).status_code == 404


def test_two_jobs_racing_for_one_output_directory_one_wins(hdfs_job_env):
    base, store, _ = hdfs_job_env
    store.write_bytes(f"{HOME}/in/race.csv", sample_csv(30, set()))
    body = {"hdfs_input": f"{HOME}/in/race.csv", "hdfs_output": f"{HOME}/out/race"}
    barrier = threading.Barrier(4)

    def submit(_):
        barrier.wait()
        return requests.post(f"{base}/v1/jobs", json=body, timeout=30)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(submit, range(4)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [202, 409, 409, 409], [r.text for r in answers]
    winner = next(r for r in answers if r.status_code == 202).json()
    job = wait_for_job(base, winner["status_url"], timeout=120)
    assert job["status"] == "done"
    success = json.loads(store.read_bytes(f"{HOME}/out/race/_SUCCESS"))
    assert success["job_id"] == job["id"] and success["output_rows"] == 30


def test_a_directory_of_gz_and_plain_parts_and_a_parquet_input_echo_their_ids(hdfs_job_env):
    """Hadoop-style inputs: a directory of part files (plain and gzip; _SUCCESS and dot files
    skipped), and Parquet row groups, whose output is Parquet too."""
    base, store, r = hdfs_job_env
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": f"m{i}", "text": f"WIN a prize now call 0800 {i}" if i % 4 == 0
             else f"lunch at {i}?", "lang": "en"} for i in range(900)]
    jsonl = [json.dumps(row).encode() + b"\n" for row in rows]
    store.write_bytes(f"{HOME}/dir/part-00000.jsonl", b"".join(jsonl[:300]))
    store.write_bytes(f"{HOME}/dir/part-00001.jsonl.gz", gzip.compress(b"".join(jsonl[300:600])))
    store.write_bytes(f"{HOME}/dir/part-00002.jsonl", b"".join(jsonl[600:]))
    store.write_bytes(f"{HOME}/dir/_SUCCESS", b"")
    store.write_bytes(f"{HOME}/dir/.part-00000.jsonl.crc", b"junk")
    body = {"hdfs_input": f"{HOME}/dir", "hdfs_output": f"{HOME}/out/dir", "id_column": "id",
            "keep_columns": ["lang"]}
    resp = requests.post(f"{base}/v1/jobs", json=body, timeout=30)
    assert resp.status_code == 202, resp.text
    job = wait_for_job(base, resp.json()["status_url"], timeout=180)
    assert job["status"] == "done" and job["progress"]["total"] == 900, job
    got = all_results(base, job["id"])
    assert sorted(g["id"] for g in got) == sorted(row["id"] for row in rows)
    assert all(g["lang"] == "en" for g in got)
    success = json.loads(store.read_bytes(f"{HOME}/out/dir/_SUCCESS"))
    assert [p["path"].rsplit("/", 1)[1] for p in success["inputs"]] == [
        "part-00000.jsonl", "part-00001.jsonl.gz", "part-00002.jsonl"]

    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=250)  # 4 row groups: 4 splits
    store.write_bytes(f"{HOME}/pq/sms.parquet", sink.getvalue())
    resp = requests.post(f"{base}/v1/jobs", json={
        "hdfs_input": f"{HOME}/pq/*.parquet", "hdfs_output": f"{HOME}/out/pq",
        "id_column": "id"}, timeout=30)
    assert resp.status_code == 202, resp.text
    job = wait_for_job(base, resp.json()["status_url"], timeout=180)
    assert job["status"] == "done" and job["chunks"]["total"] == 4, job
    parts = sorted(n for n in store.list(f"{HOME}/out/pq") if n.startswith("part-"))
    assert parts == [f"part-{i:05d}.parquet" for i in range(4)]
    ids = [i for name in parts for i in pq.read_table(
        io.BytesIO(store.read_bytes(f"{HOME}/out/pq/{name}"))).column("id").to_pylist()]
    assert ids == [row["id"] for row in rows]  # Parquet in, Parquet out, in order
    assert [g["id"] for g in all_results(base, job["id"])] == ids


def start_big_job(base: str, store, r, name: str, n: int, *, parts: int) -> str:
    """A store job over an n-row CSV, once ``parts`` of its splits are committed."""
    store.write_bytes(f"{HOME}/in/{name}.csv", sample_csv(n, set()))
    resp = requests.post(f"{base}/v1/jobs", json={
        "hdfs_input": f"{HOME}/in/{name}.csv", "hdfs_output": f"{HOME}/out/{name}",
        "id_column": "id"}, timeout=30)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and r.scard(f"spamq:job:{job_id}:parts") < parts:
        time.sleep(0.02)
    return job_id


def test_a_store_job_keeps_no_row_in_redis_and_cancels_mid_job(hdfs_job_env):
    base, store, r = hdfs_job_env
    job_id = start_big_job(base, store, r, "big", 30_000, parts=1)
    keys = {k.decode() for k in r.keys(f"spamq:job:{job_id}*")}
    allowed = {f"spamq:job:{job_id}" + s for s in (
        "", ":files", ":splits", ":spec", ":parts", ":split_rows", ":split_workers", ":progress",
        ":finished")}
    assert keys <= allowed, keys - allowed  # no :texts, no :results: no row in Redis
    splits = int(r.hget(f"spamq:job:{job_id}", "chunks_total"))
    assert splits > 20
    for key in keys:  # and every record is O(splits), never O(rows)
        kind = r.type(key).decode()
        size = {"hash": r.hlen, "list": r.llen, "set": r.scard}.get(kind, lambda k: 1)(key)
        assert size <= max(splits, 32), (key, size)
    assert b"see you at lunch" not in b"".join(r.dump(k) or b"" for k in keys)
    cancel = requests.delete(f"{base}/v1/jobs/{job_id}", timeout=10)
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    time.sleep(2)  # splits in flight stop at their next check
    parts = requests.get(f"{base}/v1/jobs/{job_id}/parts", timeout=10).json()["parts"]
    assert len(parts) < requests.get(f"{base}/v1/jobs/{job_id}", timeout=10).json()[
        "chunks"]["total"]
    assert "_SUCCESS" not in store.list(f"{HOME}/out/big")


def test_a_worker_killed_mid_split_loses_and_duplicates_nothing(hdfs_job_env):
    """SIGKILL the worker while splits run; a new worker re-scores only the splits without a
    committed part (their leases name the dead worker), 0 rows lost or duplicated."""
    base, store, r = hdfs_job_env
    n = 40_000
    job_id = start_big_job(base, store, r, "kill", n, parts=3)
    STACK["worker"].stop(signal.SIGKILL)
    before = {int(i) for i in r.smembers(f"spamq:job:{job_id}:parts")}
    stamps = {i: store.stat(f"{HOME}/out/kill/part-{i:05d}.jsonl").mtime for i in before}
    killed = time.monotonic()
    STACK["worker"] = start_worker(STACK["env"], log=STACK["tmp"] / "worker-2.log", name="w2")
    job = wait_for_job(base, f"/v1/jobs/{job_id}", timeout=300)
    assert job["status"] == "done", job
    rows = [json.loads(x) for name in store.list(f"{HOME}/out/kill") if name.startswith("part-")
            for x in store.read_bytes(f"{HOME}/out/kill/{name}").splitlines()]
    ids = [int(row["id"]) for row in rows]
    assert len(ids) == len(set(ids)) == n  # 0 lost, 0 duplicated
    assert all(store.stat(f"{HOME}/out/kill/part-{i:05d}.jsonl").mtime == stamps[i]
               for i in before)  # committed splits were not scored again
    print(f"\nkill mid-split: {len(before)} splits committed before, done "
          f"{time.monotonic() - killed:.1f}s after the kill")
