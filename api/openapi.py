"""The OpenAPI 3.0 document of the HTTP API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from spamq.settings import Settings


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_document(settings: Settings) -> dict[str, Any]:
    texts = {
        "type": "array", "minItems": 1, "maxItems": settings.max_texts_per_request,
        "items": {"type": "string", "minLength": 1, "maxLength": settings.max_chars_per_text},
    }
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    not_found = _error("unknown or expired job (or another API key's)")
    bad = {"400": _error("the body is not a JSON object"),
           "413": _error("too many texts, too long a text, or too large a body"),
           "422": _error("a field is missing or has the wrong type; `field` names it"),
           "503": _error("Redis or the queue is unreachable")}
    return {
        "openapi": "3.0.3",
        "info": {"title": "spamq", "version": "1",
                 "description": "Asynchronous SMS spam/ham scoring: submit a job, poll it."},
        "paths": {
            "/v1/jobs": {"post": {
                "summary": "Submit texts (JSON) or a CSV/TSV/JSONL file (multipart) to score",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"oneOf": [
                        {"type": "object", "required": ["texts"],
                         "properties": {"texts": texts}},
                        {"type": "object", "required": ["hdfs_input", "hdfs_output"],
                         "description": "a file in HDFS (or the local artifact store); the "
                                        "results go to part files, _REJECTED.jsonl and "
                                        "_SUCCESS under hdfs_output",
                         "properties": {"hdfs_input": {"type": "string"},
                                        "hdfs_output": {"type": "string"},
                                        "column": {"type": "string", "default": "text"},
                                        "format": {"type": "string",
                                                   "enum": ["csv", "tsv", "jsonl"]}}}]}},
                    "multipart/form-data": {"schema": {
                        "type": "object", "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"},
                                       "column": {"type": "string", "default": "text"},
                                       "format": {"type": "string",
                                                  "enum": ["csv", "tsv", "jsonl"]}}}},
                }},
                "responses": {"202": {"description": "queued; poll status_url",
                                      "content": {"application/json": {"schema": {
                                          "$ref": "#/components/schemas/Created"}}}},
                              "200": {"description": "an existing job (same Idempotency-Key)"},
                              "409": _error("hdfs_output already holds files"),
                              **bad},
            }},
            "/v1/jobs/{job_id}": {
                "get": {"summary": "Status, progress and (small jobs) results",
                        "parameters": [job_id],
                        "responses": {"200": {"description": "the job", "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}},
                            "404": not_found, "503": bad["503"]}},
                "delete": {"summary": "Cancel the remaining chunks", "parameters": [job_id],
                           "responses": {"200": {"description": "cancelled"},
                                         "404": not_found,
                                         "409": _error("already finished"),
                                         "503": bad["503"]}},
            },
            "/v1/jobs/{job_id}/results": {"get": {
                "summary": "A page of results, or all of them as JSONL or CSV",
                "parameters": [
                    job_id,
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    {"name": "format", "in": "query",
                     "schema": {"type": "string", "enum": ["json", "jsonl", "csv"]}},
                ],
                "responses": {"200": {"description": "results"}, "404": not_found,
                              "422": bad["422"], "503": bad["503"]}}},
            "/v1/jobs/{job_id}/rejected": {"get": {
                "summary": "Input rows that were not scored, with the reason",
                "parameters": [job_id],
                "responses": {"200": {"description": "rejected rows"},
                              "404": not_found, "503": bad["503"]}}},
            "/v1/predict": {"post": {
                "summary": "Submit and wait (up to the configured timeout)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["texts"], "properties": {"texts": texts}}}}},
                "responses": {"200": {"description": "results"},
                              "504": _error("not finished in time: poll status_url"), **bad}}},
            "/predict": {"post": {
                "summary": "The study project's call (GET with a body works too)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["text"], "properties": {"text": texts}}}}},
                "responses": {"200": {"description": "{Result: [{label, score}]}"},
                              "504": _error("not finished in time"), **bad}}},
            "/healthz": {"get": {"summary": "The process is alive",
                                 "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Redis answers and a worker has a loaded model",
                                "responses": {"200": {"description": "ready"},
                                              "503": {"description": "not ready"}}}},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "string"}, "field": {"type": "string", "nullable": True},
                "message": {"type": "string"}}},
            "Created": {"type": "object", "required": ["id", "status", "status_url"],
                        "properties": {"id": {"type": "string"}, "status": {"type": "string"},
                                       "status_url": {"type": "string"}}},
            "Job": {"type": "object", "required": ["id", "status", "progress"], "properties": {
                "id": {"type": "string"},
                "status": {"type": "string",
                           "enum": ["queued", "running", "done", "failed", "cancelled"]},
                "progress": {"type": "object", "properties": {
                    "done": {"type": "integer"}, "total": {"type": "integer"}}},
                "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}}}},
            "Result": {"type": "object", "properties": {
                "label": {"type": "string", "enum": ["spam", "ham"]},
                "spam_probability": {"type": "number", "minimum": 0, "maximum": 1},
                "truncated": {"type": "boolean"}, "model_version": {"type": "string"}}},
        }},
    }
