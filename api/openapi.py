"""The OpenAPI 3.1 document of the HTTP API, served at ``/openapi.json``, generated whole: its
paths and methods are the app's ``url_map``; each operation's request body, form, query and
answers are the pydantic models its view names with :func:`documented` (api/requests.py,
api/responses.py), with the limits of the app's settings; its error answers follow from the
route (a key is needed unless the endpoint is public, a job id in the path can be unknown, a
submission can be refused while the queues are full, a body can be too large...) and from the
error kinds the view declares, all in the one error shape (``Error``). A route whose view names
nothing is still documented, from its docstring, with the errors its route implies.

A new route registers its models by decorating its view below the blueprint's route::

    @bp.get("/v1/things/<job_id:job_id>")
    @documented("What the thing is", ok={200: Thing}, query="things", errors=(Conflict,))
    def thing(job_id): ...

``body``, ``form`` and ``query`` name attributes of :class:`api.requests.RequestModels` (the
models built with the settings' limits); ``ok`` maps a status to a response model, or to a
description for an answer that is not JSON.

Why pydantic alone, and not spectree, flask-openapi3 or apiflask: each of those answers a
failed validation with its own error body, and would have to be overridden per route to keep
the API's ``{"error", "field", "message"}`` answers, their 400/413/422 split and the one
body-size check; flask-openapi3 and apiflask also replace the blueprint and app classes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Flask
from pydantic import BaseModel
from werkzeug.routing import Rule

from api.auth import PUBLIC_ENDPOINTS
from api.limits import SUBMITTING
from api.responses import Error
from spamq.errors import (
    InvalidRequest,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    SpamqError,
    Unauthorized,
    Unavailable,
)
from spamq.jobs.schema import JobNotFound

F = TypeVar("F", bound=Callable[..., Any])
#: an answer: a JSON model, or the description of one that is not JSON
Answer = type[BaseModel] | str
#: an error the route may answer: a kind, or (status, description)
ErrorDoc = type[SpamqError] | tuple[int, str]
_REF = "#/components/schemas/{model}"
_ARG = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")
_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
#: how a key is sent (api/auth.py): either header; /docs' "Authorize" fills one in
SECURITY_SCHEMES: dict[str, Any] = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "bearer": {"type": "http", "scheme": "bearer"},
}


@dataclass(frozen=True)
class Operation:
    """What :func:`documented` says of a view."""

    summary: str
    ok: Mapping[int, Answer] = field(default_factory=lambda: {200: "OK"})
    body: tuple[str, ...] = ()
    form: str | None = None
    query: str | None = None
    headers: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    errors: tuple[ErrorDoc, ...] = ()
    streams: tuple[str, ...] = ()


def documented(summary: str, *, ok: Mapping[int, Answer] | None = None,
               body: tuple[str, ...] | str = (), form: str | None = None,
               query: str | None = None, headers: Mapping[str, dict[str, Any]] | None = None,
               errors: tuple[ErrorDoc, ...] = (), streams: tuple[str, ...] = ()
               ) -> Callable[[F], F]:
    """Mark a view with its request and response models (see the module's docstring)."""
    op = Operation(summary, ok or {200: "OK"}, (body,) if isinstance(body, str) else body,
                   form, query, headers or {}, errors, streams)

    def mark(view: F) -> F:
        view.openapi = op  # type: ignore[attr-defined]
        return view

    return mark


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """A query model's fields as OpenAPI parameters."""
    schema = model.model_json_schema()
    return [{"name": name, "in": "query", "required": name in schema.get("required", []),
             "schema": prop} for name, prop in schema["properties"].items()]


def _describe(kind: ErrorDoc) -> tuple[int, str]:
    if isinstance(kind, tuple):
        return kind
    doc = (kind.__doc__ or kind.__name__).split("\n\n")[0]
    return kind.http_status, " ".join(doc.split())


class _Builder:
    """One document: its component schemas, gathered as operations refer to them."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.models = app.extensions["spamq"]["requests"]
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: str = "validation") -> dict[str, str]:
        self.schemas[model.__name__] = self.inline(model, mode)
        return {"$ref": _REF.format(model=model.__name__)}

    def inline(self, model: type[BaseModel], mode: str = "validation") -> dict[str, Any]:
        schema = model.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
        self.schemas.update(schema.pop("$defs", {}))
        return schema

    def path_parameters(self, rule: Rule) -> list[dict[str, Any]]:
        params = []
        for converter, name in _ARG.findall(rule.rule):
            schema: dict[str, Any] = {"type": "string"}
            regex = getattr(self.app.url_map.converters.get(converter), "regex", "[^/]+")
            if converter and regex != "[^/]+":
                schema["pattern"] = f"^{regex}$"
            params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return params

    def request_body(self, op: Operation) -> dict[str, Any] | None:
        content: dict[str, Any] = {}
        if op.body:
            refs: list[dict[str, Any]] = [self.ref(getattr(self.models, name))
                                          for name in op.body]
            schema: dict[str, Any] = refs[0] if len(refs) == 1 else {"oneOf": refs}
            content["application/json"] = {"schema": schema}
        if op.form:
            form: dict[str, Any] = self.inline(getattr(self.models, op.form))
            form["properties"] = {"file": {"type": "string", "format": "binary"},
                                  **form["properties"]}
            form["required"] = ["file"]
            content["multipart/form-data"] = {"schema": form}
        return {"required": True, "content": content} if content else None

    def errors(self, endpoint: str, rule: Rule, op: Operation) -> list[tuple[int, str]]:
        """The error answers of a route: those it declares and those its route implies."""
        kinds: list[ErrorDoc] = list(op.errors)
        if endpoint not in PUBLIC_ENDPOINTS:
            kinds += [Unauthorized, RateLimited, Unavailable]
        if endpoint in SUBMITTING:
            kinds.append(Overloaded)
        if "job_id" in rule.arguments:
            kinds.append(JobNotFound)
        if op.body or op.form or op.query:
            kinds.append(InvalidRequest)
        if op.body:
            kinds += [(400, "the body is not JSON, or not a JSON object"), PayloadTooLarge]
        return [_describe(k) for k in kinds]

    def responses(self, endpoint: str, rule: Rule, op: Operation) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for status, answer in sorted(op.ok.items()):
            if isinstance(answer, str):
                out[str(status)] = {"description": answer}
                continue
            content = {"application/json": {"schema": self.ref(answer, "serialization")}}
            content.update({media: {"schema": {"type": "string"}} for media in op.streams})
            doc = answer.__doc__ if "__doc__" in vars(answer) else None
            out[str(status)] = {"description": " ".join((doc or op.summary).split("\n\n")[0]
                                                        .split()), "content": content}
        by_status: dict[int, list[str]] = {}
        for status, description in self.errors(endpoint, rule, op):
            if description not in by_status.setdefault(status, []):
                by_status[status].append(description)
        error = {"application/json": {"schema": self.ref(Error, "serialization")}}
        for status, descriptions in sorted(by_status.items()):
            out.setdefault(str(status), {"description": "; ".join(descriptions),
                                         "content": error})
        return out

    def operation(self, rule: Rule, method: str) -> dict[str, Any]:
        endpoint = rule.endpoint
        view = self.app.view_functions[endpoint]
        op: Operation | None = getattr(view, "openapi", None)
        if op is None:  # a view that names nothing: its docstring, the errors of its route
            op = Operation(" ".join((view.__doc__ or endpoint).split("\n\n")[0].split()))
        params = self.path_parameters(rule) + [
            {"name": name, "in": "header", "required": False, "schema": schema}
            for name, schema in op.headers.items()]
        if op.query:
            params += query_parameters(getattr(self.models, op.query))
        out: dict[str, Any] = {"operationId": f"{endpoint}.{method.lower()}",
                               "summary": op.summary, "tags": [endpoint.split(".")[0]]}
        if endpoint not in PUBLIC_ENDPOINTS:
            out["security"] = [{name: []} for name in SECURITY_SCHEMES]
        if params:
            out["parameters"] = params
        body = self.request_body(op)
        if body is not None:
            out["requestBody"] = body
        out["responses"] = self.responses(endpoint, rule, op)
        return out


def openapi_path(rule: Rule) -> str:
    """``/v1/jobs/<job_id:job_id>`` as OpenAPI writes it: ``/v1/jobs/{job_id}``."""
    return _ARG.sub(lambda m: "{" + m.group(2) + "}", rule.rule)


def openapi_document(app: Flask) -> dict[str, Any]:
    """The document of ``app``: every rule of its url_map but ``static``."""
    builder = _Builder(app)
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        item = paths.setdefault(openapi_path(rule), {})
        for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
            item[method.lower()] = builder.operation(rule, method)
    return {
        "openapi": "3.1.0",
        "info": {"title": "spamq", "version": "1",
                 "description": "Asynchronous SMS spam/ham scoring: submit a job, poll it."},
        "paths": paths,
        "components": {"schemas": dict(sorted(builder.schemas.items())),
                       "securitySchemes": SECURITY_SCHEMES},
    }
