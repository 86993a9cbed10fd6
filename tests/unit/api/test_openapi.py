"""api/openapi.py: the document is generated from the request models."""

import fakeredis
import pytest

from api import create_app
from api.openapi import openapi_document, query_parameters
from api.requests import RequestModels
from spamq.jobs.store import JobStore
from spamq.settings import Settings

SETTINGS = Settings(max_texts_per_request=7, max_chars_per_text=40, max_deadline_s=3600)


@pytest.fixture(scope="module")
def doc():
    return openapi_document(SETTINGS)


def test_request_bodies_are_the_models_schemas(doc):
    models = RequestModels.for_settings(SETTINGS)
    jobs = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert jobs["application/json"]["schema"]["oneOf"] == [
        models.texts.model_json_schema(), models.store_job.model_json_schema()]
    texts = jobs["application/json"]["schema"]["oneOf"][0]["properties"]["texts"]
    assert (texts["maxItems"], texts["items"]["maxLength"]) == (7, 40)  # the settings' limits
    form = jobs["multipart/form-data"]["schema"]
    assert form["required"] == ["file"]
    assert set(form["properties"]) == {"file", *models.upload.model_json_schema()["properties"]}
    predict = doc["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert predict["application/json"]["schema"] == models.texts.model_json_schema()
    legacy = doc["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert legacy["application/json"]["schema"] == models.legacy.model_json_schema()
    results = doc["paths"]["/v1/jobs/{job_id}/results"]["get"]["parameters"]
    assert results[1:] == query_parameters(models.results)
    assert [p["name"] for p in results] == ["job_id", "format", "offset", "limit"]


def test_every_route_is_documented_with_its_methods(doc):
    app = create_app(SETTINGS, store=JobStore(fakeredis.FakeRedis(), ttl_s=60),
                     send_task=lambda *a, **k: None)
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            path = rule.rule.replace("<job_id:job_id>", "{job_id}")
            routes.setdefault(path, set()).update(m.lower() for m in rule.methods)
    assert set(routes) == set(doc["paths"])
    for path, methods in routes.items():
        documented = set(doc["paths"][path])
        expected = methods - {"head", "options"} - ({"get"} if path == "/predict" else set())
        assert documented == expected, path  # /predict: GET with a body is the study's call


def test_the_served_document_is_the_generated_one(doc):
    client = create_app(SETTINGS, store=JobStore(fakeredis.FakeRedis(), ttl_s=60),
                        send_task=lambda *a, **k: None).test_client()
    assert client.get("/openapi.json").get_json() == doc
