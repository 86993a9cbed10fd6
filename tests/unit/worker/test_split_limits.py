"""A store job's split within bounds (worker/split_tasks.py, spamq/storage/splits.py): memory
per batch by bytes (Parquet dictionaries and long values included), an attempt limit, the
input's fingerprint, cancellation and a cap while rows are rejected, Parquet ids that start
null, output column names, temporary parts of dead workers."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tempfile

import fakeredis
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api.requests import OUTPUT_COLUMNS
from spamq.jobs.store import JobStore
from spamq.jobs.store_jobs import StoreJobs
from spamq.settings import Settings
from spamq.storage import splits as input_splits
from spamq.storage.artifacts import LocalArtifactStore
from tests.helpers.api import SplitHarness, WinScorer
from worker import split_tasks
from worker.process import StoreStep, WorkerProcess
from worker.split_tasks import RESULT_FIELDS, PartWriter, clean_stale_parts


class Died(BaseException):
    """What a worker killed mid-split looks like to the code after it: nothing runs on."""


class DyingScorer:
    def submit(self, texts, *, interactive=True, **_):
        raise Died


@pytest.fixture
def ctx(tmp_path):
    return SplitHarness(tmp_path, split_bytes=200)


def bomb(path, rows: int = 4096, size: int = 500_000) -> None:
    """One ``size``-character value in every row, dictionary-encoded: a small file."""
    indices = pa.array([0] * rows, pa.int32())
    text = pa.DictionaryArray.from_arrays(indices, pa.array(["x" * size]))
    pq.write_table(pa.table({"text": text, "id": list(range(rows))}), path,
                   compression="zstd")


# --- memory per batch ---------------------------------------------------------------------

PROBE = """
import sys
from spamq.storage import splits
from spamq.storage.artifacts import LocalArtifactStore
store = LocalArtifactStore(sys.argv[1])
files = splits.list_input(store, "bomb.parquet")
problems = set()
n = 0
for split in splits.plan_splits(store, files, split_bytes=1 << 20):
    for record in splits.read_split(store, files[0], split, column="text", id_column="id"):
        n += 1
        problems.add(record.problem)
# VmHWM: this process's peak (ru_maxrss would also hold the forking parent's)
peak = next(int(line.split()[1]) for line in open("/proc/self/status")
            if line.startswith("VmHWM:"))
print(n, peak // 1024, sorted(problems))
"""


def test_a_dictionary_bomb_parquet_is_read_in_bounded_memory(tmp_path):
    """4,096 rows of one 500 KB dictionary value: each text is measured in Arrow and
    rejected, never decoded to 2 GB of Arrow strings or Python objects (the old reader's
    peak was over 1 GB in this probe)."""
    bomb(tmp_path / "bomb.parquet")
    assert (tmp_path / "bomb.parquet").stat().st_size < 100_000
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], check=True,
                         capture_output=True, text=True).stdout.split(maxsplit=2)
    rows, peak_mb, problems = int(out[0]), int(out[1]), out[2]
    assert rows == 4096
    assert "too long: 500000 characters, at most 5000" in problems and "None" not in problems
    assert peak_mb < 500, peak_mb


def test_parquet_values_are_measured_before_they_become_python(tmp_path):
    table = pa.table({"text": ["hi", "y" * 6000, "ok", None, "fine"],
                      "blob": ["a", "b", "z" * 2_000_000, "c", None],
                      "id": [1, 2, 3, 4, 5]})
    pq.write_table(table, tmp_path / "t.parquet")
    store = LocalArtifactStore(tmp_path)
    files = input_splits.list_input(store, "t.parquet")
    [split] = input_splits.plan_splits(store, files, split_bytes=1 << 20)
    records = list(input_splits.read_split(store, files[0], split, column="text",
                                           id_column="id", keep_columns=("blob",),
                                           batch_bytes=64 * 1024))
    assert [r.problem for r in records] == [
        None, "too long: 6000 characters, at most 5000",
        "record too long: a value of more than 1048576 bytes", "missing", None]
    assert [r.text for r in records] == ["hi", None, None, None, "fine"]
    assert [r.extra for r in records] == [
        {"id": 1, "blob": "a"}, {"id": 2, "blob": "b"}, {"id": None, "blob": None},
        {"id": 4, "blob": "c"}, {"id": 5, "blob": None}]
    assert [r.ref for r in records] == [0, 1, 2, 3, 4]


def test_a_batch_handed_to_the_model_is_bounded_in_bytes(tmp_path):
    ctx = SplitHarness(tmp_path)
    lines = [json.dumps({"text": f"{i} " + "w" * 4000}) for i in range(100)]
    ctx.write("in/long.jsonl", ("\n".join(lines) + "\n").encode())
    job_id = ctx.submit(hdfs_input="in/long.jsonl")
    fake = WinScorer()
    scorer = ctx.scorer(fake, batch_bytes=64 * 1024)
    for index in ctx.splits_sent():
        scorer.run(job_id, index)
    assert ctx.jobs.jobs.get(job_id).status == "done"
    assert sum(map(len, fake.batches)) == 100
    assert max(len(b) for b in fake.batches) == 17  # 64 KB of 4 KB texts, then it flushes


# --- Parquet ids that start null ----------------------------------------------------------

def test_a_parquet_id_column_null_then_string_is_written(tmp_path):
    ctx = SplitHarness(tmp_path)
    n = 9000  # past a part's first row group (8192 rows)
    ids = [None] * n + ["a", "b"]
    table = pa.table({"id": pa.array(ids, pa.string()), "text": ["WIN now"] * (n + 2)})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    ctx.write("in/ids.parquet", buf.getvalue())
    job_id = ctx.submit(hdfs_input="in/ids.parquet", id_column="id")
    ctx.run_all()
    job = ctx.jobs.jobs.get(job_id)
    assert (job.status, job.done, job.error) == ("done", n + 2, None)
    out = pq.read_table(ctx.root / "out" / "j" / "part-00000.parquet")
    assert out.column("id").to_pylist() == ids
    assert out.schema.field("id").type == pa.string()
    assert set(out.column("label").to_pylist()) == {"spam"}


def test_a_parquet_part_keeps_later_values_of_a_column_that_started_empty(tmp_path):
    writer = PartWriter("parquet", ["k", "file", "ref", *RESULT_FIELDS], tmpdir=str(tmp_path))
    base = {"file": 0, "label": None, "spam_probability": None, "truncated": None,
            "model_version": None}
    for i in range(8192):
        writer.write({**base, "k": None, "ref": i})
    writer.write({**base, "k": 7, "ref": 8192, "label": "ham", "spam_probability": 0.25})
    writer.close()
    out = pq.read_table(writer.path)
    assert out.column("k").to_pylist()[-2:] == [None, "7"]
    assert out.column("spam_probability").to_pylist()[-1] == 0.25
    assert out.column("label").to_pylist()[-1] == "ham"
    writer.discard()


# --- attempts -------------------------------------------------------------------------------

def test_a_split_whose_worker_keeps_dying_fails_the_job_after_the_limit(ctx):
    ctx.write("in/a.jsonl", b'{"text": "hello"}\n')
    job_id = ctx.submit(hdfs_input="in/a.jsonl")
    [index] = ctx.splits_sent()
    dying = ctx.scorer(DyingScorer(), max_attempts=3)
    for _ in range(3):
        with pytest.raises(Died):
            dying.run(job_id, index)
        assert ctx.jobs.jobs.get(job_id).status != "failed"
    assert StoreJobs(ctx.jobs).rows_in_progress(job_id) == 0  # attempts are not rows
    assert dying.run(job_id, index) is False  # the fourth delivery: no fourth attempt
    job = ctx.jobs.jobs.get(job_id)
    assert job.status == "failed"
    assert job.error == "split 0 failed after 3 attempts (the worker died while scoring it)"
    assert not (ctx.root / "out" / "j" / "_SUCCESS").exists()
    # A resumed job gets its attempts again: the counter was reset with the failure.
    assert ctx.jobs.leases.resume(job_id)
    assert ctx.scorer(max_attempts=3).run(job_id, index) is True
    assert ctx.jobs.jobs.get(job_id).status == "done"


def test_attempts_that_finish_count_no_failure(ctx):
    ctx.write("in/a.jsonl", b'{"text": "hello"}\n')
    job_id = ctx.submit(hdfs_input="in/a.jsonl")
    scorer = ctx.scorer(max_attempts=1)
    assert scorer.run(job_id, 0) is True
    assert scorer.run(job_id, 0) is False  # a redelivered copy finds it committed
    assert ctx.jobs.jobs.get(job_id).status == "done"


# --- the input's fingerprint ----------------------------------------------------------------

@pytest.mark.parametrize("change", ["append", "replace"])
def test_an_input_changed_after_submission_fails_the_job(ctx, change):
    lines = [json.dumps({"text": f"message {i}"}) for i in range(30)]
    data = ("\n".join(lines) + "\n").encode()
    ctx.write("in/a.jsonl", data)
    ctx.write("in/b.jsonl", data)
    os.utime(ctx.root / "in" / "b.jsonl", (1_700_000_000, 1_700_000_000))
    job_id = ctx.submit(hdfs_input="in/*.jsonl")
    sent = ctx.splits_sent()
    assert len(sent) > 3
    scorer = ctx.scorer()
    assert scorer.run(job_id, sent[0]) is True  # a split of file 0, before the change
    target = ctx.root / "in" / "b.jsonl"
    if change == "append":
        with open(target, "ab") as fh:
            fh.write(b'{"text": "appended"}\n')
    else:  # the same size, other rows, another time
        target.write_bytes(data.replace(b"message", b"MESSAGE"))
        os.utime(target, (1_700_000_100, 1_700_000_100))
    for index in sent[1:]:
        scorer.run(job_id, index)
    job = ctx.jobs.jobs.get(job_id)
    assert job.status == "failed", job
    assert job.error.startswith("input changed: file 1 ")
    assert "b.jsonl" not in job.error and str(ctx.root) not in job.error
    assert not (ctx.root / "out" / "j" / "_SUCCESS").exists()


def test_an_input_changed_while_its_split_is_read_commits_no_part(ctx, monkeypatch):
    ctx.write("in/a.jsonl", b'{"text": "one"}\n{"text": "two"}\n')
    job_id = ctx.submit(hdfs_input="in/a.jsonl")
    real = input_splits.read_split

    def read_then_touch(*args, **kwargs):
        yield from real(*args, **kwargs)
        os.utime(ctx.root / "in" / "a.jsonl", (1_700_000_000, 1_700_000_000))

    monkeypatch.setattr(split_tasks.input_splits, "read_split", read_then_touch)
    assert ctx.scorer().run(job_id, 0) is False
    assert ctx.jobs.jobs.get(job_id).error.startswith("input changed: file 0 ")
    assert not list(ctx.root.glob("out/j/part-*"))


# --- cancel and the cap while rows are rejected ---------------------------------------------

def test_a_cancelled_split_stops_while_it_only_rejects_rows(ctx, monkeypatch):
    """A .gz of ``{}`` lines: every row rejected, none scored; the cancel is seen within the
    check period, not at the end of the file."""
    ctx.write("in/empty.jsonl.gz", gzip.compress(b'{"text": "hi"}\n' + b"{}\n" * 300_000))
    job_id = ctx.submit(hdfs_input="in/empty.jsonl.gz")
    real = input_splits.read_split
    read = []

    def counting(*args, **kwargs):
        for record in real(*args, **kwargs):
            read.append(1)
            if len(read) == 2000:
                assert ctx.jobs.jobs.cancel(job_id)
            yield record

    monkeypatch.setattr(split_tasks.input_splits, "read_split", counting)
    monkeypatch.setattr(split_tasks, "_CHECK_EVERY_S", 0.0)
    assert ctx.scorer(max_rejected=10**9).run(job_id, 0) is False
    assert 2000 <= len(read) < 2100
    assert ctx.jobs.jobs.get(job_id).status == "cancelled"
    assert not (ctx.root / "out" / "j" / "_rejected").exists()


def test_a_split_rejecting_more_rows_than_the_cap_fails_the_job(tmp_path):
    ctx = SplitHarness(tmp_path)
    ctx.write("in/a.jsonl", b'{"text": "fine"}\n' + b'{"msg": "x"}\n' * 1000)
    job_id = ctx.submit(hdfs_input="in/a.jsonl")
    ctx.run_all(max_rejected=100)
    job = ctx.jobs.jobs.get(job_id)
    assert job.status == "failed"
    assert job.error.endswith(": more than 100 rejected rows; is `column` right?")
    assert job.error.startswith("split ")
    assert not (ctx.root / "out" / "j" / "_SUCCESS").exists()


def test_rejected_rows_under_the_cap_are_kept(tmp_path):
    ctx = SplitHarness(tmp_path)
    ctx.write("in/a.jsonl", b'{"text": "fine"}\n' + b'{"msg": "x"}\n' * 5)
    job_id = ctx.submit(hdfs_input="in/a.jsonl")
    ctx.run_all(max_rejected=5)
    job = ctx.jobs.jobs.get(job_id)
    assert (job.status, job.done, job.rejected) == ("done", 1, 5)


# --- output column names --------------------------------------------------------------------

@pytest.mark.parametrize(("body", "field"), [
    ({"id_column": "label"}, "id_column"),
    ({"id_column": "file"}, "id_column"),
    ({"keep_columns": ["text", "ref"]}, "keep_columns[1]"),
    ({"keep_columns": ["spam_probability"]}, "keep_columns[0]"),
    ({"keep_columns": ["model_version"]}, "keep_columns[0]"),
    ({"id_column": "id", "keep_columns": ["a", "truncated"]}, "keep_columns[1]"),
])
def test_an_id_or_kept_column_named_like_an_output_column_is_a_422(ctx, body, field):
    ctx.write("in/a.jsonl", b'{"text": "hello", "label": 1}\n')
    resp = ctx.client.post("/v1/jobs", json={"hdfs_input": "in/a.jsonl",
                                             "hdfs_output": "out/x", **body})
    got = resp.get_json()
    assert (resp.status_code, got["field"]) == (422, field), got
    assert ctx.sent == []


def test_an_upload_keeping_an_output_column_name_is_a_422(ctx):
    resp = ctx.client.post("/v1/jobs", data={"file": (io.BytesIO(b"text,ref\nhi,1\n"), "a.csv"),
                                             "keep_columns": "ref"},
                           content_type="multipart/form-data")
    assert (resp.status_code, resp.get_json()["field"]) == (422, "keep_columns[0]")


def test_the_output_columns_refused_are_those_a_part_has():
    assert {"file", "ref", *RESULT_FIELDS, "error", "reason"} == set(OUTPUT_COLUMNS)


# --- temporary parts --------------------------------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_parts_are_written_to_a_spamq_temp_dir_named_by_host_and_pid(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    writer = PartWriter("jsonl", [])
    assert os.path.dirname(writer.path) == str(tmp_path / "spamq-parts")
    assert os.path.basename(writer.path).startswith(f"part-{split_tasks._host()}-{os.getpid()}-")
    writer.discard()
    assert not os.path.exists(writer.path)


def test_a_worker_start_deletes_the_parts_of_dead_processes_of_its_host(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    parts = tmp_path / "spamq-parts"
    parts.mkdir()
    host, dead = split_tasks._host(), _dead_pid()
    names = {"stale": f"part-{host}-{dead}-abc", "live": f"part-{host}-{os.getpid()}-def",
             "other_host": f"part-otherhost-{dead}-ghi", "not_ours": "notes.txt"}
    for name in names.values():
        (parts / name).write_bytes(b"x" * 10)
    StoreStep().start(WorkerProcess(Settings(), store=JobStore(fakeredis.FakeRedis(), ttl_s=600)))
    assert sorted(p.name for p in parts.iterdir()) == sorted(
        v for k, v in names.items() if k != "stale")
    assert clean_stale_parts(str(parts)) == 0
