"""The ``spamq`` command: train, worker, api, demo, score (and models/secrets where present)."""

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
    processes = getattr(args, "processes", None) or s.worker_processes

    def argv(name: str) -> list[str]:
        found = [
            sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
            f"--pool={s.worker_pool}", f"--concurrency={s.worker_concurrency}",
            f"--queues={queues}", f"--hostname={name}", "--loglevel=INFO",
            "--without-gossip", "--without-mingle",
        ]
        return found + ["--events"] if s.task_events else found

    if processes == 1:
        return _exec(argv(args.name))
    from spamq.cli import processes as group

    threads = group.threads_per_process(processes, s.torch_threads)
    os.environ["SPAMQ_TORCH_THREADS"] = str(threads)  # the children's environment
    return group.run_group([argv(group.node_name(args.name, k))
                            for k in range(1, processes + 1)])


#: gunicorn's access line without the query string (%(U)s is the path alone; %(r)s and %(q)s
#: would log ``?api_key=...``), the referer or the basic-auth user.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'


def _api(args: argparse.Namespace) -> int:
    import tempfile

    s = get_settings()
    if s.metrics_multiproc_dir is None:  # one /metrics view over every gunicorn worker
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="spamq-metrics-")
    argv = [
        sys.executable, "-m", "gunicorn", "api.wsgi:app", f"--bind={s.api_host}:{s.api_port}",
        f"--workers={s.api_workers}", f"--timeout={int(s.predict_timeout_s) + 30}",
        "--access-logfile=-", f"--access-logformat={ACCESS_LOG_FORMAT}",
    ]
    workers = "api.gunicorn_workers"  # what each adds to gunicorn's, and why gevent
    if s.api_worker_class == "gevent":
        argv += [f"--worker-class={workers}.GeventWorker",
                 f"--worker-connections={s.api_worker_connections}"]
    else:
        argv += [f"--worker-class={workers}.ThreadWorker", f"--threads={s.api_threads}"]
    return _exec(argv)


def _flower(args: argparse.Namespace) -> int:
    """Celery Flower behind basic auth; Redis URL and credentials come from the secret source."""
    from spamq.secrets.service import load_service_secrets

    secrets = load_service_secrets(get_settings(), service="operator")
    if not secrets.flower_basic_auth:
        print("spamq flower: no flower_basic_auth secret (SPAMQ_FLOWER_BASIC_AUTH or Vault); "
              "Flower will not run unauthenticated", file=sys.stderr)
        return 2
    s = secrets.settings
    # The environment, not argv: ps shows argv to every user of the machine.
    os.environ["FLOWER_BASIC_AUTH"] = secrets.flower_basic_auth
    os.environ["SPAMQ_REDIS_URL"] = s.redis_url
    argv = [
        sys.executable, "-m", "celery", "-A", "spamq.jobs.flower_app", "flower",
        f"--address={s.flower_host}", f"--port={s.flower_port}",
    ]
    return _exec(argv)


def _worker_ready(args: argparse.Namespace) -> int:
    """Exit 0 when a worker on this host has a loaded model (a container healthcheck)."""
    import socket

    from spamq.jobs.store import JobStore
    from spamq.secrets.service import load_service_secrets

    s = load_service_secrets(get_settings(), service="worker").settings
    host = socket.gethostname()
    alive = [w for w in JobStore.from_settings(s).workers()
             if str(w.get("name", "")).startswith(host) and w.get("model_version")]
    print(f"{len(alive)} ready worker process(es) on {host}")
    return 0 if alive else 1


def _http_json(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    key = get_settings().client_api_key  # SPAMQ_CLIENT_API_KEY (scripts/run.sh sets a dev key)
    if key is not None:
        headers["X-API-Key"] = key.get_secret_value()
    req = urllib.request.Request(url, data=data, headers=headers)
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
        print(f"spamq demo: job {job['id']} is {job['status']}: {job.get('error')}",
              file=sys.stderr)
        return 1
    print(f"job {job['id']} scored by model {job['model_version']}:")
    for text, r in zip(SAMPLES, job["results"], strict=True):
        print(f"  {r['label']:<4}  p(spam)={r['spam_probability']:.4f}  {text[:70]}")
    return 0


def _score(args: argparse.Namespace) -> int:
    """Score a CSV/TSV/JSONL file, or an ``hdfs://`` file, directory or glob, through the API,
    with a progress bar; resumable.

    The Idempotency-Key is the sha256 of the input (a local file's bytes, or the store path)
    and the column, so running the same command again (after a crash, a Ctrl-C, a failed or
    cancelled job) attaches to the same job, and the API re-sends only the unscored splits.
    """
    import hashlib
    from pathlib import Path

    import requests
    from tqdm import tqdm

    remote = args.input.startswith("hdfs://")
    digest = hashlib.sha256()  # of the input and the column, not of the input alone
    if remote:
        source = None
        digest.update(args.input.encode())
        if not (args.output or "").startswith("hdfs://"):
            print("spamq score: an hdfs:// input needs --output hdfs://DIR (results stay in the "
                  "store)", file=sys.stderr)
            return 2
    else:
        source = Path(args.input)
        if not source.is_file():
            print(f"spamq score: no file {source}", file=sys.stderr)
            return 2
        with open(source, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    digest.update(b"\0" + args.column.encode())
    extra = {"id_column": args.id_column} if args.id_column else {}
    if extra:
        digest.update(b"\0" + args.id_column.encode())
    key = "spamq-score-" + digest.hexdigest()
    if source is not None:
        out = Path(args.output) if args.output else source.with_name(
            source.stem + ".scored.jsonl")
        fmt = "csv" if out.suffix.lower() in (".csv", ".tsv") else "jsonl"
    base = args.url.rstrip("/")
    http = requests.Session()
    api_key = get_settings().client_api_key
    if api_key is not None:
        http.headers["X-API-Key"] = api_key.get_secret_value()
    try:
        if source is None:
            resp = http.post(f"{base}/v1/jobs", headers={"Idempotency-Key": key},
                             json={"hdfs_input": args.input.removeprefix("hdfs://"),
                                   "hdfs_output": args.output.removeprefix("hdfs://"),
                                   "column": args.column, **extra}, timeout=args.timeout)
        else:
            with open(source, "rb") as fh:
                resp = http.post(f"{base}/v1/jobs", files={"file": (source.name, fh)},
                                 data={"column": args.column, **extra},
                                 headers={"Idempotency-Key": key}, timeout=args.timeout)
        if resp.status_code not in (200, 202):
            print(f"spamq score: {resp.status_code} {resp.text.strip()}", file=sys.stderr)
            return 1
        created = resp.json()
        if created.get("existing"):
            print(f"resuming job {created['id']}", file=sys.stderr)
        status_url = base + created["status_url"]
        job = http.get(status_url, timeout=args.timeout).json()
        total = job["progress"].get("bytes_total") or job["progress"]["total"]
        with tqdm(total=total, unit="B" if job["progress"].get("bytes_total") else "row",
                  unit_scale=True, disable=args.no_progress) as bar:
            while True:
                p = job["progress"]
                bar.n = p["bytes_done"] if "bytes_done" in p else p["done"]
                bar.set_postfix(rows=p["done"], status=job["status"], refresh=False)
                bar.refresh()
                if job["status"] in ("done", "failed", "cancelled", "expired"):
                    break
                time.sleep(args.poll)
                job = http.get(status_url, timeout=args.timeout).json()
        if job["status"] != "done":
            # true for failed, cancelled and expired jobs alike: the API resumes them
            print(f"spamq score: job {job['id']} is {job['status']}: {job.get('error')} "
                  "(run the same command again to resume it)", file=sys.stderr)
            return 1
        if source is None:
            print(f"{job['progress']['done']} rows scored, {job['rejected']} rejected -> "
                  f"hdfs://{job['output']} (parts, _rejected/, _SUCCESS)")
            return 0
        partial = out.with_name(out.name + ".partial")
        with http.get(f"{base}{job['results_url']}?format={fmt}", stream=True,
                      timeout=args.timeout) as download, open(partial, "wb") as fh:
            download.raise_for_status()
            for block in download.iter_content(1 << 16):
                fh.write(block)
        partial.replace(out)
        if job["rejected"]:
            with http.get(base + job["rejected_url"], stream=True,
                          timeout=args.timeout) as rejected, open(
                    out.with_name(out.name + ".rejected.jsonl"), "wb") as fh:
                rejected.raise_for_status()
                for block in rejected.iter_content(1 << 16):
                    fh.write(block)
    except (requests.RequestException, OSError) as exc:
        print(f"spamq score: {exc}", file=sys.stderr)
        return 1
    print(f"{job['progress']['done']} rows scored, {job['rejected']} rejected -> {out}")
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
    from spamq.cli.processes import positive_int

    p.add_argument("--processes", type=positive_int, default=None,
                   help="worker processes, each with its own model (default: "
                        "SPAMQ_WORKER_PROCESSES, 1); nodes are named NAME-1 ... NAME-N")
    p.set_defaults(func=_worker)

    p = sub.add_parser("api", help="run the HTTP API under gunicorn")
    p.set_defaults(func=_api)

    p = sub.add_parser("flower", help="run Celery Flower (basic auth) against the workers")
    p.set_defaults(func=_flower)

    p = sub.add_parser("worker-ready", help="exit 0 if a worker on this host has a loaded model")
    p.set_defaults(func=_worker_ready)

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
    p.add_argument("--poll", type=float, default=0.5, help="seconds between progress polls")
    p.add_argument("--timeout", type=float, default=120.0, help="per HTTP call")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_score)

    from spamq.cli.ops import add_keys_parser, add_models_parser, add_secrets_parser

    add_models_parser(sub)
    add_secrets_parser(sub)
    add_keys_parser(sub)
    from spamq.cli.ops import add_webhooks_parser  # issue 15

    add_webhooks_parser(sub)
    from spamq.cli.feedback import add_feedback_parser

    add_feedback_parser(sub)
    from spamq.spark import add_spark_parser  # pyspark itself only when the command runs

    add_spark_parser(sub)
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
