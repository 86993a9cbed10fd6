"""What the job store hands out: a job's record, its chunks, a task's claim, a key's load,
and the errors a submission may meet (spamq/jobs/store.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from spamq.errors import InvalidRequest, SpamqError
from spamq.jobs.schema import ENDED


class Load(NamedTuple):
    """What a submission is admitted by (api/limits.py; schema.ADMISSION)."""

    depth: int  # messages waiting in the queues asked about
    pieces: int  # the key's chunks and splits sent and not yet stored: its share of the queue
    pending_rows: int  # the key's rows not yet scored (a store job's: estimated, then measured)
    interactive_rows: int  # those of them in jobs on the interactive queue
    active_keys: int  # keys that submitted lately, the caller included


class Claim(NamedTuple):
    """What a task reads when it takes a chunk (Results.claim, spamq/jobs/results.py)."""

    status: str | None  # before the claim; None: no such job
    texts: list[str]
    deadline: float | None  # unix time
    owner: str = ""  # the API key id that submitted the job (the batcher serves keys in turn)


class DuplicateJob(SpamqError):
    """An Idempotency-Key already names a job: ``job_id`` (the API answers with that job)."""

    http_status = 409
    code = "conflict"
    public_message = "this Idempotency-Key already names a job"

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class OutputTaken(InvalidRequest):
    """Another job has reserved this output directory (``output``: for the log only)."""

    def __init__(self, output: str) -> None:
        super().__init__("hdfs_output", "'hdfs_output' is reserved by another job (running, or "
                         "written within the retention); name a new directory", status=409)
        self.output = output


@dataclass(frozen=True)
class Chunk:
    """A slice ``[start, stop)`` of a job's texts, scored by one task."""

    index: int
    start: int
    stop: int


@dataclass(frozen=True)
class Job:
    id: str
    status: str
    total: int
    done: int
    chunks_total: int
    chunks_done: int
    chunks_failed: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    model_version: str | None
    error: str | None
    queue: str
    chunk_size: int = 0
    rejected: int = 0
    owner: str | None = None  # the API key id that submitted it
    deadline: float | None = None  # epoch seconds; chunks not scored by then are skipped
    output: str = ""  # artifact-store directory the worker writes part files to ('' = none)
    chunks_sent: int = 0  # chunks sent to the queue so far (a bulk job sends a window)
    progress_at: float | None = None  # when a chunk was last stored (or the job started)
    request_sha: str = ""  # the submission's fingerprint (an Idempotency-Key's body)
    kind: str = "texts"  # "texts": texts and results in Redis; "store": splits of store files
    bytes_total: int = 0  # store jobs: input bytes, and those of the splits scored so far
    bytes_done: int = 0

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Job:
        def ts(name: str) -> float | None:
            return float(raw[name]) if raw.get(name) else None

        return cls(
            id=raw["id"],
            status=raw["status"],
            total=int(raw["total"]),
            done=int(raw["done"]),
            chunks_total=int(raw["chunks_total"]),
            chunks_done=int(raw["chunks_done"]),
            chunks_failed=int(raw.get("chunks_failed") or 0),
            created_at=float(raw["created_at"]),
            started_at=ts("started_at"),
            finished_at=ts("finished_at"),
            model_version=raw.get("model_version") or None,
            error=raw.get("error") or None,
            queue=raw.get("queue", ""),
            chunk_size=int(raw.get("chunk_size") or 0),
            rejected=int(raw.get("rejected") or 0),
            owner=raw.get("owner") or None,
            deadline=ts("deadline"),
            output=raw.get("output") or "",
            chunks_sent=int(raw.get("chunks_sent") or raw["chunks_total"]),
            progress_at=ts("progress_at"),
            request_sha=raw.get("request_sha") or "",
            kind=raw.get("kind") or "texts",
            bytes_total=int(raw.get("bytes_total") or 0),
            bytes_done=int(raw.get("bytes_done") or 0),
        )

    @property
    def finished(self) -> bool:
        return self.status in ENDED

    @property
    def input_rows(self) -> int:
        return self.total + self.rejected


def chunk_plan(total: int, chunk_size: int) -> list[Chunk]:
    """Split ``total`` items into consecutive chunks of at most ``chunk_size``."""
    return [
        Chunk(i, start, min(start + chunk_size, total))
        for i, start in enumerate(range(0, total, chunk_size))
    ]
