"""One worker process: :class:`WorkerProcess` owns everything a worker process holds.

The parts start in a fixed order and stop in the reverse one (the way Celery's bootsteps
do)::

    secrets -> store -> model -> batcher -> heartbeat -> watcher -> sweeper -> prediction log
    -> shadow

The model is loaded and warmed once per process, before the process takes work: in the
prefork pool's children (``worker_process_init``) or in the main process for the solo and
threads pools (``worker_init``), so CUDA is never initialised in a parent that forks (see
worker/celery_app.py, which only connects those signals to :meth:`WorkerProcess.start` and
:meth:`WorkerProcess.stop`). A start-up failure (secrets unreadable, model refused) is logged
as one clear line and ends the process: a worker without them is never ready.

Tasks reach the process through :func:`current`. Its holder, ``_current``, is the one piece of
module-level mutable state in worker/: set once per process by :func:`install` (the signal
handlers call it), inherited by prefork children, which then start their own copy.

This module imports nothing from worker.celery_app: the Celery ``send_task`` the sweeper
re-sends work with is handed in.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import redis

from spamq.jobs.store import JobStore
from spamq.secrets.service import ServiceSecrets, load_service_secrets
from spamq.secrets.sources import SecretError
from spamq.settings import Settings, get_settings
from worker.loops import Loop
from worker.resilience import LeaseBook

if TYPE_CHECKING:
    from spamq.storage.artifacts import ArtifactStore
    from spamq.storage.prediction_log import PredictionLog
    from worker.batcher import Batcher
    from worker.model_source import ModelSource, ModelWatcher
    from worker.runner import BatchClassifier
    from worker.shadow import ShadowTap

logger = logging.getLogger(__name__)

EXIT_SECRETS = 78  # EX_CONFIG
EXIT_MODEL = 79

#: the steps of :meth:`WorkerProcess.start`, in order; :meth:`WorkerProcess.stop` reverses it
STEPS = ("secrets", "store", "model", "batcher", "heartbeat", "watcher", "sweeper",
         "prediction_log", "shadow")


class WorkerProcess:
    """What one worker process holds, with an explicit :meth:`start` and :meth:`stop`.

    Everything may be handed in (tests do): ``secrets`` (else read at the ``secrets`` step),
    ``store`` (else from the settings' Redis), ``artifacts`` (else one client from the
    settings, made on first use and shared by bulk I/O, the prediction log and the model
    source), ``load_runner`` (else :meth:`load_model`), ``send_task`` (the sweeper runs only
    with one).
    """

    def __init__(self, settings: Settings | None = None, *,
                 secrets: ServiceSecrets | None = None, store: JobStore | None = None,
                 artifacts: ArtifactStore | None = None,
                 load_runner: Callable[[WorkerProcess], BatchClassifier] | None = None,
                 send_task: Callable[..., Any] | None = None) -> None:
        self._base_settings = settings
        self.secrets = secrets
        self.store: JobStore | None = store
        self._artifacts = artifacts
        self._load_runner = load_runner or WorkerProcess.load_model
        self._send_task = send_task
        self.runner: BatchClassifier | None = None  # the runner slot: the hot swap sets it
        self.batcher: Batcher | None = None
        self.watcher: ModelWatcher | None = None
        self.prediction_log: PredictionLog | None = None
        self.shadow: ShadowTap | None = None  # a candidate beside production (worker/shadow.py)
        self.leases = LeaseBook()  # chunk leases held by this process's attempts
        self.name = ""
        self.bulk_gate: Any = None  # worker.celery_app.BulkGate, in the process consuming bulk
        self.consumer: Any = None  # the Celery consumer the gate pauses
        self._loops: list[Loop] = []
        self._stops: dict[str, threading.Event] = {}
        self._started: list[str] = []
        self._lock = threading.RLock()
        self._ready_cache: tuple[float, bool, str] = (0.0, True, "")

    # --- settings and secrets ---------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """The settings, with the secrets' values once they are read."""
        if self.secrets is not None:
            return self.secrets.settings
        return self._base_settings or get_settings()

    def load_secrets(self) -> ServiceSecrets:
        """The ``secrets`` step: read once; the process exits if they cannot be read."""
        with self._lock:
            if "secrets" not in self._started:
                if self.secrets is None:
                    try:
                        self.secrets = load_service_secrets(self.settings, service="worker")
                    except SecretError as exc:
                        logger.critical("worker not started: %s", exc)
                        raise SystemExit(EXIT_SECRETS) from exc
                self._started.append("secrets")
            assert self.secrets is not None
            return self.secrets

    @property
    def artifacts(self) -> ArtifactStore:
        """This process's one artifact store client, made on first use."""
        if self._artifacts is None:
            from spamq.storage.artifacts import artifact_store_from_settings

            self._artifacts = artifact_store_from_settings(self.settings)
        return self._artifacts

    def model_source(self) -> ModelSource:
        """The registry's alias resolver over this process's artifact store client."""
        from spamq.models.registry import ModelRegistry
        from worker.model_source import ModelSource

        return ModelSource(self.settings, registry=ModelRegistry(self.artifacts))

    # --- start and stop ---------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return "heartbeat" in self._started

    def start(self) -> WorkerProcess:
        """Start every part not yet started, in :data:`STEPS` order (idempotent)."""
        with self._lock:
            for step in STEPS:
                if step not in self._started:
                    getattr(self, f"_start_{step}")()
                    if step not in self._started:  # load_secrets() records its own step
                        self._started.append(step)
        return self

    def stop(self) -> None:
        """Stop the started parts in the reverse order (idempotent; a failing part is logged
        and the others still stop)."""
        with self._lock:
            while self._started:
                step = self._started.pop()
                try:
                    getattr(self, f"_stop_{step}")()
                except Exception:  # noqa: BLE001 - shutdown goes on with the other parts
                    logger.exception("worker process: stopping %s failed", step)

    def _stop_event(self, step: str) -> threading.Event:
        return self._stops.setdefault(step, threading.Event())

    def _start_secrets(self) -> None:
        self.load_secrets()

    def _stop_secrets(self) -> None:
        if self.secrets is not None:
            self.secrets.source.close()

    @property
    def jobs(self) -> JobStore:
        """The job store, once ``start()`` has passed its store step."""
        if self.store is None:
            raise RuntimeError("worker process not started")
        return self.store

    def _start_store(self) -> None:
        from worker.split_tasks import clean_stale_parts

        self.name = f"{socket.gethostname()}:{os.getpid()}"  # after the fork: the child's pid
        try:
            clean_stale_parts()  # temporary parts a killed worker of this host left behind
        except OSError as exc:
            logger.warning("temporary parts not cleaned: %s", exc)
        if self.store is None:
            self.store = JobStore.from_settings(self.settings)

    def _stop_store(self) -> None:
        pass  # the Redis client's connections go with the process

    def _start_model(self) -> None:
        self.runner = self._load_runner(self)

    def _stop_model(self) -> None:
        pass  # the runner stays in the slot for anything still reading it

    def load_model(self) -> BatchClassifier:
        """The one model-loading path, for ``model_source`` ``dir`` and ``registry``; a model
        the registry cannot give ends the process (EXIT_MODEL)."""
        import torch

        from worker.model_source import ModelSourceError, load_runner
        from worker.runner import default_threads

        s = self.settings
        torch.set_num_threads(s.torch_threads or default_threads(s.worker_concurrency))
        source = self.model_source() if s.model_source == "registry" else None
        try:
            runner = load_runner(s, source=source)
        except ModelSourceError as exc:
            logger.critical("worker not started: model %s@%s not loaded: %s",
                            s.model_name, s.model_alias, exc)
            raise SystemExit(EXIT_MODEL) from exc
        if s.null_model:  # bench only: the pipeline without the forward pass
            from worker.null_model import make_null

            make_null(runner)
        return runner

    def swap_runner(self, runner: BatchClassifier) -> None:
        """Hot swap: the batcher picks the new runner up at its next forward pass."""
        self.runner = runner

    def current_runner(self) -> BatchClassifier:
        assert self.runner is not None
        return self.runner  # read per batch, so a hot-swapped model is picked up

    def _start_batcher(self) -> None:
        from worker.batcher import Batcher

        s = self.settings
        if s.worker_pool == "threads":
            import torch

            from worker.runner import default_threads

            # One batcher thread runs every forward pass. Leave a core to Celery, Redis I/O
            # and tokenising: on 2 shared vCPUs a 2-thread OpenMP team measured ~500 ms per
            # forward pass (a descheduled team member stalls the barrier) against ~8 ms with 1.
            torch.set_num_threads(s.torch_threads or max(1, default_threads(1) - 1))
        max_tokens, max_rows = s.batch_max_tokens, s.batch_size
        if self.runner is not None and self.runner.device.type == "cuda" and s.batch_fit_gpu:
            from worker.gpu import fit_batch_to_gpu

            max_tokens, max_rows = fit_batch_to_gpu(self.runner)
        self.batcher = Batcher(
            self.current_runner, max_batch_tokens=max_tokens, max_batch_size=max_rows,
            max_wait_ms=s.batch_max_wait_ms, min_fill=s.batch_min_fill,
            bulk_max_batch_tokens=s.batch_bulk_max_tokens,
            bulk_lane_nice=s.batch_bulk_nice if s.batch_bulk_lane else None)
        self._add_loop(Loop("spamq-batch-stats", self._publish_batch_stats,
                            every_s=s.worker_heartbeat_s, stop=self._stop_event("batcher")))

    def _publish_batch_stats(self) -> None:  # forward-pass statistics, next to the heartbeat
        assert self.store is not None and self.batcher is not None
        try:
            self.store.set_batch_stats(self.name, self.batcher.stats.as_dict(),
                                       ttl_s=max(1, int(self.settings.worker_heartbeat_s * 3)))
        except redis.RedisError as exc:
            logger.warning("batch stats not published: %s", exc)

    def _stop_batcher(self) -> None:
        self._stop_event("batcher").set()
        if self.batcher is not None:
            self.batcher.close()

    def _start_heartbeat(self) -> None:
        self._beat_step()
        self._add_loop(Loop("spamq-heartbeat", self._beat_step,
                            every_s=self.settings.worker_heartbeat_s,
                            stop=self._stop_event("heartbeat")))

    def _stop_heartbeat(self) -> None:
        self._stop_event("heartbeat").set()
        try:
            assert self.store is not None
            self.store.forget_worker(self.name)
        except redis.RedisError:
            pass

    def _start_watcher(self) -> None:
        s = self.settings
        logging.getLogger("hdfs").setLevel(logging.WARNING)  # HdfsCLI logs every poll at INFO
        if s.model_source != "registry":
            return
        from worker.model_source import ModelWatcher

        self.watcher = ModelWatcher(self, source=self.model_source())
        if s.model_poll_s > 0:
            self._add_loop(self.watcher.loop)  # the heartbeat restarts it, should it die

    def _stop_watcher(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    def _start_sweeper(self) -> None:
        s = self.settings
        if s.sweep_every_s <= 0 or self._send_task is None:
            return
        from spamq.jobs.queue import send_refill, send_work
        from spamq.storage.uploads import Uploads
        from worker.sweeper import Sweeper

        assert self.store is not None
        send_task = self._send_task
        store = self.store

        def sweep_uploads(now: float) -> int:  # the store client is made on first use
            return Uploads(store.redis, self.artifacts, tenant_root=s.store_tenant_root,
                           quota_bytes=s.max_upload_bytes_per_key, ttl_s=s.job_ttl_s).sweep(now)

        def sweep_feedback(now: float) -> int:  # partitions past SPAMQ_FEEDBACK_RETENTION_DAYS
            from datetime import UTC, datetime

            from spamq.feedback.store import sweep_retention

            return sweep_retention(self.artifacts, retention_days=s.feedback_retention_days,
                                   root=s.feedback_root, now=datetime.fromtimestamp(now, UTC))

        sweeper = Sweeper(self.store, lambda job, indices: send_work(send_task, job, indices),
                          name=self.name, queues=[s.interactive_queue, s.bulk_queue],
                          every_s=s.sweep_every_s, lost_after_s=s.lost_after_s,
                          uploads=sweep_uploads,
                          feedback=sweep_feedback if s.feedback_sweep_every_s > 0 else None,
                          feedback_every_s=s.feedback_sweep_every_s,
                          refill=lambda owner: send_refill(send_task, store, owner, s))
        self._add_loop(Loop("spamq-sweeper", sweeper.sweep_once, every_s=s.sweep_every_s,
                            stop=self._stop_event("sweeper")))

    def _stop_sweeper(self) -> None:
        self._stop_event("sweeper").set()

    def _start_prediction_log(self) -> None:
        s = self.settings
        if not s.prediction_log:
            return
        from spamq.storage.prediction_log import PredictionLog

        self.prediction_log = PredictionLog(
            self.artifacts, worker=self.name, root=s.prediction_log_root,
            text_mode=s.prediction_log_text, max_rows=s.prediction_log_max_rows,
            max_age_s=s.prediction_log_max_age_s,
        )
        logger.info("prediction log: %s/%s, text as %s", self.prediction_log.store.describe(),
                    s.prediction_log_root, s.prediction_log_text)

    def _stop_prediction_log(self) -> None:
        if self.prediction_log is not None:
            try:
                self.prediction_log.close()
            except Exception:  # noqa: BLE001 - shutdown goes on; the rows are lost, say so
                logger.exception("prediction log: final flush failed")

    def _start_shadow(self) -> None:
        """The shadow tap: idle (no candidate) until the heartbeat finds the shadow key."""
        from spamq.models.registry import ModelRegistry
        from worker.model_source import build_runner
        from worker.shadow import ShadowTap, ShadowWriter

        s = self.settings

        def load(model: str, version: str) -> BatchClassifier:  # verified like production
            path = ModelRegistry(self.artifacts).pull(model, version, cache_dir=s.model_cache_dir)
            return build_runner(s, path)

        writer = ShadowWriter(self.artifacts, worker=self.name, root=s.shadow_root,
                              max_rows=s.shadow_max_rows, max_age_s=s.shadow_flush_s)
        self.shadow = ShadowTap(load, writer, model=s.model_name, queue_rows=s.shadow_queue_rows)
        self.shadow.start()

    def _stop_shadow(self) -> None:
        if self.shadow is not None:
            self.shadow.stop()

    # --- while running ----------------------------------------------------------------------
    def _add_loop(self, loop: Loop) -> None:
        """Start a background loop; the heartbeat restarts it should its thread die."""
        self._loops.append(loop)
        loop.start()

    @property
    def loops(self) -> list[Loop]:
        return list(self._loops)

    def ensure_loops(self) -> None:
        """Restart any background loop whose thread has died (the heartbeat and every task
        call this: a dead thread is noticed within a heartbeat, or at the next task)."""
        for loop in self._loops:
            loop.ensure_running()

    def _beat_step(self) -> None:
        assert self.store is not None
        self.ensure_loops()
        try:
            self.beat_once()
            if self.shadow is not None:
                self.shadow.poll(self.store.redis)
            self.leases.renew(self.store, ttl_s=self.settings.chunk_lease_s)
        except redis.RedisError as exc:
            logger.warning("heartbeat failed: %s", exc)

    def beat_once(self) -> None:
        assert self.store is not None
        ttl = max(1, int(self.settings.worker_heartbeat_s * 3))
        self.store.beat(self.name, self.heartbeat_payload(), ttl_s=ttl)

    def heartbeat_payload(self) -> dict[str, object]:
        runner = self.runner
        return {
            "name": self.name,
            "model_version": runner.version if runner else None,
            "device": str(runner.device) if runner else None,
            "precision": runner.precision if runner else None,
            "at": time.time(),
            "heartbeat_s": self.settings.worker_heartbeat_s,  # /readyz: a beat missed is dead
            **self._readiness(),
            **({"shadow": self.shadow.stats()} if self.shadow and self.shadow.state else {}),
        }

    def _readiness(self) -> dict[str, Any]:
        """Readiness of the secret source (checked at most every 5 s) and the model source."""
        out: dict[str, Any] = {"ready": True}
        if self.secrets is not None:
            at, ok, reason = self._ready_cache
            if time.monotonic() - at > 5.0:
                ok, reason = self.secrets.ready()
                self._ready_cache = (time.monotonic(), ok, reason)
            if not ok:
                out.update(ready=False, not_ready_reason=f"secrets: {reason}")
        if self.watcher is not None:
            out.update(model_swaps=self.watcher.swaps, model_watch_error=self.watcher.last_error)
        return out

    def log_predictions(self, job_id: str, start: int, texts: Sequence[str],
                        results: Sequence[dict[str, Any]]) -> None:
        """Hand stored results to the prediction log (a no-op when it is off)."""
        if self.prediction_log is not None:
            self.prediction_log.record(job_id=job_id, start=start, texts=texts, results=results)
        if self.shadow is not None:  # after the results are stored: never delays them
            self.shadow.offer_rows(texts, results, source="texts")


# The one holder (see the module docstring).
_current: WorkerProcess | None = None


def install(process: WorkerProcess) -> WorkerProcess:
    """Make ``process`` this process's :func:`current` one (the signal handlers call it)."""
    global _current
    _current = process
    return process


def installed() -> WorkerProcess | None:
    """The installed process object, started or not (None before ``worker_init``)."""
    return _current


def current() -> WorkerProcess:
    """This process's started WorkerProcess (started here on first use if it was not)."""
    process = _current
    if process is None:
        raise RuntimeError("no WorkerProcess installed: worker_init has not run")
    if not process.started:
        process.start()
    return process
