"""Submitting a store job: ``{"hdfs_input", "hdfs_output", "column", ...}`` checked against the
key's area, listed, sniffed and planned, stored, and its first work queued.

The input (a file, a directory of part files, or a glob) is listed, its header or schema
sniffed and its splits planned here, reading no more than headers and Parquet footers; the
workers read their splits straight from the store and write the parts
(worker/split_tasks.py). The API calls :meth:`StoreJobPlanner.submit`; the artifact store is
the app's one client (:class:`SharedArtifacts`).

A key reads and writes only under its own prefixes (spamq/storage/tenancy.py). Errors never
quote a file's contents, list a directory or show where the store lives; store failures are
logged, and the client gets a 503.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Protocol

from spamq.errors import InvalidRequest, Unavailable
from spamq.jobs.model import Job
from spamq.jobs.queue import PLAN_STORE_JOB, send_refill, send_work
from spamq.jobs.schema import output_key
from spamq.jobs.store import JobStore
from spamq.jobs.store_jobs import SUCCESS, StoreJobs, success_record
from spamq.settings import Settings
from spamq.storage import splits, tenancy
from spamq.storage.artifacts import (
    ArtifactError,
    ArtifactStore,
    ArtifactSymlink,
    artifact_store_from_settings,
)
from spamq.storage.estimate import estimate_rows

logger = logging.getLogger(__name__)

# How many directories under an hdfs_output are looked into for files of another output.
OUTPUT_WALK_DIRS = 256


class StoreJobRequest(Protocol):
    """What a store job asks for (api/requests.py's ``StoreJob`` has these, typed and checked)."""

    @property
    def hdfs_input(self) -> str: ...
    @property
    def hdfs_output(self) -> str: ...
    @property
    def column(self) -> str: ...
    @property
    def id_column(self) -> str | None: ...
    @property
    def keep_columns(self) -> Sequence[str]: ...
    @property
    def format(self) -> str | None: ...
    @property
    def output_format(self) -> str | None: ...

    def deadline(self) -> float | None: ...


class SharedArtifacts:
    """The app's one artifact store client, built on first use (nothing connects when the app
    is built) and reused by every request after. If it cannot be built (misconfigured), the
    request gets a 503 and the next one tries again."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store: ArtifactStore | None = None
        self._lock = threading.Lock()

    def get(self) -> ArtifactStore:
        with self._lock:
            if self._store is None:
                try:
                    self._store = artifact_store_from_settings(self._settings)
                except Exception as exc:  # noqa: BLE001 - misconfiguration: logged, a 503
                    logger.error("no artifact store is usable: %s", exc)
                    raise Unavailable(public_message="the artifact store is not available") \
                        from exc
            return self._store


@dataclass(frozen=True)
class _Plan:
    files: list[splits.InputFile]
    pieces: list[Any]  # the splits (spamq/storage/splits.py)
    here: bool  # planned in the request (else by the plan task)
    header: Any  # the sniffed CSV header (None: Parquet or JSONL, or planned by the plan task)


class StoreJobPlanner:
    """Store jobs as a service: the API hands it a checked request, it answers the job."""

    def __init__(self, settings: Settings, jobs: JobStore, artifacts: SharedArtifacts) -> None:
        self._settings, self._jobs, self._artifacts = settings, jobs, artifacts

    def submit(self, request: StoreJobRequest, *, send_task: Any, owner: str | None,
               idempotency_key: str | None, request_sha: str,
               subscribe: Callable[[str], None] = lambda _: None) -> Job:
        """Check the paths, list and plan the job, store it and queue its first work; its
        ``deadline`` holds like any job's (a split picked up after it is skipped and the job
        expires). A submission answered with an error leaves no job behind. A job with
        nothing to score is done once its ``_SUCCESS`` is written, not before."""
        settings, store = self._settings, self._artifacts.get()
        allowed = tenancy.prefixes(owner, tenant_root=settings.store_tenant_root,
                                   grants=settings.store_grants)
        src = _path(request.hdfs_input, "hdfs_input", allowed)
        out = _path(request.hdfs_output, "hdfs_output", allowed)
        plan = self._plan(store, request, src, out, allowed)
        parquet = plan.files[0].fmt == "parquet"
        spec = {"column": request.column, "id_column": request.id_column,
                "keep_columns": list(request.keep_columns), "header": plan.header,
                "output_format": request.output_format or ("parquet" if parquet else "jsonl")}
        quote_pass = any(splits.needs_quote_count(plan.files[s.file]) for s in plan.pieces)
        store_jobs = StoreJobs(self._jobs)
        job, first = store_jobs.create(
            plan.files, plan.pieces, spec, queue=settings.bulk_queue, owner=owner,
            idempotency_key=idempotency_key, output=out, deadline=request.deadline(),
            window=settings.bulk_window_chunks, quote_pass=quote_pass, request_sha=request_sha,
            est_rows=estimate_rows(store, plan.files,
                                   bytes_per_row=settings.store_est_bytes_per_row,
                                   expansion=settings.store_est_expansion,
                                   trailers_max=settings.plan_footers_max_files),
            planning=not plan.here, park=True)
        try:
            subscribe(job.id)  # its webhook, before the first work is sent
            if quote_pass or not plan.here:
                send_task(PLAN_STORE_JOB, args=[job.id], queue=settings.bulk_queue)
            send_work(send_task, job, first)
            send_refill(send_task, self._jobs, owner, settings)  # parked: within the window
            if plan.here and not plan.pieces:
                job = self._finish_empty(store, job, plan.files)
        except BaseException:
            store_jobs.discard_quietly(job.id, owner, idempotency_key, out)
            raise
        logger.info("store job: %d file(s), %s%s", len(plan.files),
                    f"{len(plan.pieces)} split(s)" if plan.here else "planned by the plan task",
                    ", quote pass first" if quote_pass else "", extra={"job_id": job.id})
        return job

    def _plan(self, store: ArtifactStore, request: StoreJobRequest, src: str, out: str,
              allowed: list[str]) -> _Plan:
        settings = self._settings
        try:  # an InputError names the request field at fault: a 422 (api/errors.py)
            files = splits.list_input(store, src, fmt=request.format)
            splits.check_file_count(files, min(settings.max_input_files,
                                               settings.max_splits_per_job))
            here = _plan_here(store, files, settings)
            header = splits.sniff(store, files[0], column=request.column,
                                  id_column=request.id_column,
                                  keep_columns=tuple(request.keep_columns)) if here else None
            _check_output(store, out, allowed, self._jobs)
            plan = splits.plan_job_input(
                store, files, split_bytes=settings.split_bytes,
                max_splits=settings.max_splits_per_job,
                footers_max_files=settings.plan_footers_max_files) if here else []
        except ArtifactError as exc:  # a missing or existing file here is the store failing too
            raise Unavailable(f"artifact store, for a store job: {exc}",
                              public_message=ArtifactError.public_message) from exc
        return _Plan(files, plan, here, header)

    def _finish_empty(self, store: ArtifactStore, job: Job,
                      files: list[splits.InputFile]) -> Job:
        """Nothing to score: ``_SUCCESS`` first, then the job (running until now) is done, so
        a client that sees ``done`` finds ``_SUCCESS``."""
        store.write_bytes_atomic(f"{job.output}/{SUCCESS}", success_record(job, files))
        self._jobs.jobs.output_done(job.id)
        return self._jobs.jobs.get(job.id)


def _path(value: str, field: str, allowed: list[str]) -> str:
    try:
        path = tenancy.store_path(value)
    except (ValueError, ArtifactError) as exc:
        raise InvalidRequest(field, f"'{field}' is not a usable path: {exc}") from exc
    if not tenancy.allowed(path, allowed):
        raise InvalidRequest(field, f"'{field}' is outside this key's store area "
                             f"({', '.join(p + '/' for p in allowed)})", status=403)
    return path


def _check_output(store: ArtifactStore, out: str, allowed: list[str],
                 jobs: JobStore | None = None) -> None:
    """``out`` must be a directory to be, away from every other job's output: no parent is a
    file or another job's output directory (reserved in Redis, or complete with ``_SUCCESS``),
    it holds no file itself, no directory below it is another job's output, and no component
    is a symlink."""
    try:
        _check_output_tree(store, out, allowed, jobs)
    except ArtifactSymlink as exc:
        raise InvalidRequest("hdfs_output", "'hdfs_output' goes through a symlink in the "
                             "artifact store; symlinks are refused") from exc


def _check_output_tree(store: ArtifactStore, out: str, allowed: list[str],
                       jobs: JobStore | None) -> None:
    if store.size(out) is not None:
        raise InvalidRequest("hdfs_output", "'hdfs_output' is a file, not a directory")
    parents: list[str] = []
    for up in PurePosixPath(out).parents:
        if str(up) == "." or not tenancy.allowed(str(up), allowed):
            break
        parents.append(str(up))
    reserved = _reserved_outputs(jobs, parents)
    for parent in parents:
        if store.size(parent) is not None:
            raise InvalidRequest("hdfs_output", "'hdfs_output' lies under a file")
        if parent in reserved or store.size(f"{parent}/{SUCCESS}") is not None:
            raise InvalidRequest("hdfs_output", "'hdfs_output' lies inside another job's "
                                 "output directory; name a directory outside it", status=409)
    present = [name for name, st in store.list_status(out) if st.type == "file"]
    if present:  # our parts would mix with another output's files (Hadoop refuses too)
        raise InvalidRequest(
            "hdfs_output", f"'hdfs_output' already holds {len(present)} file(s); name a new "
            "directory, or resume its job with the same Idempotency-Key", status=409)
    if _output_below(store, out, jobs):
        raise InvalidRequest("hdfs_output", "'hdfs_output' holds another job's output in a "
                             "subdirectory; name a new directory", status=409)


def _reserved_outputs(jobs: JobStore | None, paths: list[str]) -> set[str]:
    """Those of ``paths`` that a job (not expired) has reserved as its output, in one trip."""
    if jobs is None or not paths:
        return set()
    pipe = jobs.redis.pipeline(transaction=False)
    for path in paths:
        pipe.exists(output_key(path))
    return {path for path, n in zip(paths, pipe.execute(), strict=True) if n}


def _output_below(store: ArtifactStore, out: str, jobs: JobStore | None) -> bool:
    """Whether a directory below ``out``, at any depth, is another job's output (it holds
    ``_SUCCESS``, or a job has reserved it); a tree of more than OUTPUT_WALK_DIRS directories
    counts as holding one (no new output looks like that). Other files below ``out`` are left
    to the job's own writes, which never replace a directory."""
    todo = [f"{out}/{name}" for name, st in store.list_status(out) if st.type == "dir"]
    seen: list[str] = []
    while todo:
        if len(seen) >= OUTPUT_WALK_DIRS:
            return True
        here = todo.pop()
        seen.append(here)
        entries = store.list_status(here)
        if any(st.type == "file" and name == SUCCESS for name, st in entries):
            return True
        todo += [f"{here}/{name}" for name, st in entries if st.type == "dir"]
    return bool(_reserved_outputs(jobs, seen))


def _plan_here(store: ArtifactStore, files: list[splits.InputFile], settings: Settings) -> bool:
    """Whether the request plans the job (else the plan task does): not when a Parquet
    input's footers (those the plan reads, or the first file's, which sniff reads) hold more
    than ``plan_footers_max_bytes``; to know, the request reads each file's last 8 bytes."""
    if files[0].fmt != "parquet" or not files[0].size:
        return True
    footers = len(files) <= settings.plan_footers_max_files
    probed = [f for f in (files if footers else files[:1]) if f.size]
    return sum(splits.parquet_footer_bytes(store, f) for f in probed) \
        <= settings.plan_footers_max_bytes
