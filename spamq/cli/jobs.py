"""The ``spamq`` commands that call a running API, through :mod:`spamq.client`: ``demo``,
``score`` and ``me`` (``spamq feedback``: spamq/cli/feedback.py). The key is
SPAMQ_CLIENT_API_KEY; ``--url`` defaults to the API's host and port in the settings."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import requests

from spamq.client import ApiError, Client, JobEnded, WaitTimeout


def client(args: argparse.Namespace) -> Client:
    return Client.from_settings(args.url, timeout=args.timeout)


def _demo(args: argparse.Namespace) -> int:
    """Score the sample messages through the job API: submit, then wait until done."""
    from spamq.samples import SAMPLES

    api = client(args)
    try:
        job = api.wait(api.submit(SAMPLES)["id"], timeout=args.timeout, poll=0.1)
    except (JobEnded, WaitTimeout) as exc:
        print(f"spamq demo: {exc}", file=sys.stderr)
        return 1
    except (ApiError, requests.RequestException) as exc:
        print(f"spamq demo: cannot score through {api.url}: {exc}", file=sys.stderr)
        return 1
    print(f"job {job['id']} scored by model {job['model_version']}:")
    for text, r in zip(SAMPLES, job["results"], strict=True):
        print(f"  {r['label']:<4}  p(spam)={r['spam_probability']:.4f}  {text[:70]}")
    return 0


def _me(args: argparse.Namespace) -> int:
    """Print ``GET /v1/me``: this key's id, store area and grants, quotas and current use."""
    api = client(args)
    try:
        print(json.dumps(api.me(), indent=2))
    except (ApiError, requests.RequestException) as exc:
        print(f"spamq me: {exc}", file=sys.stderr)
        return 1
    return 0


def _idempotency_key(args: argparse.Namespace, source: Path | None) -> str:
    """The sha256 of the input (a local file's bytes, or the store path) and the columns: the
    same command run again attaches to the same job."""
    digest = hashlib.sha256()
    if source is None:
        digest.update(args.input.encode())
    else:
        with open(source, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    digest.update(b"\0" + args.column.encode())
    if args.id_column:
        digest.update(b"\0" + args.id_column.encode())
    return "spamq-score-" + digest.hexdigest()


def _score(args: argparse.Namespace) -> int:
    """Score a CSV/TSV/JSONL file, or an ``hdfs://`` file, directory or glob, through the API,
    with a progress bar; resumable.

    The Idempotency-Key is the sha256 of the input and the column, so running the same
    command again (after a crash, a Ctrl-C, a failed or cancelled job) attaches to the same
    job, and the API re-sends only the unscored splits.
    """
    remote = args.input.startswith("hdfs://")
    source = None if remote else Path(args.input)
    if remote and not (args.output or "").startswith("hdfs://"):
        print("spamq score: an hdfs:// input needs --output hdfs://DIR (results stay in the "
              "store)", file=sys.stderr)
        return 2
    if source is not None and not source.is_file():
        print(f"spamq score: no file {source}", file=sys.stderr)
        return 2
    api = client(args)
    try:
        job, where = _score_job(api, args, source)
    except JobEnded as exc:  # failed, cancelled and expired jobs alike: the API resumes them
        print(f"spamq score: {exc} (run the same command again to resume it)", file=sys.stderr)
        return 1
    except (ApiError, requests.RequestException, OSError) as exc:
        print(f"spamq score: {exc}", file=sys.stderr)
        return 1
    print(f"{job['progress']['done']} rows scored, {job['rejected']} rejected -> {where}")
    return 0


def _score_job(api: Client, args: argparse.Namespace, source: Path | None
               ) -> tuple[dict[str, Any], str]:
    """Submit (or attach to) the job, wait for it, download a local file's results: the
    ended job and where its results are."""
    key = _idempotency_key(args, source)
    extra = {"id_column": args.id_column} if args.id_column else {}
    if source is None:
        created = api.submit_store(args.input.removeprefix("hdfs://"),
                                   args.output.removeprefix("hdfs://"), column=args.column,
                                   idempotency_key=key, **extra)
    else:
        created = api.upload(source, column=args.column, idempotency_key=key,
                             progress=not args.no_progress, **extra)
    if created.get("existing"):
        print(f"resuming job {created['id']}", file=sys.stderr)
    job = api.wait(created["id"], poll=args.poll, max_poll=max(args.poll, 2.0),
                   progress=not args.no_progress)
    if source is None:
        return job, f"hdfs://{job['output']} (parts, _rejected/, _SUCCESS)"
    out = Path(args.output) if args.output else source.with_name(source.stem + ".scored.jsonl")
    fmt = "csv" if out.suffix.lower() in (".csv", ".tsv") else "jsonl"
    api.download(job["id"], out, fmt=fmt, progress=not args.no_progress)
    if job["rejected"]:
        api.download_rejected(job["id"], out.with_name(out.name + ".rejected.jsonl"))
    return job, str(out)


def add_client_parsers(sub: Any) -> None:
    """``spamq demo``, ``spamq score`` and ``spamq me``."""
    p = sub.add_parser("demo", help="score the sample messages through a running API")
    p.add_argument("--url", default=None, help="API base URL (default: from settings)")
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(func=_demo)

    p = sub.add_parser("score", help="score a CSV/TSV/JSONL file through the API (resumable)")
    p.add_argument("input", help="the file to score, or hdfs://PATH (a file, directory or glob "
                   "in the artifact store)")
    p.add_argument("--output", help="where to write results (.jsonl or .csv; default: "
                   "INPUT.scored.jsonl); for an hdfs:// input: hdfs://DIR")
    p.add_argument("--url", default=None, help="API base URL (default: from settings)")
    p.add_argument("--column", default="text", help="the column (or JSON key) holding the text")
    p.add_argument("--id-column", help="a column copied into every result row (to join back)")
    p.add_argument("--poll", type=float, default=0.5, help="first pause between progress polls")
    p.add_argument("--timeout", type=float, default=120.0, help="per HTTP call")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_score)

    p = sub.add_parser("me", help="this API key's id, store area, grants, quotas and use")
    p.add_argument("--url", default=None, help="API base URL (default: from settings)")
    p.add_argument("--timeout", type=float, default=30.0, help="per HTTP call")
    p.set_defaults(func=_me)
