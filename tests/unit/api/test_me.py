"""GET /v1/me (api/me.py), in-process on fakeredis: the caller's own id, area, grants, quotas
and use, never another key's."""

import io
import json

from api.auth import hash_key, key_id
from tests.helpers.api import make_api

ALICE, BOB = "alice-" + "a" * 40, "bob-" + "b" * 40
A_ID, B_ID = key_id(hash_key(ALICE)), key_id(hash_key(BOB))


def _client(tmp_path, **overrides):
    return make_api(**{
        "auth_required": True, "api_keys": f"{hash_key(ALICE)},{hash_key(BOB)}",
        "chunk_size": 4, "artifact_dir": tmp_path, "rate_limit_burst": 50,
        "store_grants": {A_ID: ["data/shared"], B_ID: ["data/bob-only"]},
        "max_upload_bytes_per_key": 5000, "bulk_window_per_key": 7, **overrides})


def test_me_gives_the_key_its_own_id_area_grants_and_quotas(tmp_path):
    client, _ = _client(tmp_path)
    resp = client.get("/v1/me", headers={"X-API-Key": ALICE})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["key_id"] == A_ID
    assert body["store"] == {"area": f"tenants/{A_ID}/", "grants": ["data/shared/"],
                             "prefixes": [f"tenants/{A_ID}/", "data/shared/"]}
    assert body["quotas"]["rate_limit_burst"] == 50
    assert body["quotas"]["bulk_window"] == 7
    assert body["quotas"]["max_upload_bytes_held"] == 5000
    assert body["usage"] == {"jobs_in_flight": 0, "rows_pending": 0,
                             "interactive_rows_pending": 0, "pieces_in_flight": 0,
                             "requests_available": body["usage"]["requests_available"],
                             "upload_bytes_held": 0}
    assert 48 <= body["usage"]["requests_available"] <= 50  # this request took one token
    text = json.dumps(body)
    assert B_ID not in text and "bob-only" not in text  # another key's name or grant: never


def test_me_counts_the_jobs_and_rows_in_flight_and_upload_bytes(tmp_path):
    client, jobs = _client(tmp_path)
    alice = {"X-API-Key": ALICE}
    assert client.post("/v1/jobs", json={"texts": ["a", "b", "c"]}, headers=alice
                       ).status_code == 202
    assert client.post("/v1/jobs", json={"texts": [str(i) for i in range(10)]}, headers=alice
                       ).status_code == 202  # 10 > chunk_size: a bulk job, chunks parked/sent
    upload = client.post("/v1/jobs", headers=alice, content_type="multipart/form-data",
                         data={"file": (io.BytesIO(b"text\nhello\n"), "m.csv")})
    assert upload.status_code == 202
    client.post("/v1/jobs", json={"texts": ["bob's"]}, headers={"X-API-Key": BOB})
    usage = client.get("/v1/me", headers=alice).get_json()["usage"]
    assert usage["jobs_in_flight"] == 3
    assert usage["rows_pending"] >= 13  # the texts jobs' 13 rows, and the upload's estimate
    assert usage["interactive_rows_pending"] == 3
    assert usage["pieces_in_flight"] >= 1
    assert usage["upload_bytes_held"] == len(b"text\nhello\n")
    bob = client.get("/v1/me", headers={"X-API-Key": BOB}).get_json()
    assert bob["key_id"] == B_ID and bob["usage"]["jobs_in_flight"] == 1
    assert bob["usage"]["rows_pending"] == 1 and bob["usage"]["upload_bytes_held"] == 0


def test_me_needs_a_key_and_without_auth_names_no_owner(tmp_path):
    client, _ = _client(tmp_path)
    resp = client.get("/v1/me")
    assert resp.status_code == 401 and resp.get_json()["error"] == "unauthorized"
    open_client, _ = _client(tmp_path, auth_required=False)
    body = open_client.get("/v1/me").get_json()
    assert body["key_id"] is None
    assert body["store"] == {"area": "", "grants": [], "prefixes": [""]}


def test_me_is_in_the_generated_openapi_document_with_its_model(tmp_path):
    client, _ = _client(tmp_path)
    doc = client.get("/openapi.json").get_json()
    answers = doc["paths"]["/v1/me"]["get"]["responses"]
    assert answers["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Me"}
    assert {"401", "429"} <= set(answers)
    assert set(doc["components"]["schemas"]["Me"]["properties"]) == {
        "key_id", "store", "quotas", "usage"}
