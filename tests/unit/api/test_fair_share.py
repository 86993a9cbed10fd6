"""Per-key shares at admission (api/limits.py, schema.ADMISSION), in-process on fakeredis:
store jobs count against the key's rows, a full queue refuses only the key that fills it."""

import gzip

import fakeredis
import pytest

from api.auth import hash_key
from spamq.jobs.store import JobStore
from spamq.jobs.store_jobs import StoreJobs
from spamq.settings import Settings
from spamq.storage.artifacts import LocalArtifactStore
from spamq.storage.estimate import estimate_rows
from spamq.storage.splits import InputFile, Split
from tests.helpers.api import Tasks, make_api, run_all

ALICE, BOB = "alice-" + "a" * 40, "bob-" + "b" * 40


def _app(tmp_path, **overrides):
    base = dict(auth_required=True, api_keys=f"{hash_key(ALICE)},{hash_key(BOB)}",
                chunk_size=4, max_texts_per_request=100, artifact_dir=tmp_path,
                bulk_window_chunks=2, split_bytes=200)
    tasks = Tasks()
    client, jobs = make_api(tasks, **{**base, **overrides})
    return client, jobs, tasks


def as_(key):
    return {"X-API-Key": key}


def _home(client, key) -> str:
    from api.auth import key_id

    return f"tenants/{key_id(hash_key(key))}"


def test_the_estimate_counts_compressed_bytes_times_the_expansion():
    files = [InputFile("a.jsonl", 6400, 0, "jsonl"), InputFile("b.csv.gz", 100, 0, "csv", "gz"),
             InputFile("c.parquet", 100, 0, "parquet")]
    assert estimate_rows(None, files, bytes_per_row=64, expansion=8.0) \
        == (6400 + 800 + 800) // 64


def test_a_gz_counts_the_uncompressed_size_its_trailer_states(tmp_path):
    body = gzip.compress(b'{"text": "x"}\n' * 200_000)  # 2.8 MB in some 10 KB
    (tmp_path / "bomb.jsonl.gz").write_bytes(body)
    (tmp_path / "tiny.jsonl.gz").write_bytes(b"\x1f\x8b")  # too short to hold a trailer
    files = [InputFile("bomb.jsonl.gz", len(body), 0, "jsonl", "gz"),
             InputFile("tiny.jsonl.gz", 2, 0, "jsonl", "gz")]
    store = LocalArtifactStore(tmp_path)
    assert estimate_rows(store, files, bytes_per_row=14, expansion=8.0) \
        == (200_000 * 14 + 16) // 14
    # past trailers_max, or a trailer stating less: the expansion alone
    assert estimate_rows(store, files, bytes_per_row=14, expansion=8.0, trailers_max=0) \
        == (len(body) * 8 + 16) // 14


def test_a_store_job_counts_its_estimate_then_what_its_splits_measure(tmp_path):
    jobs = JobStore(fakeredis.FakeRedis(), ttl_s=600)
    files = [InputFile("in/a.jsonl", 1000, 0, "jsonl")]
    splits = [Split(i, 0, 250 * i, 250) for i in range(4)]
    job, sent = StoreJobs(jobs).create(
        files, splits, {}, queue="spamq.bulk", owner="k1", idempotency_key=None, output="o",
        deadline=None, window=2, quote_pass=False, est_rows=500)
    load = jobs.leases.load(["spamq.bulk"], "k1")
    assert (load.pending_rows, load.pieces) == (500, 2)  # the estimate; 2 splits queued
    # a scored split of 250 bytes held 100 rows (and 25 rejected): 750 bytes left at 125/250
    StoreJobs(jobs).split_done(job.id, 0, rows=100, rejected=25, nbytes=250, model_version="v")
    load = jobs.leases.load(["spamq.bulk"], "k1")
    assert load.pending_rows == 750 * 125 // 250
    assert load.pieces == 2  # one stored, the next one sent
    # another key's rows are its own
    assert jobs.leases.load(["spamq.bulk"], "k2").pending_rows == 0


def test_a_gz_store_job_counts_against_the_keys_rows(tmp_path):
    client, jobs, _ = _app(tmp_path, max_pending_rows_per_key=100_000)
    home = _home(client, ALICE)
    (tmp_path / home / "in").mkdir(parents=True)
    body = gzip.compress(b'{"text": "win a prize"}\n' * 300_000)  # 7.2 MB of rows in ~30 KB
    (tmp_path / home / "in" / "big.jsonl.gz").write_bytes(body)
    first = client.post("/v1/jobs", json={"hdfs_input": f"{home}/in/big.jsonl.gz",
                                          "hdfs_output": f"{home}/out/1"}, headers=as_(ALICE))
    assert first.status_code == 202, first.get_json()
    owner = jobs.jobs.get(first.get_json()["id"]).owner
    assert jobs.leases.load([], owner).pending_rows == 300_000 * 24 // 64  # its stated size / 64
    second = client.post("/v1/jobs", json={"hdfs_input": f"{home}/in/big.jsonl.gz",
                                           "hdfs_output": f"{home}/out/2"}, headers=as_(ALICE))
    assert second.status_code == 429 and second.get_json()["error"] == "over_quota"
    assert client.post("/v1/jobs", json={"texts": ["b"]}, headers=as_(BOB)).status_code == 202


def test_a_full_queue_refuses_the_key_that_fills_it_and_admits_the_others(tmp_path):
    # a key's bulk window as wide as all its jobs: each job's 10 chunks are queued at once
    client, jobs, _ = _app(tmp_path, max_queue_depth=20, queue_share_floor=2,
                           bulk_window_per_key=1000)
    codes = []
    for _ in range(15):  # Alice: bulk jobs of 10 chunks queued each
        resp = client.post("/v1/jobs", json={"texts": ["a"] * 40}, headers=as_(ALICE))
        codes.append(resp.status_code)
        jobs.redis.rpush("spamq.bulk", b"{}", b"{}")  # as the broker would hold them
    assert codes.count(202) >= 10 and codes[-1] == 429
    refused = client.post("/v1/jobs", json={"texts": ["a"] * 40}, headers=as_(ALICE))
    assert refused.status_code == 429 and refused.get_json()["error"] == "overloaded"
    assert refused.get_json()["key_queued"] >= 10
    for _ in range(5):  # Bob holds nothing: admitted while the queue is full
        resp = client.post("/v1/jobs", json={"texts": ["b"] * 8}, headers=as_(BOB))
        assert resp.status_code == 202, resp.get_json()
    # two keys active: Alice's share is half the depth, and she holds more than that
    assert client.post("/v1/jobs", json={"texts": ["a"]}, headers=as_(ALICE)).status_code == 429


def test_a_keys_interactive_rows_are_capped_for_that_key_only(tmp_path):
    client, _, _ = _app(tmp_path, max_interactive_rows_per_key=8)
    for _ in range(2):
        assert client.post("/v1/jobs", json={"texts": ["a"] * 4},
                           headers=as_(ALICE)).status_code == 202
    over = client.post("/v1/jobs", json={"texts": ["a"] * 4}, headers=as_(ALICE))
    assert over.status_code == 429 and over.get_json()["error"] == "over_quota"
    assert "interactive_rows" in over.get_json()
    assert client.post("/v1/jobs", json={"texts": ["b"] * 4}, headers=as_(BOB)).status_code == 202


def test_scored_store_jobs_stop_counting(tmp_path):
    client, jobs, tasks = _app(tmp_path, max_pending_rows_per_key=10_000)
    home = _home(client, ALICE)
    (tmp_path / home / "in").mkdir(parents=True)
    (tmp_path / home / "in" / "a.jsonl").write_text(
        "".join(f'{{"text": "row {i}"}}\n' for i in range(40)))
    resp = client.post("/v1/jobs", json={"hdfs_input": f"{home}/in/a.jsonl",
                                         "hdfs_output": f"{home}/out"}, headers=as_(ALICE))
    assert resp.status_code == 202
    owner = jobs.jobs.get(resp.get_json()["id"]).owner
    assert jobs.leases.load([], owner).pending_rows > 0
    run_all(jobs, tasks, LocalArtifactStore(tmp_path))
    assert jobs.jobs.get(resp.get_json()["id"]).status == "done"
    assert jobs.leases.load([], owner)[1:4] == (0, 0, 0)


@pytest.mark.parametrize("active, expected", [(1, 100), (2, 50), (10, 16)])
def test_a_share_is_the_depth_over_the_active_keys_with_a_floor(active, expected):
    from api.limits import share

    assert share(Settings(max_queue_depth=100, queue_share_floor=16), active) == expected
