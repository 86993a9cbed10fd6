"""The ``spamq`` command: train, worker, api, demo, score, me (and models/secrets where present)."""

from __future__ import annotations

import argparse
import os
import sys

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
    alive = [w for w in JobStore.from_settings(s).workers.heartbeats()
             if str(w.get("name", "")).startswith(host) and w.get("model_version")]
    print(f"{len(alive)} ready worker process(es) on {host}")
    return 0 if alive else 1


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

    from spamq.cli.jobs import add_client_parsers  # demo, score, me: spamq.client

    add_client_parsers(sub)

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
