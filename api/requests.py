"""Typed requests: each request's body, form or query is read and parsed once, into one of the
pydantic models below, and the typed object is passed on. Their JSON schemas are the OpenAPI
document's (api/openapi.py).

The models' constraints are the only rules: nothing checks a field again by hand. The limits
that come from the settings (texts per request, characters per text, feedback items, the
longest deadline) are part of the models: :class:`RequestModels` builds the app's models from
its settings, so the schema shows them. A failure is turned into an
:class:`~spamq.errors.InvalidRequest` naming the field (a JSON path such as ``texts[3]``) by
api/validation.py, never quoting the input. What needs the network (a webhook URL's DNS) is
checked after parsing (:func:`_parsed`), never inside a validator.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from flask import current_app, g, request
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from werkzeug.exceptions import RequestEntityTooLarge

from api.validation import no_nul, not_blank, printable, request_error, scoring_text
from spamq.errors import InvalidRequest, PayloadTooLarge
from spamq.settings import Settings
from spamq.storage.rows import shown
from spamq.webhooks.request import Webhook, check_webhook

M = TypeVar("M", bound=BaseModel)
_MAX_NAME = 200
#: a column name: what the store-job and upload fields name
Name = Annotated[str, Field(strict=True, min_length=1, max_length=_MAX_NAME)]
#: a path in the artifact store (spamq/jobs/store_submit.py checks it lies in the key's area)
StorePath = Annotated[str, Field(strict=True, min_length=1, max_length=4096),
                      AfterValidator(not_blank)]
InputFormat = Literal["csv", "tsv", "jsonl"]
OutputFormat = Literal["jsonl", "csv"]
JOB_ID = "^[0-9a-f]{32}$"
MAX_CATEGORY = 64
MAX_NOTE = 1000
PAGE_DEFAULT = 100
#: the columns a store job's output rows have of their own (worker/split_tasks.py: a part's
#: row and a rejected row): an id or kept column of the same name would be overwritten
OUTPUT_COLUMNS = ("file", "ref", "label", "spam_probability", "truncated", "model_version",
                  "error", "reason")


def _settings(info: ValidationInfo) -> Settings:
    """The app's settings, handed to every validation as its context (see :func:`validate`)."""
    assert isinstance(info.context, Settings), "validate with context=settings"
    return info.context


def _not_an_output_column(name: str) -> str:
    if name in OUTPUT_COLUMNS:
        raise PydanticCustomError("output_column", "names '{name}', a column the output has of "
                                  "its own ({columns})",
                                  {"name": name, "columns": ", ".join(OUTPUT_COLUMNS)})
    return name


#: an id or kept column: not one the output has of its own
InputColumn = Annotated[Name, AfterValidator(_not_an_output_column)]


class Submission(BaseModel):
    """What every submitting request may carry: ``deadline_s``, after which the job's
    unscored chunks (or splits) are skipped and the job is ``expired``."""

    deadline_s: float | None = Field(None, description="seconds from now until the job expires")

    def deadline(self) -> float | None:
        """The deadline as epoch seconds (None: no deadline)."""
        return None if self.deadline_s is None else time.time() + self.deadline_s


class Notified(Submission):
    """A submission that creates a job may ask to be told of its end: ``webhook`` (its URL is
    checked after parsing: :func:`_parsed`)."""

    webhook: Webhook | None = None


class TextsBody(Notified):
    """``POST /v1/jobs`` and ``POST /v1/predict``: ``{"texts": [...]}``."""

    texts: list[str]


class LegacyBody(Submission):
    """The study project's ``GET``/``POST /predict``: ``{"text": [...]}``."""

    text: list[str]


class StoreColumns(Notified):
    """What a store job reads and writes: the columns and the formats."""

    column: Name = "text"
    format: InputFormat | None = None
    id_column: InputColumn | None = None
    keep_columns: Annotated[list[InputColumn], Field(max_length=50)] = []
    output_format: OutputFormat | None = None


class StoreJob(StoreColumns):
    """``POST /v1/jobs`` with ``hdfs_input``: a store job over files in HDFS (or the local
    artifact store); the results go to part files, ``_rejected/`` and ``_SUCCESS`` under
    ``hdfs_output``. Both paths must lie in the key's own area (spamq/jobs/store_submit.py)."""

    model_config = ConfigDict(extra="forbid")

    hdfs_input: StorePath = Field(description="a file, a directory or a glob in the last part")
    hdfs_output: StorePath = Field(description="a directory that holds no file yet")


UPLOAD_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class UploadForm(StoreColumns):
    """The form fields of a multipart ``POST /v1/jobs`` (the file is the ``file`` part);
    ``keep_columns`` is comma-separated; empty fields count as absent."""

    @model_validator(mode="before")
    @classmethod
    def _form_strings(cls, data: Any) -> Any:
        """Form fields are strings: each as the JSON field it stands for (what does not
        convert is left for the field's own rule to refuse, naming it)."""
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if v != ""}
        if isinstance(data.get("keep_columns"), str):
            data["keep_columns"] = [c for c in data["keep_columns"].split(",") if c]
        for name, convert in (("webhook", json.loads), ("deadline_s", float)):
            if isinstance(data.get(name), str):
                try:
                    data[name] = convert(data[name])
                except ValueError:
                    pass
        return data

    def input_format(self, filename: str | None) -> str:
        """The upload's format: the ``format`` field, else the file name's extension."""
        if self.format:
            return self.format
        name = filename or ""
        suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if suffix not in UPLOAD_FORMATS:
            raise InvalidRequest("format", f"cannot tell the format of {shown(filename)}: name "
                                 "it .csv, .tsv or .jsonl or give the 'format' form field")
        return UPLOAD_FORMATS[suffix]


class ResultsQuery(BaseModel):
    """``GET /v1/jobs/<id>/results``: a page (``offset``, ``limit``), or everything streamed
    (``format=jsonl|csv``; ``limit`` then has no default and no upper bound)."""

    format: Literal["json", "jsonl", "csv"] = "json"
    offset: int = Field(0, ge=0)
    limit: int | None = Field(None, ge=1, validate_default=True,
                              description=f"default {PAGE_DEFAULT} for a page; at most the "
                                          "server's results_page_max")

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v != ""} if isinstance(data, dict) else data

    @field_validator("limit")
    @classmethod
    def _page(cls, limit: int | None, info: ValidationInfo) -> int | None:
        if info.data.get("format", "json") != "json":
            return limit
        high = _settings(info).results_page_max
        if limit is not None and limit > high:
            raise PydanticCustomError("less_than_equal", "must be at most {le}", {"le": high})
        return PAGE_DEFAULT if limit is None else limit


class FeedbackItem(BaseModel):
    """A message, or row ``index`` of one of this key's texts jobs (``job_id``), and its right
    ``label``; optionally a ``category`` and a ``note``."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    job_id: str | None = Field(None, pattern=JOB_ID)
    index: int | None = Field(None, ge=0, strict=True)
    label: Literal["spam", "ham"]
    category: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_CATEGORY),
                        AfterValidator(printable)] | None = None
    note: Annotated[str, Field(strict=True, max_length=MAX_NOTE),
                    AfterValidator(no_nul)] | None = None

    @field_validator("job_id")
    @classmethod
    def _not_with_text(cls, job_id: str | None, info: ValidationInfo) -> str | None:
        if job_id is not None and info.data.get("text") is not None:
            raise PydanticCustomError("item_source", "is given with 'text': name either a text, "
                                      "or a job's row ('job_id' and 'index')")
        return job_id

    @model_validator(mode="after")
    def _one_source(self) -> FeedbackItem:
        by_text = self.text is not None and self.job_id is None and self.index is None
        by_row = self.text is None and self.job_id is not None and self.index is not None
        if not (by_text or by_row):
            raise PydanticCustomError("item_source", "needs either 'text', or 'job_id' and "
                                      "'index'")
        return self


class FeedbackBody(BaseModel):
    """``POST /v1/feedback``: ``{"items": [...]}``."""

    model_config = ConfigDict(extra="forbid")
    items: list[FeedbackItem] = Field(min_length=1)


class FeedbackDeleteQuery(BaseModel):
    """``DELETE /v1/feedback``: all of this key's feedback, or (``text_sha256``) the items
    of one text (the hash POST /v1/feedback answered with)."""

    model_config = ConfigDict(extra="forbid")
    text_sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$")


@dataclass(frozen=True)
class RequestModels:
    """One app's request models, their limits taken from its settings."""

    texts: type[TextsBody]
    legacy: type[LegacyBody]
    store_job: type[StoreJob]
    upload: type[UploadForm]
    results: type[ResultsQuery]
    feedback: type[FeedbackBody]
    feedback_delete: type[FeedbackDeleteQuery]

    @classmethod
    def for_settings(cls, settings: Settings) -> RequestModels:
        text = Annotated[str, Field(strict=True, min_length=1,  # the settings' limits
                                    max_length=settings.max_chars_per_text),
                         AfterValidator(scoring_text)]
        texts = Annotated[list[text],
                          Field(min_length=1, max_length=settings.max_texts_per_request)]
        # not nullable: absent is no deadline, null is refused
        deadline = Annotated[float, Field(strict=True, gt=0, le=settings.max_deadline_s,
                                          allow_inf_nan=False)]

        def limited(model: type[M], **fields: Any) -> type[M]:
            if issubclass(model, Submission):
                fields["deadline_s"] = (deadline, Field(None, description="seconds from now "
                                                        "until the job expires"))
            return create_model(model.__name__, __base__=model, __module__=__name__,
                                __doc__=model.__doc__, **fields)

        item = limited(FeedbackItem, text=(text | None, None))
        items = Annotated[list[item],  # type: ignore[valid-type]
                          Field(min_length=1, max_length=settings.feedback_max_items)]
        return cls(texts=limited(TextsBody, texts=(texts, ...)),
                   legacy=limited(LegacyBody, text=(texts, ...)),
                   store_job=limited(StoreJob), upload=limited(UploadForm),
                   results=ResultsQuery, feedback=limited(FeedbackBody, items=(items, ...)),
                   feedback_delete=FeedbackDeleteQuery)


def validate(model: type[M], data: Any, settings: Settings) -> M:
    """``data`` as a ``model``; a 4xx :class:`InvalidRequest` naming the field otherwise."""
    try:
        return model.model_validate(data, context=settings)
    except ValidationError as exc:
        raise request_error(exc, model) from None


def body_too_large(limit: int) -> InvalidRequest:
    return PayloadTooLarge(None, f"a JSON body may have at most {limit} bytes; upload a file "
                           "for more")


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
        settings = current_app.extensions["spamq"]["settings"]
        parsed = validate(model, read(), settings)
        if isinstance(parsed, Notified) and parsed.webhook is not None:
            check_webhook(parsed.webhook, settings)  # DNS: after parsing, once per request
        cache[model] = parsed
    return cache[model]


def parse_body(model: type[M]) -> M:
    """The JSON body as a ``model`` (400 if it is not a JSON object, 413 if too large)."""
    return _parsed(model, json_payload)


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
