"""A split task's Redis reads before it scores: one pipeline, then the file's record."""

from __future__ import annotations

import json

import pytest
import redis

from spamq.jobs.store_jobs import ATTEMPTS, StoreJobs
from tests.helpers.api import SplitHarness


class RoundTrips:
    """Counts commands sent alone and pipelines executed (each one round trip)."""

    def __init__(self, monkeypatch) -> None:
        self.n = 0
        single, batch = redis.Redis.execute_command, redis.client.Pipeline.execute

        def counted_single(client, *args, **kw):
            self.n += 1
            return single(client, *args, **kw)

        def counted_batch(pipe, *args, **kw):
            self.n += 1
            return batch(pipe, *args, **kw)

        monkeypatch.setattr(redis.Redis, "execute_command", counted_single)
        monkeypatch.setattr(redis.client.Pipeline, "execute", counted_batch)


@pytest.fixture
def ctx(tmp_path):
    return SplitHarness(tmp_path, split_bytes=1 << 20)


def _attempts(ctx, job_id: str, index: int) -> int:
    raw = ctx.jobs.redis.hget(f"spamq:job:{job_id}:progress", f"{ATTEMPTS}{index}")
    return int(raw or 0)


def test_a_split_start_reads_in_two_round_trips(ctx, monkeypatch):
    ctx.write("in/a.jsonl", b'{"text": "hello"}\n{"text": "win a prize"}\n')
    job_id = ctx.submit(hdfs_input="in/a.jsonl", output_format="csv")
    trips = RoundTrips(monkeypatch)
    job, attempts, spec, file, split = StoreJobs(ctx.jobs).split_start(job_id, 0)
    assert trips.n == 2
    assert (job.id, job.output, attempts) == (job_id, "out/j", 1)
    assert (spec["column"], spec["output_format"]) == ("text", "csv")
    assert (file["path"].endswith("in/a.jsonl"), split["index"], split["file"]) == (True, 0, 0)
    assert _attempts(ctx, job_id, 0) == 1


def test_a_whole_split_costs_few_round_trips_and_scores(ctx, monkeypatch):
    rows = [json.dumps({"text": f"message {i}"}) for i in range(50)]
    ctx.write("in/a.jsonl", ("\n".join(rows) + "\n").encode())
    scorer = ctx.scorer()
    assert scorer.run(ctx.submit(hdfs_input="in/a.jsonl"), 0) is True  # loads the scripts
    job_id = ctx.submit(hdfs_input="in/a.jsonl", hdfs_output="out/k")
    trips = RoundTrips(monkeypatch)
    assert scorer.run(job_id, 0) is True
    # lease, start (2), running, done; the last split's _SUCCESS (job, files), output done;
    # release. Reading the job, attempts, spec, split, file and output one by one took 13.
    assert trips.n <= 9, trips.n
    job = ctx.jobs.jobs.get(job_id)
    assert (job.status, job.done) == ("done", 50)


def test_a_stopped_jobs_split_takes_back_its_attempt(ctx):
    ctx.write("in/a.jsonl", b'{"text": "hello"}\n')
    job_id = ctx.submit(hdfs_input="in/a.jsonl")
    assert ctx.jobs.jobs.cancel(job_id)
    scorer = ctx.scorer(max_attempts=1)
    for _ in range(3):  # redelivered copies of a cancelled job's split: never an attempt
        assert scorer.run(job_id, 0) is False
    assert _attempts(ctx, job_id, 0) == 0
    assert ctx.jobs.jobs.get(job_id).status == "cancelled"
