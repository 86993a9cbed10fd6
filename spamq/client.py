"""A small Python client of the spamq HTTP API (``requests``; progress bars with ``tqdm``).

    from spamq.client import Client

    api = Client("http://127.0.0.1:8000", api_key="...")
    job = api.submit(["WINNER!! claim your prize", "see you at 6"])
    api.wait(job["id"])
    for row in api.results(job["id"]):
        print(row["label"], row["spam_probability"])

    job = api.upload("messages.csv", column="text")       # a file: a store job, with progress
    api.wait(job["id"], progress=True)
    api.download(job["id"], "messages.scored.jsonl")        # the results file, with progress
    print(api.me()["store"]["area"])                        # tenants/<key id>/

Every error answer of the API (``{"error", "field", "message"}``) is raised as an
:class:`ApiError` subclass chosen by its status (:class:`InvalidRequest`, :class:`NotFound`,
:class:`RateLimited`, ...), with its ``field`` and ``message``; a job that ends other than
``done`` is a :class:`JobEnded` from :meth:`Client.wait`.
"""

from __future__ import annotations

import io
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import requests

from spamq.jobs.schema import DONE, should_stop


class ApiError(Exception):
    """An error answer of the API: ``status`` (HTTP), ``error`` (its code), ``field`` (the
    request field at fault, if any), ``message`` and the whole ``body``."""

    def __init__(self, status: int, body: dict[str, Any], retry_after: float | None = None
                 ) -> None:
        self.status, self.body, self.retry_after = status, body, retry_after
        self.error = str(body.get("error") or "http_error")
        self.field: str | None = body.get("field")
        self.message = str(body.get("message") or f"HTTP {status}")
        where = f" ({self.field})" if self.field else ""
        super().__init__(f"{status} {self.error}{where}: {self.message}")


class InvalidRequest(ApiError):
    """400, 413, 422: the request is at fault; ``field`` names what (e.g. ``texts[3]``)."""


class Unauthorized(ApiError):
    """401: no key, or one the service does not accept."""


class Forbidden(ApiError):
    """403: e.g. a store path outside the key's area (see :meth:`Client.me`)."""


class NotFound(ApiError):
    """404: no such job (or another key's, or expired)."""


class Conflict(ApiError):
    """409: e.g. cancelling a job that has ended, or an Idempotency-Key reused differently."""


class RateLimited(ApiError):
    """429: the key's rate, rows or queue share; ``retry_after`` says when to try again."""


class Unavailable(ApiError):
    """503: Redis, the queue or the artifact store is unreachable."""


class Timeout(ApiError):
    """504: a synchronous predict did not finish in time."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: InvalidRequest, 422: InvalidRequest, 429: RateLimited, 503: Unavailable, 504: Timeout}


class JobEnded(Exception):
    """:meth:`Client.wait`: the job ended ``failed``, ``cancelled`` or ``expired``."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        super().__init__(f"job {job.get('id')} is {job.get('status')}: {job.get('error')}")


class WaitTimeout(Exception):
    """:meth:`Client.wait`: the job had not ended within the time given."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        super().__init__(f"job {job.get('id')} is still {job.get('status')}")


def error_for(resp: requests.Response) -> ApiError:
    """The typed error of a non-2xx answer."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"error": "http_error", "message": resp.reason or f"HTTP {resp.status_code}"}
    retry = resp.headers.get("Retry-After")
    retry_after = float(retry) if retry and retry.isdigit() else None
    return _BY_STATUS.get(resp.status_code, ApiError)(resp.status_code, body, retry_after)


class Client:
    """The spamq API at ``url``, with ``api_key`` sent as ``X-API-Key``; ``timeout`` is per
    HTTP call."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 60.0,
                 session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = session or requests.Session()
        self._key_header = {"X-API-Key": api_key} if api_key else {}

    @classmethod
    def from_settings(cls, url: str | None = None, *, timeout: float = 60.0) -> Client:
        """A client of ``url`` (default: the API's host and port in the settings) with the
        key in ``SPAMQ_CLIENT_API_KEY``."""
        from spamq.settings import get_settings

        s = get_settings()
        key = s.client_api_key.get_secret_value() if s.client_api_key is not None else None
        return cls(url or f"http://{s.api_host}:{s.api_port}", key, timeout=timeout)

    # --- plumbing ---

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call; a non-2xx answer raises its :class:`ApiError`."""
        kwargs.setdefault("timeout", self.timeout)
        kwargs["headers"] = {**self._key_header, **(kwargs.get("headers") or {})}
        resp = self.http.request(method, self.url + path, **kwargs)
        if resp.status_code >= 400:
            raise error_for(resp)
        return resp

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # --- the key ---

    def me(self) -> dict[str, Any]:
        """``GET /v1/me``: this key's id, store area and grants, quotas and current use."""
        found: dict[str, Any] = self._json("GET", "/v1/me")
        return found

    # --- jobs ---

    def submit(self, texts: list[str], *, idempotency_key: str | None = None,
               **fields: Any) -> dict[str, Any]:
        """``POST /v1/jobs`` with ``texts`` (and ``deadline_s``, ``webhook``, ...): the
        accepted job (``id``, ``status``, ``status_url``, ...)."""
        return self._submit(json={"texts": texts, **fields}, idempotency_key=idempotency_key)

    def submit_store(self, hdfs_input: str, hdfs_output: str, *, column: str = "text",
                     idempotency_key: str | None = None, **fields: Any) -> dict[str, Any]:
        """A store job over files already in the artifact store (under this key's area)."""
        body = {"hdfs_input": hdfs_input, "hdfs_output": hdfs_output, "column": column, **fields}
        return self._submit(json=body, idempotency_key=idempotency_key)

    def upload(self, path: str | os.PathLike[str], *, column: str = "text",
               idempotency_key: str | None = None, progress: bool = False,
               **fields: Any) -> dict[str, Any]:
        """Upload a CSV/TSV/JSONL file as a store job (``id_column``, ``keep_columns``,
        ``format``... as form fields), with an upload progress bar when ``progress``."""
        form = {"column": column, **{k: str(v) for k, v in fields.items() if v is not None}}
        body = _Multipart(Path(path), form, progress=progress)
        try:
            return self._submit(data=body, idempotency_key=idempotency_key,
                                extra_headers={"Content-Type": body.content_type})
        finally:
            body.close()

    def _submit(self, *, idempotency_key: str | None,
                extra_headers: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
        headers = dict(extra_headers or {})
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        found: dict[str, Any] = self._json("POST", "/v1/jobs", headers=headers, **kwargs)
        return found

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/jobs/<id>``: the job's status, progress, rate and (small jobs) results."""
        found: dict[str, Any] = self._json("GET", f"/v1/jobs/{job_id}")
        return found

    def cancel(self, job_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._json("DELETE", f"/v1/jobs/{job_id}")
        return found

    def wait(self, job_id: str, *, timeout: float | None = None, poll: float = 0.1,
             max_poll: float = 2.0, progress: bool = False,
             on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll the job until it ends, the pause growing from ``poll`` to ``max_poll`` (x1.5
        each time), or as long as a 429's Retry-After says. Returns the ``done`` job view;
        :class:`JobEnded` when it ended otherwise, :class:`WaitTimeout` past ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = _ProgressBar(progress)
        pause, job = poll, self.job(job_id)
        try:
            while True:
                bar.update(job)
                if on_update is not None:
                    on_update(job)
                if should_stop(job["status"]):
                    break
                if deadline is not None and time.monotonic() + pause > deadline:
                    raise WaitTimeout(job)
                time.sleep(pause)
                pause = min(max_poll, pause * 1.5)
                try:
                    job = self.job(job_id)
                except RateLimited as exc:  # wait as long as the API asks, then go on
                    time.sleep(exc.retry_after or max_poll)
        finally:
            bar.close()
        if job["status"] != DONE:
            raise JobEnded(job)
        return job

    def results(self, job_id: str, *, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every result row of the job, a page (``?offset=&limit=``) at a time."""
        path: str | None = f"/v1/jobs/{job_id}/results?offset=0&limit={page_size}"
        while path:
            page = self._json("GET", path)
            yield from page["results"]
            path = page["next"]

    def download(self, job_id: str, path: str | os.PathLike[str], *, fmt: str = "jsonl",
                 progress: bool = False) -> Path:
        """Stream all the job's results (``jsonl`` or ``csv``) into ``path`` (written whole
        or not at all: a ``.partial`` file is renamed at the end), with a progress bar."""
        return self._save(f"/v1/jobs/{job_id}/results?format={fmt}", Path(path), progress)

    def download_rejected(self, job_id: str, path: str | os.PathLike[str], *,
                          progress: bool = False) -> Path:
        """A store job's rejected rows (JSONL) into ``path``."""
        return self._save(f"/v1/jobs/{job_id}/rejected", Path(path), progress)

    def _save(self, url_path: str, out: Path, progress: bool) -> Path:
        from tqdm import tqdm

        partial = out.with_name(out.name + ".partial")
        with self.request("GET", url_path, stream=True) as resp, open(partial, "wb") as fh, \
                tqdm(unit="B", unit_scale=True, desc=out.name, disable=not progress) as bar:
            for block in resp.iter_content(1 << 16):
                fh.write(block)
                bar.update(len(block))
        partial.replace(out)
        return out

    # --- feedback ---

    def feedback(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /v1/feedback``: items of ``{"text", "label"}`` or ``{"job_id", "index",
        "label"}`` (``category``, ``note`` optional); ``accepted`` and ``duplicates``."""
        found: dict[str, Any] = self._json("POST", "/v1/feedback", json={"items": items})
        return found

    def feedback_stats(self) -> dict[str, Any]:
        found: dict[str, Any] = self._json("GET", "/v1/feedback/stats")
        return found

    def feedback_delete(self, text_sha256: str | None = None) -> dict[str, Any]:
        """Delete this key's feedback: all of it, or the items of one text."""
        params = {"text_sha256": text_sha256} if text_sha256 else {}
        found: dict[str, Any] = self._json("DELETE", "/v1/feedback", params=params)
        return found


class _ProgressBar:
    """A job's progress as a tqdm bar: input bytes for a store job, rows for texts."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None

    def update(self, job: dict[str, Any]) -> None:
        if not self._enabled:
            return
        from tqdm import tqdm

        p = job.get("progress") or {}
        by_bytes = bool(p.get("bytes_total"))
        if self._bar is None:
            self._bar = tqdm(total=p.get("bytes_total") if by_bytes else p.get("total"),
                             unit="B" if by_bytes else "row", unit_scale=by_bytes)
        self._bar.n = p.get("bytes_done", 0) if by_bytes else p.get("done", 0)
        self._bar.set_postfix(rows=p.get("done"), status=job.get("status"), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _Multipart:
    """A ``multipart/form-data`` body read from the file as it is sent, with a known length
    (so it goes with a Content-Length, not chunked) and an upload progress bar."""

    def __init__(self, path: Path, form: dict[str, str], *, progress: bool) -> None:
        from tqdm import tqdm

        self.boundary = "spamq-" + secrets.token_hex(16)
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quoted(k)}"\r\n\r\n'
            .encode() + v.encode() + b"\r\n" for k, v in form.items())
        head += (f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="{_quoted(path.name)}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n").encode()
        tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._length = len(head) + path.stat().st_size + len(tail)
        self._parts: list[BinaryIO] = [io.BytesIO(head), open(path, "rb"), io.BytesIO(tail)]
        self._bar = tqdm(total=self._length, unit="B", unit_scale=True, desc=path.name,
                         disable=not progress)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        while block := self.read():
            yield block

    def read(self, size: int = -1) -> bytes:
        size = 1 << 16 if size is None or size < 0 else size
        while self._parts:
            block = self._parts[0].read(size)
            if block:
                self._bar.update(len(block))
                return block
            self._parts.pop(0).close()
        return b""

    def close(self) -> None:
        for part in self._parts:
            part.close()
        self._parts = []
        self._bar.close()


def _quoted(name: str) -> str:
    """A form field or file name inside a quoted header value."""
    return name.replace("\\", "\\\\").replace('"', "%22").replace("\r", " ").replace("\n", " ")
