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

from spamq.jobs.store import JobStore
from spamq.settings import Settings
from worker import lifecycle
from worker.loops import Loop
from worker.resilience import LeaseBook

if TYPE_CHECKING:
    from spamq.storage.artifacts import ArtifactStore
    from worker.batcher import Batcher
    from worker.runner import BatchClassifier

logger = logging.getLogger(__name__)


class WorkerState:
    """What a worker process holds once it is ready."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = JobStore.from_settings(settings)
        self.runner: BatchClassifier | None = None
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._loops: list[Loop] = []
        self.leases = LeaseBook()  # chunk leases held by this process's attempts
        self._artifacts: ArtifactStore | None = None

    def load_model(self) -> BatchClassifier:
        import torch

        from worker.runner import default_threads

        s = self.settings
        torch.set_num_threads(s.torch_threads or default_threads(s.worker_concurrency))
        if s.model_source == "registry":
            from worker.lifecycle import load_registry_runner

            self.runner = load_registry_runner(s)
        else:
            from worker.model_source import build_runner

            self.runner = build_runner(s, s.model_dir)
        return self.runner

    def heartbeat_payload(self) -> dict[str, object]:
        runner = self.runner
        return {
                "name": self.name,
                "model_version": runner.version if runner else None,
                "device": str(runner.device) if runner else None,
                "precision": runner.precision if runner else None,
                "at": time.time(),
                **lifecycle.heartbeat_extra(),
        }

    def beat_once(self) -> None:
        ttl = max(1, int(self.settings.worker_heartbeat_s * 3))
        self.store.beat(self.name, self.heartbeat_payload(), ttl_s=ttl)

    @property
    def artifacts(self) -> ArtifactStore:
        """This process's artifact store client (bulk inputs and outputs), made on first use."""
        if self._artifacts is None:
            from spamq.storage.artifacts import artifact_store_from_settings

            self._artifacts = artifact_store_from_settings(self.settings)
        return self._artifacts

    def add_loop(self, loop: Loop) -> None:
        """Start a background loop; the heartbeat restarts it should its thread die."""
        self._loops.append(loop)
        loop.start()

    def ensure_loops(self) -> None:
        """Restart any background loop whose thread has died (the heartbeat and every task
        call this: a dead thread is noticed within a heartbeat, or at the next task)."""
        for loop in self._loops:
            loop.ensure_running()

    def _beat_step(self) -> None:
        self.ensure_loops()
        try:
            self.beat_once()
            self.leases.renew(self.store, ttl_s=self.settings.chunk_lease_s)
        except redis.RedisError as exc:
            logger.warning("heartbeat failed: %s", exc)

    def start_heartbeat(self) -> None:
        self._beat_step()
        self.add_loop(Loop("spamq-heartbeat", self._beat_step,
                           every_s=self.settings.worker_heartbeat_s, stop=self._stop))

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
        _state = WorkerState(lifecycle.worker_settings())
    if _state.runner is None:
        _state.load_model()
        _state.start_heartbeat()
        lifecycle.start_extras(_state)
    return _state


def shutdown() -> None:
    lifecycle.shutdown()
    if _state is not None:
        _state.stop()


_batcher: Batcher | None = None
_batcher_lock = threading.Lock()


def get_batcher() -> Batcher:
    """This process's dynamic batcher over the loaded model (created on first use)."""
    global _batcher
    if _batcher is None:
        with _batcher_lock:
            if _batcher is None:
                _batcher = _start_batcher(get_state())
    return _batcher


def _start_batcher(state: WorkerState) -> Batcher:
    import torch

    from worker.batcher import Batcher
    from worker.runner import default_threads

    s = state.settings
    if s.worker_pool == "threads":
        # One batcher thread runs every forward pass. Leave a core to Celery, Redis I/O and
        # tokenising: on 2 shared vCPUs a 2-thread OpenMP team measured ~500 ms per forward
        # pass (a descheduled team member stalls the barrier) against ~8 ms with 1 thread.
        torch.set_num_threads(s.torch_threads or max(1, default_threads(1) - 1))

    def runner() -> BatchClassifier:
        assert state.runner is not None
        return state.runner  # read per batch, so a hot-swapped model is picked up

    max_tokens, max_rows = s.batch_max_tokens, s.batch_size
    if state.runner is not None and state.runner.device.type == "cuda" and s.batch_fit_gpu:
        from worker.gpu import fit_batch_to_gpu

        max_tokens, max_rows = fit_batch_to_gpu(state.runner)
    batcher = Batcher(runner, max_batch_tokens=max_tokens, max_batch_size=max_rows,
                      max_wait_ms=s.batch_max_wait_ms, min_fill=s.batch_min_fill,
                      bulk_max_batch_tokens=s.batch_bulk_max_tokens)

    def publish() -> None:  # forward-pass statistics, next to the heartbeat
        try:
            state.store.set_batch_stats(state.name, batcher.stats.as_dict(),
                                        ttl_s=max(1, int(s.worker_heartbeat_s * 3)))
        except redis.RedisError as exc:
            logger.warning("batch stats not published: %s", exc)

    state.add_loop(Loop("spamq-batch-stats", publish, every_s=s.worker_heartbeat_s,
                        stop=state._stop))
    return batcher
