"""Per-process worker state: the settings, the job store, the loaded model, the heartbeat.

The model is loaded and warmed once per process, before the process takes work:
in the prefork pool's children (``worker_process_init``) or in the main process for the
solo and threads pools (``worker_init``), so CUDA is never initialised in a parent that forks.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

import redis

from spamq.jobs import JobStore
from spamq.settings import Settings, get_settings

if TYPE_CHECKING:
    from worker.runner import BatchClassifier

logger = logging.getLogger(__name__)


class WorkerState:
    """What a worker process holds once it is ready."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
        )
        self.store = JobStore(self.redis, ttl_s=settings.job_ttl_s)
        self.runner: BatchClassifier | None = None
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()

    def load_model(self) -> BatchClassifier:
        import torch

        from worker.runner import BatchClassifier, default_threads

        s = self.settings
        torch.set_num_threads(s.torch_threads or default_threads(s.worker_concurrency))
        runner = BatchClassifier(
            s.model_dir,
            device=s.device,
            max_length=s.max_length,
            batch_size=s.batch_size,
            precision=s.precision,
        )
        runner.warm_up()
        self.runner = runner
        return runner

    def heartbeat_payload(self) -> dict[str, object]:
        runner = self.runner
        return {
                "name": self.name,
                "model_version": runner.version if runner else None,
                "device": str(runner.device) if runner else None,
                "precision": self.settings.precision,
                "at": time.time(),
        }

    def beat_once(self) -> None:
        ttl = max(1, int(self.settings.worker_heartbeat_s * 3))
        self.store.beat(self.name, self.heartbeat_payload(), ttl_s=ttl)

    def start_heartbeat(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.beat_once()
                except redis.RedisError as exc:
                    logger.warning("heartbeat failed: %s", exc)
                self._stop.wait(self.settings.worker_heartbeat_s)

        threading.Thread(target=loop, name="spamq-heartbeat", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        try:
            self.store.forget_worker(self.name)
        except redis.RedisError:
            pass


_state: WorkerState | None = None


def get_state() -> WorkerState:
    """This process's state, loading the model on first use (normally done at start-up)."""
    global _state
    if _state is None:
        _state = WorkerState(get_settings())
    if _state.runner is None:
        _state.load_model()
        _state.start_heartbeat()
    return _state


def shutdown() -> None:
    if _state is not None:
        _state.stop()
