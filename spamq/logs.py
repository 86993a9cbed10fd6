"""Logging set-up, done once in each entry point: one line per record, text or JSON.

Every record about a job carries its id: code working on a job runs inside
``job_context(job_id)`` (or passes ``extra={"job_id": ...}``), and a filter copies the id
onto each record, so ``grep <job id>`` over all logs finds every line about that job.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_TEXT = "%(asctime)s %(levelname)s %(process)d %(name)s [job=%(job_id)s]: %(message)s"
_job_id: ContextVar[str | None] = ContextVar("spamq_job_id", default=None)


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Log records made inside carry ``job_id``."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


class JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = _job_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, pid, job_id, message (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "job_id": None if (jid := getattr(record, "job_id", "-")) == "-" else jid,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def make_handler(fmt: str) -> logging.Handler:
    handler = logging.StreamHandler()
    handler.addFilter(JobIdFilter())
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter(_TEXT)
    handler.setFormatter(formatter)
    return handler


def configure_logging(level: int = logging.INFO, fmt: str | None = None) -> None:
    """Install one handler on the root logger (once per process)."""
    root = logging.getLogger()
    if any(isinstance(f, JobIdFilter) for h in root.handlers for f in h.filters):
        return
    if fmt is None:
        from spamq.settings import get_settings

        fmt = get_settings().log_format
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(make_handler(fmt))
    root.setLevel(level)
