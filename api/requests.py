"""Typed requests: each request's body, form or query is read and parsed once, into one of the
pydantic models below, and the typed object is passed on. Their JSON schemas are the OpenAPI
document's (api/openapi.py).

The limits that come from the settings (texts per request, characters per text, the longest
deadline) are part of the models: :class:`RequestModels` builds the app's models from its
settings, so the schema shows them. The checks whose wording the API has always answered with
(the texts, ``deadline_s``) raise :class:`~api.validation.InvalidRequest` from the validators;
any other failure pydantic finds is turned into one by :func:`validate`, naming the field
(a JSON path such as ``texts[3]``) and never quoting the input.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, get_args

from flask import current_app, g, request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from werkzeug.exceptions import RequestEntityTooLarge

from api.validation import InvalidRequest, int_param, parse_texts, require_object
from spamq.settings import Settings
from spamq.webhooks.request import EVENTS, Webhook, parse_webhook

M = TypeVar("M", bound=BaseModel)
_MAX_NAME = 200
#: a column name: what the store-job and upload fields name
Name = Annotated[str, Field(min_length=1, max_length=_MAX_NAME)]
InputFormat = Literal["csv", "tsv", "jsonl"]
OutputFormat = Literal["jsonl", "csv"]


def _settings(info: ValidationInfo) -> Settings:
    """The app's settings, handed to every validation as its context (see :func:`validate`)."""
    assert isinstance(info.context, Settings), "validate with context=settings"
    return info.context


class Submission(BaseModel):
    """What every submitting request may carry: ``deadline_s``, after which the job's
    unscored chunks (or splits) are skipped and the job is ``expired``."""

    deadline_s: float | None = Field(None, description="seconds from now until the job expires")

    @field_validator("deadline_s", mode="before")
    @classmethod
    def _deadline(cls, value: Any, info: ValidationInfo) -> float:
        top = _settings(info).max_deadline_s
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or not 0 < value <= top):
            raise InvalidRequest("deadline_s", "'deadline_s' must be a number of seconds in "
                                 f"(0, {top:g}]")
        return float(value)

    def deadline(self) -> float | None:
        """The deadline as epoch seconds (None: no deadline)."""
        return None if self.deadline_s is None else time.time() + self.deadline_s


def _texts(value: Any, info: ValidationInfo) -> Any:
    settings = _settings(info)
    assert info.field_name is not None
    return parse_texts({info.field_name: value}, field=info.field_name,
                       max_items=settings.max_texts_per_request,
                       max_chars=settings.max_chars_per_text)


EventName = Literal["job.completed", "job.failed", "job.cancelled", "job.expired",
                    "job.progress"]
assert set(get_args(EventName)) == set(EVENTS)


class WebhookBody(BaseModel):
    """``"webhook": {"url": ..., "events": [...]}``: post these events of the job to ``url``
    (https; checked by the SSRF guard, spamq/webhooks/urls.py), signed with the key's secret."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="https URL; private, loopback and metadata hosts are refused")
    events: Annotated[list[EventName], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _guard(cls, data: Any, info: ValidationInfo) -> Any:
        if data is None:  # "webhook": null is no webhook
            return data
        hook = parse_webhook(data, _settings(info))  # WebhookRefused: 422 naming webhook.*
        return {"url": hook.url, "events": list(hook.events)}

    def hook(self) -> Webhook:
        return Webhook(self.url, tuple(self.events))


class Notified(Submission):
    """A submission that creates a job may ask to be told of its end: ``webhook``."""

    webhook: WebhookBody | None = None


class TextsBody(Notified):
    """``POST /v1/jobs`` and ``POST /v1/predict``: ``{"texts": [...]}``."""

    texts: list[str]
    _check_texts = field_validator("texts", mode="before")(_texts)


class LegacyBody(Submission):
    """The study project's ``GET``/``POST /predict``: ``{"text": [...]}``."""

    text: list[str]
    _check_text = field_validator("text", mode="before")(_texts)


#: the columns a store job's output rows have of their own (worker/split_tasks.py: a part's
#: row and a rejected row): an id or kept column of the same name would be overwritten
OUTPUT_COLUMNS = ("file", "ref", "label", "spam_probability", "truncated", "model_version",
                  "error", "reason")


class StoreColumns(Notified):
    """What a store job reads and writes: the columns and the formats."""

    column: Name = "text"
    format: InputFormat | None = None
    id_column: Name | None = None
    keep_columns: Annotated[list[Name], Field(max_length=50)] = []
    output_format: OutputFormat | None = None

    @model_validator(mode="after")
    def _not_an_output_column(self) -> StoreColumns:
        named = [("id_column", self.id_column),
                 *((f"keep_columns[{i}]", c) for i, c in enumerate(self.keep_columns))]
        for field, name in named:
            if name in OUTPUT_COLUMNS:
                raise InvalidRequest(field, f"'{field}' names {name!r}, a column the output "
                                     "has of its own (" + ", ".join(OUTPUT_COLUMNS) + ")")
        return self


class StoreJob(StoreColumns):
    """``POST /v1/jobs`` with ``hdfs_input``: a store job over files in HDFS (or the local
    artifact store); the results go to part files, ``_rejected/`` and ``_SUCCESS`` under
    ``hdfs_output``. Both paths must lie in the key's own area (api/store_input.py)."""

    model_config = ConfigDict(extra="forbid")

    hdfs_input: str = Field(description="a file, a directory or a glob in the last part")
    hdfs_output: str = Field(description="a directory that holds no file yet")

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        unknown = [k for k in data if k not in cls.model_fields] if isinstance(data, dict) else []
        if unknown:  # counted, never named: a client's key is not echoed
            allowed = ", ".join(sorted(cls.model_fields))
            raise InvalidRequest(None, f"unknown field(s) with 'hdfs_input' ({len(unknown)}); "
                                 f"allowed: {allowed}")
        return data


class UploadForm(StoreColumns):
    """The form fields of a multipart ``POST /v1/jobs`` (the file is the ``file`` part);
    ``keep_columns`` is comma-separated; empty fields count as absent."""

    @model_validator(mode="before")
    @classmethod
    def _form_strings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if v != ""}
        if isinstance(data.get("keep_columns"), str):
            data["keep_columns"] = [c for c in data["keep_columns"].split(",") if c]
        if isinstance(data.get("webhook"), str):
            try:
                data["webhook"] = json.loads(data["webhook"])
            except ValueError:
                pass  # refused by the webhook check, naming the field
        if isinstance(data.get("deadline_s"), str):
            try:
                data["deadline_s"] = float(data["deadline_s"])
            except ValueError:
                pass  # refused by the deadline check, naming the field
        return data


class ResultsQuery(BaseModel):
    """``GET /v1/jobs/<id>/results``: a page (``offset``, ``limit``), or everything streamed
    (``format=jsonl|csv``; ``limit`` then has no default and no upper bound)."""

    format: Literal["json", "jsonl", "csv"] = "json"
    offset: int = Field(0, ge=0)
    limit: int | None = Field(None, ge=1, description="default 100 for a page")

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v != ""} if isinstance(data, dict) else data

    @field_validator("offset", "limit", mode="before")
    @classmethod
    def _integer(cls, value: Any, info: ValidationInfo) -> int | None:
        name = info.field_name
        assert name is not None
        return int_param({name: value}, name, default=None, low=0 if name == "offset" else 1)

    @model_validator(mode="after")
    def _page(self, info: ValidationInfo) -> ResultsQuery:
        if self.format == "json":
            high = _settings(info).results_page_max
            self.limit = int_param({"limit": self.limit}, "limit", default=100, low=1, high=high)
        return self


@dataclass(frozen=True)
class RequestModels:
    """One app's request models, their limits taken from its settings."""

    texts: type[TextsBody]
    legacy: type[LegacyBody]
    store_job: type[StoreJob]
    upload: type[UploadForm]
    results: type[ResultsQuery]

    @classmethod
    def for_settings(cls, settings: Settings) -> RequestModels:
        text = Annotated[str, Field(min_length=1, max_length=settings.max_chars_per_text)]
        texts = Annotated[list[text],  # the limits come from the settings
                          Field(min_length=1, max_length=settings.max_texts_per_request)]
        deadline = Annotated[float, Field(gt=0, le=settings.max_deadline_s)] | None

        def limited(model: type[M], **fields: Any) -> type[M]:
            if issubclass(model, Submission):
                fields["deadline_s"] = (deadline, Field(None, description="seconds from now "
                                                        "until the job expires"))
            return create_model(model.__name__, __base__=model, __module__=__name__,
                                __doc__=model.__doc__, **fields)

        return cls(texts=limited(TextsBody, texts=(texts, ...)),
                   legacy=limited(LegacyBody, text=(texts, ...)),
                   store_job=limited(StoreJob), upload=limited(UploadForm),
                   results=ResultsQuery)


def _json_path(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def validate(model: type[M], data: Any, settings: Settings) -> M:
    """``data`` as a ``model``; a 4xx :class:`InvalidRequest` naming the field otherwise."""
    try:
        return model.model_validate(data, context=settings)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        field = _json_path(first["loc"]) or None
        if first["type"] == "missing":
            raise InvalidRequest(field, f"'{field}' is required") from None
        message = f"'{field}': {first['msg']}" if field else first["msg"]
        raise InvalidRequest(field, message) from None


def body_too_large(limit: int) -> InvalidRequest:
    return InvalidRequest(None, f"a JSON body may have at most {limit} bytes; upload a file "
                          "for more", status=413)


def _body_bytes(limit: int) -> bytes:
    """The request body, held to ``limit`` bytes: the one body-size check. Only multipart
    uploads may use the app's larger MAX_CONTENT_LENGTH. A chunked body (no Content-Length) is
    read up to one byte past the limit, so that "over the limit" can be told apart from
    "exactly at it"; a larger declared length is refused before anything is read."""
    request.max_content_length = limit + 1
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise body_too_large(limit) from None
    if len(data) > limit:
        raise body_too_large(limit)
    return data


def json_payload() -> Any:
    """The request's JSON body, read and decoded once per request (kept on ``flask.g``)."""
    if "spamq_json" not in g:
        data = _body_bytes(current_app.extensions["spamq"]["settings"].max_body_bytes)
        payload = None
        if request.is_json:
            try:
                payload = json.loads(data)
            except (ValueError, RecursionError):  # not JSON; nested deeper than the parser goes
                payload = None
        if payload is None:
            raise InvalidRequest(None, "the request body must be JSON (Content-Type: "
                                 "application/json)", status=400)
        g.spamq_json = payload
    return g.spamq_json


def _parsed(model: type[M], read: Any) -> M:
    """``model`` from ``read()``, validated once per request and model (kept on ``flask.g``)."""
    cache = g.setdefault("spamq_requests", {})
    if model not in cache:
        cache[model] = validate(model, read(), current_app.extensions["spamq"]["settings"])
    return cache[model]


def parse_body(model: type[M]) -> M:
    """The JSON body as a ``model`` (400 if it is not a JSON object, 413 if too large)."""
    return _parsed(model, lambda: require_object(json_payload()))


def parse_form(model: type[M]) -> M:
    """A multipart request's form fields as a ``model``."""
    return _parsed(model, lambda: request.form.to_dict())


def parse_query(model: type[M]) -> M:
    """The query string as a ``model``."""
    return _parsed(model, lambda: request.args.to_dict())


def models() -> RequestModels:
    """The current app's request models."""
    found: RequestModels = current_app.extensions["spamq"]["requests"]
    return found
