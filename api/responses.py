"""The answers of the API as pydantic models: what /openapi.json says each route returns
(api/openapi.py), and what tests check the real answers against. Objects the service may grow
(a job's view) allow more fields than these name.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from spamq.jobs.view import PUBLIC_STATUSES

#: every status a job's view may show (spamq/jobs/view.py): the one enum of the document
JOB_STATUSES = PUBLIC_STATUSES
JobStatus = Literal[JOB_STATUSES]  # type: ignore[valid-type]


class Open(BaseModel):
    """An object that may hold more fields than the model names."""

    model_config = ConfigDict(extra="allow")


class Error(Open):
    """Every error answer (api/errors.py): ``field`` names the request field at fault (a JSON
    path, a form field, a query parameter or a header), null when none is; some kinds add
    their public figures, named below."""

    error: str = Field(description="the kind: invalid_request, not_found, unauthorized, ...")
    field: str | None
    message: str
    id: str | None = Field(None, description="timeout, job_failed: the job")
    status: str | None = Field(None, description="timeout, conflict: the job's status")
    status_url: str | None = Field(None, description="timeout, job_failed: poll it")
    queue_depth: int | None = Field(None, description="overloaded: tasks queued")
    key_queued: int | None = Field(None, description="overloaded: of them, this key's")
    pending_rows: int | None = Field(None, description="over_quota: this key's rows waiting")
    interactive_rows: int | None = Field(None, description="over_quota: of small jobs")


class Accepted(BaseModel):
    id: str
    status: JobStatus
    status_url: str
    total: int
    rejected: int


class Existing(BaseModel):
    """The job an Idempotency-Key already named (resumed if it had failed, been cancelled or
    expired)."""

    id: str
    status: JobStatus
    status_url: str
    existing: Literal[True]
    resent_chunks: int


class Result(Open):
    label: Literal["spam", "ham"]
    spam_probability: float = Field(ge=0, le=1)
    truncated: bool
    model_version: str | None


class Progress(Open):
    done: int
    total: int | None = Field(description="a store job's: known when it is done")


class Rate(BaseModel):
    rows_per_s: float | None
    eta_s: float | None


class JobView(Open):
    """A job's public view."""

    id: str
    status: JobStatus
    progress: Progress
    rate: Rate | None = None
    results_url: str
    created_at: str | None = None
    finished_at: str | None = None
    model_version: str | None = None
    error: str | None = None
    results: list[Result] | None = Field(None, description="a small texts job's, once done")


class ResultsPage(BaseModel):
    id: str
    status: JobStatus
    total: int
    offset: int
    limit: int
    results: list[dict[str, Any]]
    next: str | None = Field(description="the next page, while there is one")


class Rejected(BaseModel):
    id: str
    count: int
    rejected: list[dict[str, Any]]


class Part(BaseModel):
    split: int
    name: str
    rows: int
    rejected: int


class Parts(BaseModel):
    id: str
    status: JobStatus
    output: str | None
    parts: list[Part]
    workers: int = Field(description="how many worker processes committed the parts")


class Webhooks(BaseModel):
    id: str
    webhook: dict[str, Any] | None
    attempts: list[dict[str, Any]] = Field(description="event_id, type, attempt, at, status, "
                                                       "error, duration_ms, outcome, next_at")


class Predicted(BaseModel):
    id: str
    model_version: str | None
    results: list[Result]


class LegacyScore(BaseModel):
    label: Literal["spam", "ham"]
    score: float = Field(description="the probability of the label")


class LegacyPredicted(BaseModel):
    Result: list[LegacyScore]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(Open):
    ready: bool
    status: Literal["ready", "not_ready"]
    workers: int = Field(description="live workers with a loaded model")
    message: str | None = None


class FeedbackStored(BaseModel):
    accepted: int
    duplicates: int = Field(description="items repeating a text of the same request")
    text_sha256: list[str] = Field(description="each item's text hash, in order: what DELETE "
                                               "takes")


class FeedbackStats(Open):
    total: int
    by_label: dict[str, int]
    by_category: dict[str, int]
    by_day: dict[str, int]


class FeedbackDeleted(BaseModel):
    deleted: int = Field(description="texts whose items were removed")
