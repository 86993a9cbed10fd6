"""POST /v1/feedback, GET /v1/feedback/stats and DELETE /v1/feedback (in-process: fakeredis
and a local artifact store in tmp)."""

import json

import fakeredis
import pyarrow.parquet as pq
import pytest

from api import create_app
from api.auth import hash_key, key_id
from spamq.feedback import store as fs
from spamq.jobs import schema
from spamq.jobs.store import JobStore
from spamq.settings import Settings
from spamq.storage.artifacts import LocalArtifactStore
from tests.helpers.api import make_api

ALICE, BOB = "alice-" + "a" * 40, "bob-" + "b" * 40
A_ID, B_ID = key_id(hash_key(ALICE)), key_id(hash_key(BOB))


@pytest.fixture
def ctx(tmp_path):
    client, jobs = make_api(auth_required=True, api_keys=f"{ALICE},{BOB}", artifact_dir=tmp_path,
                            chunk_size=2, max_chars_per_text=50, feedback_max_items=5)
    return client, jobs, LocalArtifactStore(tmp_path), tmp_path


def post(client, items, key=ALICE):
    return client.post("/v1/feedback", json={"items": items}, headers={"X-API-Key": key})


def scored_job(client, jobs, texts, key=ALICE, version="v7"):
    """A texts job of ``key``, all its chunks stored as if a worker had scored them."""
    job_id = client.post("/v1/jobs", json={"texts": texts},
                         headers={"X-API-Key": key}).get_json()["id"]
    job = jobs.jobs.get(job_id)
    for chunk in range(job.chunks_total):
        n = len(texts[chunk * job.chunk_size:(chunk + 1) * job.chunk_size])
        jobs.redis.hset(schema.job_keys(job_id)[2], chunk, json.dumps(
            [{"label": "ham", "spam_probability": 0.1, "truncated": False,
              "model_version": version}] * n))
    return job_id


def test_text_items_are_stored_as_one_parquet_file_of_the_key(ctx):
    client, _, store, tmp_path = ctx
    resp = post(client, [{"text": "WIN a prize now", "label": "spam", "category": "prize"},
                         {"text": "see you at 6", "label": "ham", "note": "my friend"}])
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    assert body["text_sha256"] == [fs.text_sha256("WIN a prize now"),
                                   fs.text_sha256("see you at 6")]
    files = list(tmp_path.glob(f"feedback/tenant={A_ID}/date=*/part-*.parquet"))
    assert len(files) == 1
    rows = pq.read_table(files[0]).to_pylist()
    assert [(r["text"], r["label"], r["category"], r["note"], r["source"]) for r in rows] == [
        ("WIN a prize now", "spam", "prize", None, "text"),
        ("see you at 6", "ham", None, "my friend", "text")]
    assert not list(tmp_path.glob(f"feedback/tenant={B_ID}"))


def test_repeats_of_a_text_within_a_request_count_as_duplicates_the_last_wins(ctx):
    client, _, store, _ = ctx
    body = post(client, [{"text": "Free  entry", "label": "spam"},
                         {"text": "ok", "label": "ham"},
                         {"text": "Ｆｒｅｅ entry", "label": "ham"}]).get_json()
    assert (body["accepted"], body["duplicates"]) == (2, 1)
    table = fs.read_feedback(store, [A_ID])
    assert sorted(zip(table["text"].to_pylist(), table["label"].to_pylist(), strict=True)) == [
        ("ok", "ham"), ("Ｆｒｅｅ entry", "ham")]


@pytest.mark.parametrize(("items", "field", "status"), [
    ([{"text": "hi", "label": "spamm"}], "items[0].label", 422),
    ([{"text": "hi"}], "items[0].label", 422),
    ([{"text": "ok", "label": "ham"}, {"text": "   ", "label": "ham"}], "items[1].text", 422),
    ([{"text": "ok", "label": "ham"}, {"text": 5, "label": "ham"}], "items[1].text", 422),
    ([{"text": "a\ud800", "label": "ham"}], "items[0].text", 422),
    ([{"text": "a\x00b", "label": "ham"}], "items[0].text", 422),
    ([{"text": "x" * 51, "label": "ham"}], "items[0].text", 413),
    ([{"label": "ham"}], "items[0]", 422),
    ([{"text": "hi", "job_id": "0" * 32, "index": 0, "label": "ham"}], "items[0].job_id", 422),
    ([{"job_id": "zz", "index": 0, "label": "ham"}], "items[0].job_id", 422),
    ([{"job_id": "0" * 32, "index": -1, "label": "ham"}], "items[0].index", 422),
    ([{"job_id": "0" * 32, "index": True, "label": "ham"}], "items[0].index", 422),
    ([{"text": "hi", "label": "ham", "category": "x" * 65}], "items[0].category", 422),
    ([{"text": "hi", "label": "ham", "category": "a\nb"}], "items[0].category", 422),
    ([{"text": "hi", "label": "ham", "note": "n" * 1001}], "items[0].note", 422),
    ([{"text": "hi", "label": "ham", "note": 3}], "items[0].note", 422),
    ([{"text": "ok", "label": "ham"}, "hi"], "items[1]", 422),
    ([{"text": "hi", "label": "ham", "secret_field": 1}], "items[0]", 422),
    ([], "items", 422),
    ([{"text": f"t{i}", "label": "ham"} for i in range(6)], "items", 413),
])
def test_bad_items_name_the_field_and_store_nothing(ctx, items, field, status):
    client, _, _, tmp_path = ctx
    resp = post(client, items)
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    assert body["field"] == field and body["error"]
    assert "secret_field" not in body["message"]
    assert not list(tmp_path.glob("feedback/**/*.parquet"))


def test_items_must_be_a_list_in_an_object(ctx):
    client = ctx[0]
    for body in ({"items": "x"}, {}, {"items": [], "extra": 1}):
        resp = client.post("/v1/feedback", json=body, headers={"X-API-Key": ALICE})
        assert resp.status_code == 422 and resp.get_json()["field"] == "items"
    assert client.post("/v1/feedback", json=[1], headers={"X-API-Key": ALICE}).status_code == 400


def test_every_feedback_endpoint_needs_a_key(ctx):
    client = ctx[0]
    assert client.post("/v1/feedback", json={"items": [{"text": "a", "label": "ham"}]}
                       ).status_code == 401
    assert client.get("/v1/feedback/stats").status_code == 401
    assert client.delete("/v1/feedback").status_code == 401


def test_a_job_row_is_read_from_the_keys_own_texts_job(ctx):
    client, jobs, store, _ = ctx
    job_id = scored_job(client, jobs, ["first msg", "Claim your prize at bit.ly/x", "third"])
    resp = post(client, [{"job_id": job_id, "index": 1, "label": "spam", "category": "prize"},
                         {"job_id": job_id, "index": 2, "label": "ham"}])
    assert resp.status_code == 201, resp.get_json()
    rows = fs.read_feedback(store, [A_ID]).to_pylist()
    assert [(r["text"], r["label"], r["source"], r["job_id"], r["row"], r["model_version"])
            for r in rows] == [
        ("Claim your prize at bit.ly/x", "spam", "job", job_id, 1, "v7"),
        ("third", "ham", "job", job_id, 2, "v7")]


def test_another_keys_job_reads_like_an_unknown_one(ctx):
    client, jobs, _, tmp_path = ctx
    job_id = scored_job(client, jobs, ["alice's secret text"], key=ALICE)
    theirs = post(client, [{"job_id": job_id, "index": 0, "label": "spam"}], key=BOB)
    unknown = post(client, [{"job_id": "f" * 32, "index": 0, "label": "spam"}], key=BOB)
    assert theirs.status_code == unknown.status_code == 422
    assert theirs.get_json() == unknown.get_json()
    assert theirs.get_json()["field"] == "items[0].job_id"
    assert "secret" not in theirs.get_data(as_text=True)
    assert not list(tmp_path.glob("feedback/**/*.parquet"))


def test_a_row_past_the_job_or_no_longer_stored_is_a_422_on_index(ctx):
    client, jobs, _, _ = ctx
    job_id = scored_job(client, jobs, ["a", "b"])
    resp = post(client, [{"text": "ok", "label": "ham"},
                         {"job_id": job_id, "index": 2, "label": "spam"}])
    assert resp.status_code == 422 and resp.get_json()["field"] == "items[1].index"
    jobs.redis.delete(schema.job_keys(job_id)[1])  # its texts expired
    resp = post(client, [{"job_id": job_id, "index": 0, "label": "spam"}])
    assert resp.status_code == 422 and resp.get_json()["field"] == "items[0].index"


def test_a_store_jobs_row_is_refused(ctx):
    client, jobs, _, _ = ctx
    job_id = scored_job(client, jobs, ["a"])
    jobs.redis.hset(schema.job_key(job_id), "kind", "store")
    resp = post(client, [{"job_id": job_id, "index": 0, "label": "spam"}])
    assert resp.status_code == 422 and resp.get_json()["field"] == "items[0].job_id"


def test_stats_count_the_keys_own_deduplicated_items(ctx):
    client, _, _, _ = ctx
    post(client, [{"text": "a", "label": "spam", "category": "prize"},
                  {"text": "b", "label": "spam"}])
    post(client, [{"text": "b", "label": "ham", "category": "bank"}])  # b: ham now
    post(client, [{"text": "c", "label": "spam"}], key=BOB)
    resp = client.get("/v1/feedback/stats", headers={"X-API-Key": ALICE})
    assert resp.status_code == 200
    stats = resp.get_json()
    assert stats["total"] == 2
    assert stats["by_label"] == {"spam": 1, "ham": 1}
    assert stats["by_category"] == {"bank": 1, "prize": 1}
    assert sum(stats["by_day"].values()) == 2
    bob = client.get("/v1/feedback/stats", headers={"X-API-Key": BOB}).get_json()
    assert bob["total"] == 1 and bob["by_label"] == {"spam": 1, "ham": 0}


def test_a_key_deletes_one_text_or_all_of_its_own_feedback_only(ctx):
    client, _, store, _ = ctx
    hashes = post(client, [{"text": "a", "label": "spam"},
                           {"text": "b", "label": "ham"}]).get_json()["text_sha256"]
    post(client, [{"text": "a", "label": "spam"}], key=BOB)
    one = client.delete(f"/v1/feedback?text_sha256={hashes[0]}", headers={"X-API-Key": ALICE})
    assert one.status_code == 200 and one.get_json() == {"deleted": 1}
    assert fs.read_feedback(store, [A_ID])["text"].to_pylist() == ["b"]
    assert fs.read_feedback(store, [B_ID])["text"].to_pylist() == ["a"]  # Bob's "a" stays
    bad = client.delete("/v1/feedback?text_sha256=../x", headers={"X-API-Key": ALICE})
    assert bad.status_code == 422 and bad.get_json()["field"] == "text_sha256"
    other = client.delete("/v1/feedback?tenant=x", headers={"X-API-Key": ALICE})
    assert other.status_code == 422
    every = client.delete("/v1/feedback", headers={"X-API-Key": ALICE})
    assert every.get_json() == {"deleted": 1}
    assert fs.read_feedback(store, [A_ID]).num_rows == 0
    assert fs.read_feedback(store, [B_ID]).num_rows == 1
    assert client.get("/v1/feedback/stats", headers={"X-API-Key": ALICE}).get_json()["total"] == 0


def test_without_authentication_feedback_goes_to_the_local_tenant(tmp_path):
    settings = Settings(auth_required=False, artifact_dir=tmp_path)
    client = create_app(settings, store=JobStore(fakeredis.FakeRedis(), ttl_s=600),
                        send_task=lambda *a, **k: None).test_client()
    assert client.post("/v1/feedback", json={"items": [{"text": "a", "label": "ham"}]}
                       ).status_code == 201
    assert list(tmp_path.glob("feedback/tenant=local/date=*/part-*.parquet"))


def test_the_openapi_document_describes_the_feedback_endpoints(ctx):
    doc = ctx[0].get("/openapi.json").get_json()
    assert set(doc["paths"]["/v1/feedback"]) == {"post", "delete"}
    assert "get" in doc["paths"]["/v1/feedback/stats"]
    body = doc["paths"]["/v1/feedback"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/FeedbackBody"}
    assert doc["components"]["schemas"]["FeedbackBody"]["properties"]["items"]["maxItems"] == 5
