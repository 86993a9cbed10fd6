"""api/openapi.py: the document is generated whole, from the url_map and the models."""

import fakeredis
import pytest
from flask import Blueprint

from api import create_app, responses
from api.openapi import documented, openapi_document, openapi_path, query_parameters
from api.requests import RequestModels
from api.responses import JOB_STATUSES, Health
from spamq.jobs.store import JobStore
from spamq.settings import Settings

SETTINGS = Settings(max_texts_per_request=7, max_chars_per_text=40, max_deadline_s=3600,
                    feedback_max_items=9)


def _app():
    return create_app(SETTINGS, store=JobStore(fakeredis.FakeRedis(), ttl_s=60),
                      send_task=lambda *a, **k: None)


@pytest.fixture(scope="module")
def app():
    return _app()


@pytest.fixture(scope="module")
def doc(app):
    return openapi_document(app)


def schema(doc, ref):
    return doc["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


def test_request_bodies_are_the_models_schemas(doc):
    models = RequestModels.for_settings(SETTINGS)
    jobs = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    texts_ref, store_ref = jobs["application/json"]["schema"]["oneOf"]
    texts = schema(doc, texts_ref)
    assert set(texts["properties"]) == set(models.texts.model_json_schema()["properties"])
    assert set(schema(doc, store_ref)["required"]) == {"hdfs_input", "hdfs_output"}
    limits = texts["properties"]["texts"]
    assert (limits["maxItems"], limits["items"]["maxLength"]) == (7, 40)  # the settings' limits
    assert texts["properties"]["deadline_s"]["maximum"] == 3600
    form = jobs["multipart/form-data"]["schema"]
    assert form["required"] == ["file"]
    assert set(form["properties"]) == {"file", *models.upload.model_json_schema()["properties"]}
    predict = doc["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert predict["application/json"]["schema"] == texts_ref
    legacy = doc["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert schema(doc, legacy["application/json"]["schema"])["properties"]["text"]["maxItems"] == 7
    feedback = doc["paths"]["/v1/feedback"]["post"]["requestBody"]["content"]
    assert schema(doc, feedback["application/json"]["schema"])["properties"]["items"][
        "maxItems"] == 9
    results = doc["paths"]["/v1/jobs/{job_id}/results"]["get"]["parameters"]
    assert results[1:] == query_parameters(models.results)
    assert [p["name"] for p in results] == ["job_id", "format", "offset", "limit"]
    assert results[0]["schema"]["pattern"] == "^[0-9a-f]{32}$"  # the converter's regex


def test_every_rule_is_documented_with_its_methods_and_responses(app, doc):
    seen = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = openapi_path(rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = doc["paths"][path][method.lower()]
            assert operation["responses"], (path, method)
            assert any(s.startswith("2") for s in operation["responses"]), (path, method)
            seen.add((path, method.lower()))
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert documented == seen  # nothing documented that the app does not route


def test_answers_are_the_response_models_and_errors_the_one_shape(doc):
    job = doc["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]
    view = schema(doc, job["200"]["content"]["application/json"]["schema"])
    status = view["properties"]["status"]
    assert status["enum"] == list(JOB_STATUSES)  # the status enum, from spamq.jobs.schema
    assert {"404", "401", "429", "503"} <= set(job)
    error = {"$ref": "#/components/schemas/Error"}
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for code, answer in op["responses"].items():
                if int(code) >= 400 and not (path == "/readyz" and code == "503"):
                    assert answer["content"]["application/json"]["schema"] == error, (path, code)
    assert schema(doc, error)["required"] == ["error", "field", "message"]
    submit = doc["paths"]["/v1/jobs"]["post"]["responses"]
    assert {"202", "200", "400", "403", "409", "413", "422", "429"} <= set(submit)
    assert "429" not in doc["paths"]["/healthz"]["get"]["responses"]  # public: no key, no limit
    assert doc["paths"]["/metrics"]["get"]["responses"]["403"]


def test_a_new_route_is_picked_up_with_its_models():
    extra = Blueprint("extra", __name__)

    @extra.get("/v1/things/<job_id:job_id>")
    @documented("A thing", ok={200: Health}, query="results")
    def thing(job_id):
        return {"status": "ok"}

    @extra.post("/v1/plain")
    def plain():
        """Undocumented views still appear, from their docstring."""
        return {}

    app = _app()
    app.register_blueprint(extra)
    doc = openapi_document(app)
    op = doc["paths"]["/v1/things/{job_id}"]["get"]
    assert op["summary"] == "A thing" and "404" in op["responses"] and "422" in op["responses"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Health"}
    assert doc["paths"]["/v1/plain"]["post"]["summary"].startswith("Undocumented views")
    assert "401" in doc["paths"]["/v1/plain"]["post"]["responses"]


def test_the_served_document_is_the_generated_one(app, doc):
    assert app.test_client().get("/openapi.json").get_json() == doc


def test_the_real_answers_fit_their_response_models():
    """The models the document names are what the routes answer (a texts job's life in
    process, fakeredis: submitted, resubmitted, viewed, paged, cancelled)."""
    app = create_app(SETTINGS.model_copy(update={"auth_required": False}),
                     store=JobStore(fakeredis.FakeRedis(), ttl_s=60),
                     send_task=lambda *a, **k: None)
    client = app.test_client()
    doc = openapi_document(app)

    def model_of(path, method, status):
        ref = doc["paths"][path][method]["responses"][status]["content"]["application/json"]
        return getattr(responses, ref["schema"]["$ref"].rsplit("/", 1)[1])

    created = client.post("/v1/jobs", json={"texts": ["hi", "there"]},
                          headers={"Idempotency-Key": "fit-1"})
    model_of("/v1/jobs", "post", "202").model_validate(created.get_json(), strict=True)
    again = client.post("/v1/jobs", json={"texts": ["hi", "there"]},
                        headers={"Idempotency-Key": "fit-1"})
    model_of("/v1/jobs", "post", "200").model_validate(again.get_json(), strict=True)
    url = created.get_json()["status_url"]
    for path, got in (("/v1/jobs/{job_id}", client.get(url)),
                      ("/v1/jobs/{job_id}/results", client.get(url + "/results")),
                      ("/v1/jobs/{job_id}/rejected", client.get(url + "/rejected")),
                      ("/v1/jobs/{job_id}/webhooks", client.get(url + "/webhooks")),
                      ("/healthz", client.get("/healthz"))):
        assert got.status_code == 200, path
        model_of(path, "get", "200").model_validate(got.get_json(), strict=True)
    cancelled = client.delete(url)
    model_of("/v1/jobs/{job_id}", "delete", "200").model_validate(cancelled.get_json())
    assert cancelled.get_json()["status"] in responses.JOB_STATUSES
    ready = client.get("/readyz")  # no worker here: 503, still a Ready
    assert ready.status_code == 503
    model_of("/readyz", "get", "503").model_validate(ready.get_json(), strict=True)


def test_keyed_operations_say_how_the_key_is_sent_and_public_ones_do_not(doc):
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    assert doc["paths"]["/v1/jobs"]["post"]["security"] == [{"apiKey": []}, {"bearer": []}]
    assert doc["paths"]["/v1/me"]["get"]["security"] == [{"apiKey": []}, {"bearer": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    assert "security" not in doc["paths"]["/openapi.json"]["get"]
