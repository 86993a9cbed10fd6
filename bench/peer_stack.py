"""What bench/peer.py and bench/peer_tune.py share: a fresh server per measurement (the peer
under ``bentoml serve``, or spamq's Redis + API + worker), one measured leg after a warm-up,
and the labels each side gives a fixed sample of texts.

A fresh server per leg: BentoML's adaptive batcher carries the hold it learned under load over
to the next leg (its single-client p50 went from 18 ms fresh to 135-276 ms straight after the
32-client leg, and took about 2 minutes to recover), and spamq's batcher keeps state too.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis
import requests

from bench.__main__ import clients, cpu_profile
from scripts.local_services import (
    Process,
    free_port,
    start_api,
    start_redis,
    start_worker,
    wait_until,
)


@dataclass(frozen=True)
class PeerConfig:
    """One way to run the peer: what bench/peer_service.py reads from its environment."""

    threads: int = 2
    torchscript: bool = True
    precision: str = "fp32"
    workers: int = 1
    max_batch: int = 32
    max_latency_ms: int | None = None  # None: BentoML's own default

    def env(self, model_dir: Path) -> dict[str, str]:
        found = {"PEER_MODEL_DIR": str(model_dir), "PEER_THREADS": str(self.threads),
                 "PEER_TORCHSCRIPT": "true" if self.torchscript else "false",
                 "PEER_PRECISION": self.precision, "PEER_WORKERS": str(self.workers),
                 "PEER_MAX_BATCH": str(self.max_batch)}
        if self.max_latency_ms is not None:
            found["PEER_MAX_LATENCY_MS"] = str(self.max_latency_ms)
        return found

    def label(self) -> str:
        text = (f"{self.workers}w x {self.threads}t, "
                f"{'TorchScript' if self.torchscript else 'eager'}, {self.precision}, "
                f"batch {self.max_batch}")
        if self.max_latency_ms is not None:
            text += f", max_latency {self.max_latency_ms} ms"
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Server:
    """A running side: its base URL, the headers a client sends, and the process groups whose
    CPU a leg counts."""

    base: str
    headers: dict[str, str]
    groups: dict[str, int]
    info: dict[str, Any]


def descendant_groups(pid: int) -> set[int]:
    """Process groups of ``pid``'s descendants: BentoML starts its workers in new sessions."""
    parent: dict[int, int] = {}
    group: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(stat.parent.name)
        parent[child], group[child] = int(fields[1]), int(fields[2])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, ppid in parent.items():
            if ppid == p and child not in found:
                found.add(child)
                todo.append(child)
    return {group[c] for c in found} - {pid}


@contextlib.contextmanager
def peer_server(config: PeerConfig, model_dir: Path, work: Path,
                timeout: float = 300) -> Iterator[Server]:
    """A fresh ``bentoml serve`` of bench/peer_service.py, stopped (with its workers) after."""
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    env = {**config.env(model_dir), "BENTOML_DO_NOT_TRACK": "true",
           "BENTOML_HOME": str(work / "bentoml")}
    log = work / "peer.log"
    proc = Process([sys.executable, "-m", "bentoml", "serve", "bench.peer_service:PeerClassifier",
                    "--host", "127.0.0.1", "--port", str(port)], log=log, env=env)
    base = f"http://127.0.0.1:{port}"
    groups: set[int] = set()
    try:
        wait_until(lambda: requests.get(base + "/readyz", timeout=1).ok, timeout=timeout,
                   what="bentoml serve", proc=proc.proc, log=log)
        groups = descendant_groups(proc.proc.pid)
        info = requests.post(base + "/v1/info", json={}, timeout=30).json()
        yield Server(base, {}, {"bentoml serve (arbiter)": proc.proc.pid,
                                **{f"bentoml worker (pgid {g})": g for g in sorted(groups)}},
                     info)
    finally:
        proc.stop()
        for g in groups:  # the arbiter stops them; should it not have, they go too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(g, signal.SIGKILL)


def spamq_env(model_dir: Path, *, precision: str | None, threads: int | None) -> dict[str, str]:
    """spamq as deployed: its own defaults unless the bench is told otherwise."""
    env = {"SPAMQ_MODEL_DIR": str(model_dir)}
    if precision:
        env["SPAMQ_PRECISION"] = precision
    if threads:
        env["SPAMQ_TORCH_THREADS"] = str(threads)
    return env


@contextlib.contextmanager
def spamq_stack(base_env: dict[str, str], work: Path) -> Iterator[Server]:
    """A fresh Redis (password, AOF everysec as docker-compose.yml runs it), gunicorn API with
    API keys required and a Celery worker with the dynamic batcher; all stopped after."""
    work.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    redis_proc, redis_url = start_redis(work / "redis", password=secrets.token_hex(16))
    stack: list[Process] = [redis_proc]
    try:
        conn = redis.Redis.from_url(redis_url)
        conn.config_set("appendonly", "yes")
        conn.config_set("appendfsync", "everysec")
        env = {**base_env, "SPAMQ_REDIS_URL": redis_url, "SPAMQ_API_THREADS": "32",
               "SPAMQ_WORKER_HEARTBEAT_S": "0.5", "SPAMQ_AUTH_REQUIRED": "true",
               "SPAMQ_API_KEYS": key, "SPAMQ_RATE_LIMIT_PER_S": "1000000",
               "SPAMQ_RATE_LIMIT_BURST": "1000000"}
        api, base = start_api(env, log=work / "api.log")
        stack.append(api)
        worker = start_worker(env, log=work / "worker.log", timeout=300)
        stack.append(worker)
        yield Server(base, {"Authorization": f"Bearer {key}"},
                     {"API (gunicorn)": api.proc.pid, "worker (celery + model)": worker.proc.pid,
                      "redis-server": redis_proc.proc.pid}, loaded_model(work / "worker.log"))
    finally:
        for proc in reversed(stack):
            proc.stop()


def loaded_model(log: Path) -> dict[str, Any]:
    """The device and precision spamq's worker says it loaded its model with."""
    found = re.search(r"loaded from .* on (\S+) \((\w+)\)", log.read_text(errors="replace"))
    return {"device": found.group(1), "precision": found.group(2)} if found else {}


def labels(server: Server, texts: list[str]) -> list[dict[str, Any]]:
    """Each text scored alone: [{"label", "spam_probability"}]."""
    out = []
    with requests.Session() as session:
        session.headers.update(server.headers)
        for text in texts:
            resp = session.post(server.base + "/v1/predict", json={"texts": [text]}, timeout=60)
            resp.raise_for_status()
            body = resp.json()
            row = body["results"][0] if isinstance(body, dict) else body[0]
            out.append({"label": row["label"], "spam_probability": row["spam_probability"]})
    return out


def agreement(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> dict[str, Any]:
    """How alike two sides scored the same texts: equal labels and the largest gap in p(spam)."""
    pairs = list(zip(ours, theirs, strict=True))
    return {"n": len(pairs), "same_label": sum(a["label"] == b["label"] for a, b in pairs),
            "max_abs_prob_diff": max((abs(a["spam_probability"] - b["spam_probability"])
                                      for a, b in pairs), default=0.0)}


def leg(server: Server, texts: list[str], *, clients_n: int, warmup_s: float,
        seconds: float) -> dict[str, Any]:
    """``warmup_s`` of load at ``clients_n`` clients (not counted), then ``seconds`` measured,
    with the CPU each process group used per request."""
    if warmup_s > 0:
        clients(server.base, texts, n=clients_n, seconds=warmup_s, headers=server.headers)
    res, cpu = cpu_profile(server.groups, lambda: clients(
        server.base, texts, n=clients_n, seconds=seconds, headers=server.headers))
    done = max(res["n"], 1)  # requests answered in the measured part
    res["cpu_ms_per_request"] = {k: round(v * 1000 / done, 2) for k, v in cpu.items()}
    return res
