"""The OpenAPI 3.1 document of the HTTP API, served at ``/openapi.json``, generated from the
request models (api/requests.py): every request body, form and query parameter is a model's
``model_json_schema()``, with the limits of the app's settings.

Why pydantic alone, and not spectree, flask-openapi3 or apiflask: each of those answers a
failed validation with its own error body (a list of pydantic errors, or apiflask's
``{"detail", "message"}``), and they would have to be overridden per route to keep the API's
``{"error": "invalid_request", "field": ..., "message": ...}`` answers, their 400/413/422
split and the one body-size check; flask-openapi3 and apiflask also replace the blueprint and
app classes. What they would add is this document, which the models give us directly (OpenAPI
3.1 takes JSON Schema as it is). What the models do not describe (the answers, the path and
header parameters) is written below.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api.feedback import openapi_paths as feedback_paths
from api.requests import RequestModels
from spamq.settings import Settings

_ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": _json({"$ref": f"#/components/schemas/{name}"})}


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """A query model's fields as OpenAPI parameters."""
    schema = model.model_json_schema()
    return [{"name": name, "in": "query", "required": name in schema.get("required", []),
             "schema": prop} for name, prop in schema["properties"].items()]


def openapi_document(settings: Settings) -> dict[str, Any]:
    models = RequestModels.for_settings(settings)
    job_id = {"name": "job_id", "in": "path", "required": True,
              "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
    not_found = _error("unknown or expired job (or another API key's)")
    unavailable = _error("Redis, the queue or the artifact store is unreachable")
    bad = {"400": _error("the body is not a JSON object"),
           "413": _error("too many texts, too long a text, too large a body, or an upload past "
                          "the key's quota of stored uploads"),
           "422": _error("a field is missing or has the wrong type; `field` names it"),
           "503": unavailable}
    texts_body = {"required": True, "content": _json(models.texts.model_json_schema())}

    def on_job(summary: str, ok: str, more: dict[str, Any] | None = None) -> dict[str, Any]:
        """An operation on one job: its id in the path, 404 when there is no such job."""
        return {"summary": summary, "parameters": [job_id],
                "responses": {"200": {"description": ok}, "404": not_found,
                              "503": unavailable, **(more or {})}}

    upload = models.upload.model_json_schema()
    upload["properties"] = {"file": {"type": "string", "format": "binary"},
                            **upload["properties"]}
    upload["required"] = ["file"]
    return {
        "openapi": "3.1.0",
        "info": {"title": "spamq", "version": "1",
                 "description": "Asynchronous SMS spam/ham scoring: submit a job, poll it."},
        "paths": {
            "/v1/jobs": {"post": {
                "summary": "Submit texts (JSON), a store job (hdfs_input) or a CSV/TSV/JSONL "
                           "file (multipart) to score",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
                "requestBody": {"required": True, "content": {
                    **_json({"oneOf": [models.texts.model_json_schema(),
                                       models.store_job.model_json_schema()]}),
                    "multipart/form-data": {"schema": upload},
                }},
                "responses": {"202": _ref("Created", "queued; poll status_url"),
                              "200": {"description": "an existing job (same Idempotency-Key)"},
                              "403": _error("a path outside this key's store area"),
                              "409": _error("hdfs_output already holds files, or is reserved"),
                              **bad},
            }},
            "/v1/jobs/{job_id}": {
                "get": on_job("Status, progress and (small jobs) results", "the job",
                              {"200": _ref("Job", "the job")}),
                "delete": on_job("Cancel the remaining chunks", "cancelled",
                                 {"409": _error("already finished")}),
            },
            "/v1/jobs/{job_id}/results": {"get": {
                **on_job("A page of results, or all of them as JSONL or CSV", "results",
                         {"422": bad["422"], "409": _error(
                             "a store job's part file was changed after it was written")}),
                "parameters": [job_id, *query_parameters(models.results)]}},
            "/v1/jobs/{job_id}/rejected": {"get": on_job(
                "Input rows that were not scored, with the reason", "rejected rows",
                {"409": _error("a store job's part file was changed after it was written")})},
            "/v1/jobs/{job_id}/parts": {"get": on_job(
                "A store job's committed part files so far, and how many worker processes "
                "committed them (workers)", "the parts")},
            "/v1/jobs/{job_id}/webhooks": {"get": on_job(
                "The job's webhook and its delivery attempts (event_id, type, attempt, at, "
                "status, error, duration_ms, outcome, next_at)", "the webhook and attempts")},
            "/v1/predict": {"post": {
                "summary": "Submit and wait (up to the configured timeout)",
                "requestBody": texts_body,
                "responses": {"200": {"description": "results"},
                              "504": _error("not finished in time: poll status_url"), **bad}}},
            "/predict": {"post": {
                "summary": "The study project's call (GET with a body works too)",
                "requestBody": {"required": True,
                                "content": _json(models.legacy.model_json_schema())},
                "responses": {"200": {"description": "{Result: [{label, score}]}"},
                              "504": _error("not finished in time"), **bad}}},
            **feedback_paths(settings, _error),
            "/healthz": {"get": {"summary": "The process is alive",
                                 "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Redis answers and a live worker has a loaded model",
                                "responses": {"200": {"description": "{ready: true, workers: "
                                                      "<live workers with a model>}"},
                                              "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (the operator's token)",
                                 "responses": {"200": {"description": "metrics"},
                                               "403": _error("no or a wrong token")}}},
            "/": {"get": {"summary": "The web page",
                          "responses": {"200": {"description": "HTML"}}}},
            "/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error", "message"], "properties": {
                "error": {"type": "string"}, "field": {"type": ["string", "null"]},
                "message": {"type": "string"}}},
            "Created": {"type": "object", "required": ["id", "status", "status_url"],
                        "properties": {"id": {"type": "string"}, "status": {"type": "string"},
                                       "status_url": {"type": "string"}}},
            "Job": {"type": "object", "required": ["id", "status", "progress"], "properties": {
                "id": {"type": "string"},
                "status": {"type": "string",
                           "enum": ["queued", "running", "stalled", "done", "failed",
                                    "cancelled", "expired"]},
                "progress": {"type": "object", "properties": {
                    "done": {"type": "integer"}, "total": {"type": ["integer", "null"]}}},
                "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}}}},
            "Result": {"type": "object", "properties": {
                "label": {"type": "string", "enum": ["spam", "ham"]},
                "spam_probability": {"type": "number", "minimum": 0, "maximum": 1},
                "truncated": {"type": "boolean"}, "model_version": {"type": "string"}}},
        }},
    }
