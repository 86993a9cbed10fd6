"""The ``spamq`` command: train, worker, api, demo (and models/secrets where present)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

from spamq.settings import get_settings


def _exec(argv: list[str]) -> int:
    """Replace this process with ``argv`` (so signals reach the server directly)."""
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # pragma: no cover


def _worker(args: argparse.Namespace) -> int:
    s = get_settings()
    queues = args.queues or f"{s.interactive_queue},{s.bulk_queue}"
    argv = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        f"--pool={s.worker_pool}", f"--concurrency={s.worker_concurrency}",
        f"--queues={queues}", f"--hostname={args.name}", "--loglevel=INFO",
        "--events", "--without-gossip", "--without-mingle",
    ]
    return _exec(argv)


def _api(args: argparse.Namespace) -> int:
    s = get_settings()
    argv = [
        sys.executable, "-m", "gunicorn", "api.wsgi:app", f"--bind={s.api_host}:{s.api_port}",
        f"--workers={s.api_workers}", "--worker-class=gthread", f"--threads={s.api_threads}",
        f"--timeout={int(s.predict_timeout_s) + 30}", "--access-logfile=-",
    ]
    return _exec(argv)


def _http_json(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _demo(args: argparse.Namespace) -> int:
    """Score the sample messages through the job API: POST, then poll until done."""
    from spamq.samples import SAMPLES

    base = args.url.rstrip("/")
    try:
        created = _http_json(f"{base}/v1/jobs", {"texts": SAMPLES})
        deadline = time.monotonic() + args.timeout
        while True:
            job = _http_json(base + created["status_url"])
            if job["status"] in ("done", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    except (urllib.error.URLError, OSError) as exc:
        print(f"spamq demo: cannot reach {base}: {exc}", file=sys.stderr)
        return 1
    if job["status"] != "done":
        print(f"spamq demo: job {job['id']} is {job['status']}: {job.get('error')}", file=sys.stderr)
        return 1
    print(f"job {job['id']} scored by model {job['model_version']}:")
    for text, r in zip(SAMPLES, job["results"], strict=True):
        print(f"  {r['label']:<4}  p(spam)={r['spam_probability']:.4f}  {text[:70]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spamq", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    from spamq import training

    p = sub.add_parser("train", help="train the classifier and write a model directory")
    training.add_arguments(p)
    p.set_defaults(func=training.run)

    p = sub.add_parser("worker", help="run a Celery worker serving the model")
    p.add_argument("--queues", help="comma-separated queues (default: interactive and bulk)")
    p.add_argument("--name", default="spamq@%h", help="Celery node name")
    p.set_defaults(func=_worker)

    p = sub.add_parser("api", help="run the HTTP API under gunicorn")
    p.set_defaults(func=_api)

    p = sub.add_parser("demo", help="score the sample messages through a running API")
    p.add_argument("--url", default=None, help="API base URL (default: from settings)")
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(func=_demo)

    from spamq.ops_cli import add_models_parser, add_secrets_parser

    add_models_parser(sub)
    add_secrets_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from spamq.logs import configure_logging

    configure_logging()
    args = build_parser().parse_args(argv)
    if getattr(args, "url", "unset") is None:
        s = get_settings()
        args.url = f"http://{s.api_host}:{s.api_port}"
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
