"""api/requests.py: typed request models, each request parsed once, a 4xx naming the field."""

import io

import pytest

import api.requests
from tests.helpers.api import make_api


@pytest.fixture
def ctx(tmp_path):
    sent = []
    client, store = make_api(lambda name, **kw: sent.append(name), auth_required=False,
                             max_texts_per_request=5, max_chars_per_text=20, max_deadline_s=600,
                             results_page_max=50, artifact_dir=tmp_path)
    return client, store, sent


STORE = {"hdfs_input": "in/a.csv", "hdfs_output": "out/a"}


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("/v1/jobs", {"texts": ["ok"], "deadline_s": "soon"}, 422, "deadline_s"),
    ("/v1/jobs", {"texts": ["ok"], "deadline_s": 601}, 422, "deadline_s"),
    ("/v1/jobs", {"texts": ["a"] * 6}, 413, "texts"),
    ("/v1/jobs", {"texts": ["ok", "x" * 21]}, 413, "texts[1]"),
    ("/v1/jobs", {**STORE, "column": 5}, 422, "column"),
    ("/v1/jobs", {**STORE, "column": ""}, 422, "column"),
    ("/v1/jobs", {**STORE, "id_column": "x" * 201}, 422, "id_column"),
    ("/v1/jobs", {**STORE, "format": "xml"}, 422, "format"),
    ("/v1/jobs", {**STORE, "output_format": "parquet"}, 422, "output_format"),
    ("/v1/jobs", {**STORE, "keep_columns": "a,b"}, 422, "keep_columns"),
    ("/v1/jobs", {**STORE, "keep_columns": ["a", 3]}, 422, "keep_columns[1]"),
    ("/v1/jobs", {**STORE, "keep_columns": ["c"] * 51}, 422, "keep_columns"),
    ("/v1/jobs", {**STORE, "deadline_s": 0}, 422, "deadline_s"),
    ("/v1/jobs", {"hdfs_input": "in/a.csv"}, 422, "hdfs_output"),
    ("/v1/jobs", {"hdfs_input": 7, "hdfs_output": "out/a"}, 422, "hdfs_input"),
    ("/v1/jobs", {**STORE, "HOSTILE-name": 1}, 422, None),
    ("/v1/predict", {"text": ["wrong field"]}, 422, "texts"),
    ("/v1/predict", {"texts": ["ok"], "deadline_s": True}, 422, "deadline_s"),
    ("/predict", {"text": [1]}, 422, "text[0]"),
    ("/predict", {"text": ["ok"] * 6}, 413, "text"),
    ("/predict", [], 400, None),
])
def test_a_bad_body_is_a_4xx_naming_the_field(ctx, path, body, status, field):
    client, _, sent = ctx
    resp = client.post(path, json=body)
    got = resp.get_json()
    assert (resp.status_code, got["field"]) == (status, field), got
    assert set(got) == {"error", "field", "message"} and got["error"] == "invalid_request"
    assert "HOSTILE" not in got["message"] and sent == []


@pytest.mark.parametrize(("form", "field"), [
    ({"format": "xml"}, "format"),
    ({"output_format": "xml"}, "output_format"),
    ({"deadline_s": "soon"}, "deadline_s"),
    ({"deadline_s": "-3"}, "deadline_s"),
    ({"column": "x" * 201}, "column"),
    ({"keep_columns": ",".join(["c"] * 51)}, "keep_columns"),
])
def test_a_bad_upload_form_field_is_a_422_naming_it(ctx, form, field):
    client, _, sent = ctx
    data = {"file": (io.BytesIO(b"text\nhi\n"), "in.csv"), **form}
    resp = client.post("/v1/jobs", data=data, content_type="multipart/form-data")
    assert (resp.status_code, resp.get_json()["field"]) == (422, field), resp.get_json()
    assert sent == []


@pytest.mark.parametrize(("query", "field"), [
    ("format=xml", "format"), ("offset=-1", "offset"), ("offset=1e3", "offset"),
    ("limit=0", "limit"), ("limit=51", "limit"), ("limit=2.5", "limit"),
])
def test_a_bad_query_parameter_is_a_422_naming_it(ctx, query, field):
    client, _, _ = ctx
    job_id = client.post("/v1/jobs", json={"texts": ["a"]}).get_json()["id"]
    resp = client.get(f"/v1/jobs/{job_id}/results?{query}")
    assert (resp.status_code, resp.get_json()["field"]) == (422, field)


def test_query_defaults(ctx):
    client, _, _ = ctx
    job_id = client.post("/v1/jobs", json={"texts": ["a"]}).get_json()["id"]
    page = client.get(f"/v1/jobs/{job_id}/results?offset=&limit=").get_json()
    assert (page["offset"], page["limit"]) == (0, 100)
    assert client.get(f"/v1/jobs/{job_id}/results?format=jsonl&limit=500").status_code == 200


def test_each_request_is_read_and_validated_once(ctx, monkeypatch):
    client, store, _ = ctx
    validated, loads = [], []
    real_validate, real_loads = api.requests.validate, api.requests.json.loads
    monkeypatch.setattr(api.requests, "validate",
                        lambda model, *a: validated.append(model.__name__) or real_validate(
                            model, *a))
    monkeypatch.setattr(api.requests.json, "loads", lambda *a, **k: loads.append(1) or real_loads(
        *a, **k))
    headers = {"Idempotency-Key": "k1"}  # the fingerprint reads the body too
    body = {"texts": ["a", "b"], "deadline_s": 30}
    assert client.post("/v1/jobs", json=body, headers=headers).status_code == 202
    assert validated == ["TextsBody"] and len(loads) == 1
    validated.clear()
    loads.clear()
    store.jobs.expire(store.jobs.job_for_key("k1", ""))
    assert client.post("/v1/jobs", json=body, headers=headers).status_code == 200  # resumed
    assert validated == ["TextsBody"] and len(loads) == 1
