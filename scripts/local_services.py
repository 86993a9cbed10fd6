"""Start real local processes (redis-server, a Celery worker, gunicorn, the webhook deliverer)
for tests and the bench."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env_file(path: Path) -> dict[str, str]:
    """The KEY=value lines of an env file that scripts/hdfs.sh or scripts/openbao.sh wrote."""
    out = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def run_script(script: str, *args: str, env: dict[str, str], timeout: float) -> None:
    """Run scripts/<script> with ``args``; raise with its stderr's tail if it fails."""
    proc = subprocess.run(
        [str(REPO / "scripts" / script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{script} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        )


@contextmanager
def private_hdfs(state: Path) -> Iterator[dict[str, str]]:
    """A NameNode and DataNode (scripts/hdfs.sh) keeping their state in ``state``, stopped on
    exit; yields the env file they wrote (SPAMQ_HDFS_URL, SPAMQ_HDFS_RPC). A first run
    downloads about 220 MB into the shared cache under .services/."""
    env = {"SPAMQ_HDFS_DIR": str(state)}
    run_script("hdfs.sh", "start", env=env, timeout=600)
    try:
        yield read_env_file(state / "env")
    finally:
        run_script("hdfs.sh", "stop", env=env, timeout=60)


def wait_until(check: Callable[[], bool], *, timeout: float, what: str,
               proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what}: process exited with {proc.returncode}\n{tail}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready after {timeout}s\n{tail}")


class Process:
    """A child process with its log file; ``stop()`` terminates it (then kills)."""

    def __init__(self, argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._fh = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, stdout=self._fh, stderr=subprocess.STDOUT, cwd=REPO,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                if self.proc.poll() is None:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._fh.close()


def start_redis(workdir: Path, *, port: int | None = None, aof: bool = False,
                password: str | None = None) -> tuple[Process, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: run `make services`")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
            "--save", "", "--appendonly", "yes" if aof else "no"]
    if aof:
        argv += ["--appendfsync", "always"]
    if password:
        argv += ["--requirepass", password]
    proc = Process(argv, log=workdir / "redis.log")
    url = f"redis://:{password}@127.0.0.1:{port}/0" if password else f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=1)
    wait_until(client.ping, timeout=10, what="redis-server", proc=proc.proc, log=proc.log)
    return proc, url


def start_worker(env: dict[str, str], *, log: Path, name: str = "w1", queues: str | None = None,
                 timeout: float = 90) -> Process:
    """A real ``celery worker`` process, ready once its heartbeat (model loaded) shows in Redis."""
    argv = [sys.executable, "-m", "spamq.cli", "worker", f"--name={name}@%h"]
    if queues:
        argv.append(f"--queues={queues}")
    client = redis.Redis.from_url(env["SPAMQ_REDIS_URL"], socket_timeout=1)
    before = set(client.scan_iter(match="spamq:worker:*"))  # workers already up
    proc = Process(argv, log=log, env=env)
    wait_until(lambda: bool(set(client.scan_iter(match="spamq:worker:*")) - before),
               timeout=timeout, what="celery worker", proc=proc.proc, log=log)
    return proc


def start_api(env: dict[str, str], *, log: Path, timeout: float = 30) -> tuple[Process, str]:
    port = free_port()
    env = {**env, "SPAMQ_API_PORT": str(port), "SPAMQ_API_HOST": "127.0.0.1"}
    proc = Process([sys.executable, "-m", "spamq.cli", "api"], log=log, env=env)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(base + "/healthz", timeout=1).ok, timeout=timeout,
               what="gunicorn API", proc=proc.proc, log=log)
    return proc, base


def start_deliverer(env: dict[str, str], *, log: Path, timeout: float = 30) -> Process:
    """The webhook deliverer (``spamq webhooks deliver``), ready once its /metrics answers."""
    port = free_port()
    env = {**env, "SPAMQ_WEBHOOK_METRICS_PORT": str(port),
           "SPAMQ_WEBHOOK_METRICS_HOST": "127.0.0.1"}
    proc = Process([sys.executable, "-m", "spamq.cli", "webhooks", "deliver"], log=log, env=env)
    wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1).ok,
               timeout=timeout, what="webhook deliverer", proc=proc.proc, log=log)
    return proc
