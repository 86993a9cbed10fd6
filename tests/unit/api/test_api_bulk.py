"""Bulk scoring at the API: file uploads, results pages and downloads, cancel, idempotency."""

import csv
import io
import json

import fakeredis
import pytest

from api import create_app
from spamq.jobs.store import JobStore
from spamq.settings import Settings
from tests.helpers.api import RecordingSender, make_api, scored_upload


@pytest.fixture
def ctx(tmp_path):
    sender = RecordingSender()
    client, store = make_api(sender, max_texts_per_request=10, max_chars_per_text=50,
                             chunk_size=4, results_page_max=5, max_texts_per_job=100,
                             artifact_dir=tmp_path)
    return client, store, sender


def upload(client, name, content, **form):
    data = {"file": (io.BytesIO(content.encode()), name), **form}
    return client.post("/v1/jobs", data=data, content_type="multipart/form-data")


def score_all(store, job_id, sent, skip=()):
    for _, (jid, index, start, stop), _ in sent:
        if jid == job_id and index not in skip:
            rows = [{"label": "ham", "spam_probability": i / 100, "truncated": False,
                     "model_version": "v"} for i in range(start, stop)]
            store.results.store_chunk_next(job_id, index, rows, model_version="v")


CSV_FILE = "id,body\n1,hello there\n2,\n3,win a prize now\n4," + "x" * 60 + "\n5,ok\n6,see you\n"


def test_an_upload_runs_as_a_store_job_counting_every_row(ctx):
    client, store, sender = ctx
    job = scored_upload(client, store, sender, "in.csv", CSV_FILE, column="body",
                        id_column="id")
    assert job["status"] == "done" and job["input_rows"] == 6 == job["progress"]["total"] + 2
    assert job["output"].startswith("uploads/") and job["output"].endswith("/out")
    rejected = [json.loads(x) for x in client.get(job["rejected_url"]).get_data(
        as_text=True).splitlines()]
    assert sorted((r["id"], r["reason"].split(":")[0]) for r in rejected) == [
        ("2", "empty or blank"), ("4", "too long")]
    page = client.get(job["results_url"]).get_json()
    assert [r["id"] for r in page["results"]] == ["1", "3", "5", "6"]
    assert not store.redis.keys("*:texts")  # the upload's rows never went through Redis


def test_tsv_and_jsonl_uploads(ctx):
    client, store, sender = ctx
    job = scored_upload(client, store, sender, "in.tsv", "text\tlabel\nhi there\tham\n"
                        "free money\tspam\n")
    assert job["status"] == "done" and job["progress"]["total"] == 2
    lines = '{"text": "a"}\n{"text": 5}\nnot json\n["x"]\n\n{"other": "b"}\n'
    job = scored_upload(client, store, sender, "in.jsonl", lines)
    assert (job["progress"]["total"], job["rejected"]) == (1, 4)


@pytest.mark.parametrize(
    ("name", "content", "form", "status", "field"),
    [
        ("in.csv", "body\nhi\n", {}, 422, "column"),
        ("in.xlsx", "text\nhi\n", {}, 422, "format"),
        ("in.csv", "text\nhi\n", {"format": "xml"}, 422, "format"),
        ("in.csv", "", {}, 422, "file"),
        ("in.jsonl", "", {}, 422, "file"),
        ("in.csv", "text\nhi\n", {"id_column": "nope"}, 422, "id_column"),
    ],
)
def test_bad_uploads_name_the_field(ctx, name, content, form, status, field):
    client, _, sender = ctx
    resp = upload(client, name, content, **form)
    assert resp.status_code == status and resp.get_json()["field"] == field, resp.get_json()
    assert sender.sent == []


def test_results_pages_and_downloads(ctx):
    client, store, sender = ctx
    texts = [f"text {i}" for i in range(10)]
    job_id = client.post("/v1/jobs", json={"texts": texts}).get_json()["id"]
    score_all(store, job_id, sender.sent)
    page = client.get(f"/v1/jobs/{job_id}/results?offset=3&limit=5").get_json()
    assert [r["row"] for r in page["results"]] == [3, 4, 5, 6, 7]
    assert page["next"] == f"/v1/jobs/{job_id}/results?offset=8&limit=5"
    last = client.get(page["next"]).get_json()
    assert [r["row"] for r in last["results"]] == [8, 9] and last["next"] is None
    resp = client.get(f"/v1/jobs/{job_id}/results?format=jsonl")
    assert resp.mimetype == "application/x-ndjson"
    rows = [json.loads(line) for line in resp.get_data(as_text=True).splitlines()]
    assert [r["row"] for r in rows] == list(range(10))
    assert rows[7]["spam_probability"] == 0.07
    resp = client.get(f"/v1/jobs/{job_id}/results?format=csv&offset=8")
    table = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["row"] for r in table] == ["8", "9"] and table[0]["label"] == "ham"
    assert "attachment" in resp.headers["Content-Disposition"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("offset=-1", "offset"), ("offset=x", "offset"), ("limit=0", "limit"),
     ("limit=6", "limit"), ("limit=2.5", "limit"), ("format=xml", "format")],
)
def test_bad_result_parameters_are_422_naming_them(ctx, query, field):
    client, _, _ = ctx
    job_id = client.post("/v1/jobs", json={"texts": ["a"]}).get_json()["id"]
    resp = client.get(f"/v1/jobs/{job_id}/results?{query}")
    assert resp.status_code == 422 and resp.get_json()["field"] == field
    assert client.get("/v1/jobs/" + "0" * 32 + "/results").status_code == 404


def test_partial_results_and_progress_while_running(ctx):
    client, store, sender = ctx
    job_id = client.post("/v1/jobs", json={"texts": ["t"] * 10}).get_json()["id"]
    score_all(store, job_id, sender.sent, skip={0})
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "running" and job["progress"] == {"done": 6, "total": 10}
    assert job["chunks"] == {"done": 2, "total": 3, "failed": 0}
    assert job["rate"]["rows_per_s"] > 0 and job["rate"]["eta_s"] >= 0
    page = client.get(f"/v1/jobs/{job_id}/results?limit=5").get_json()
    assert [r["row"] for r in page["results"]] == [4]


def test_cancel_keeps_finished_results_and_is_409_once_over(ctx):
    client, store, sender = ctx
    job_id = client.post("/v1/jobs", json={"texts": ["t"] * 10}).get_json()["id"]
    score_all(store, job_id, sender.sent, skip={1, 2})
    resp = client.delete(f"/v1/jobs/{job_id}")
    assert resp.status_code == 200 and resp.get_json()["status"] == "cancelled"
    score_all(store, job_id, sender.sent, skip={0})  # late chunks do not revive it
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "cancelled" and job["finished_at"]
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 409
    assert client.delete("/v1/jobs/" + "0" * 32).status_code == 404
    page = client.get(f"/v1/jobs/{job_id}/results").get_json()
    assert [r["row"] for r in page["results"]][:4] == [0, 1, 2, 3]


def test_idempotency_key_returns_the_existing_job_and_resends_only_missing_chunks(ctx):
    client, store, sender = ctx
    headers = {"Idempotency-Key": "input-sha256-abc"}
    first = client.post("/v1/jobs", json={"texts": ["t"] * 10}, headers=headers)
    assert first.status_code == 202
    job_id = first.get_json()["id"]
    assert len(sender.sent) == 3
    again = client.post("/v1/jobs", json={"texts": ["t"] * 10}, headers=headers)
    assert again.status_code == 200 and again.get_json()["id"] == job_id
    assert len(sender.sent) == 3  # nothing re-sent for a job still in progress
    score_all(store, job_id, sender.sent, skip={2})
    store.jobs.fail(job_id, "chunk 2 failed: worker died")
    resumed = client.post("/v1/jobs", json={"texts": ["t"] * 10}, headers=headers).get_json()
    assert resumed["id"] == job_id and resumed["resent_chunks"] == 1
    assert sender.sent[-1][1][1] == 2 and len(sender.sent) == 4  # only the missing chunk
    score_all(store, job_id, sender.sent[-1:])
    assert client.get(f"/v1/jobs/{job_id}").get_json()["status"] == "done"
    bad = client.post("/v1/jobs", json={"texts": ["t"]}, headers={"Idempotency-Key": "x" * 201})
    assert bad.status_code == 422 and bad.get_json()["field"] == "Idempotency-Key"


def test_a_file_with_only_rejected_rows_is_a_finished_job(ctx):
    client, store, sender = ctx
    job = scored_upload(client, store, sender, "in.csv", "text\n\n \n")
    assert job["status"] == "done" and job["rejected"] == 1 and job["input_rows"] == 1


def test_store_output_that_already_holds_files_is_a_409(tmp_path):
    settings = Settings(artifact_dir=tmp_path, chunk_size=4, max_texts_per_job=100)
    store = JobStore(fakeredis.FakeRedis(), ttl_s=600)
    client = create_app(settings, store=store, send_task=RecordingSender()).test_client()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "sms.csv").write_text("text\nhello\nwin a prize\n")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "part-00000.jsonl").write_text("{}\n")
    (tmp_path / "old" / "_SUCCESS").write_text("{}")
    (tmp_path / "subdirs" / "nested").mkdir(parents=True)

    def post(output):
        return client.post("/v1/jobs", json={"hdfs_input": "/in/sms.csv", "hdfs_output": output})

    r = post("/old")
    assert r.status_code == 409, r.get_json()
    assert r.get_json()["field"] == "hdfs_output"
    # the count only: an answer never lists a directory
    assert "2 file(s)" in r.get_json()["message"] and "_SUCCESS" not in r.get_json()["message"]
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["_SUCCESS", "part-00000.jsonl"]
    assert post("/new").status_code == 202  # a directory that does not exist yet
    assert post("/subdirs").status_code == 202  # holds no files of its own
