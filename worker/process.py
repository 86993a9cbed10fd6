"""One worker process: :class:`WorkerProcess` holds what a worker process holds, and its
parts start and stop as steps (worker/bootsteps.py, as Celery's bootsteps do)::

    secrets -> store -> model -> batcher -> heartbeat -> watcher -> sweeper -> prediction log
    -> shadow

Each step is a small class below, with the steps it ``requires``; :func:`worker_steps`
lists them, and the process's :class:`~worker.bootsteps.Blueprint` starts them in that order
and stops them in the reverse one.

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
from worker.bootsteps import Blueprint, Step
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

LoadRunner = Callable[["WorkerProcess"], "BatchClassifier"]


class WorkerProcess:
    """What one worker process holds, with an explicit :meth:`start` and :meth:`stop`.

    Everything may be handed in (tests do): ``secrets`` (else read at the ``secrets`` step),
    ``store`` (else from the settings' Redis), ``artifacts`` (else one client from the
    settings, made on first use and shared by bulk I/O, the prediction log and the model
    source), ``load_runner`` (else :func:`load_model`), ``send_task`` (the sweeper runs only
    with one).
    """

    def __init__(self, settings: Settings | None = None, *,
                 secrets: ServiceSecrets | None = None, store: JobStore | None = None,
                 artifacts: ArtifactStore | None = None, load_runner: LoadRunner | None = None,
                 send_task: Callable[..., Any] | None = None) -> None:
        self._base_settings = settings
        self.secrets = secrets
        self.store: JobStore | None = store
        self._artifacts = artifacts
        self._runner: BatchClassifier | None = None  # the runner slot: swap_runner sets it
        self.batcher: Batcher | None = None
        self.watcher: ModelWatcher | None = None
        self.prediction_log: PredictionLog | None = None
        self.shadow: ShadowTap | None = None  # a candidate beside production (worker/shadow.py)
        self.leases = LeaseBook()  # chunk leases held by this process's attempts
        self.name = ""
        self.bulk_gate: Any = None  # worker.celery_app.BulkGate, in the process consuming bulk
        self.consumer: Any = None  # the Celery consumer the gate pauses
        self._loops: list[Loop] = []
        self.steps = Blueprint(worker_steps(load_runner or load_model, send_task))

    @property
    def settings(self) -> Settings:
        """The settings, with the secrets' values once they are read."""
        if self.secrets is not None:
            return self.secrets.settings
        return self._base_settings or get_settings()

    def load_secrets(self) -> ServiceSecrets:
        """Start the ``secrets`` step alone (the main process reads the broker URL before the
        pool forks); the process exits if they cannot be read."""
        self.steps.start(self, until=SecretsStep.name)
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

    @property
    def started(self) -> bool:
        return self.steps.complete

    def start(self) -> WorkerProcess:
        """Start every step not yet started (idempotent)."""
        self.steps.start(self)
        return self

    def stop(self) -> None:
        """Stop the started steps, last first (idempotent)."""
        self.steps.stop(self)

    @property
    def jobs(self) -> JobStore:
        """The job store, once ``start()`` has passed its store step."""
        if self.store is None:
            raise RuntimeError("worker process not started")
        return self.store

    @property
    def runner(self) -> BatchClassifier | None:
        """The model this process serves now (read per batch, so a swap is picked up)."""
        return self._runner

    def swap_runner(self, runner: BatchClassifier) -> None:
        """Serve ``runner`` from the next forward pass on (the model step and the hot swap);
        requests already tokenised finish on the runner that tokenised them."""
        self._runner = runner

    @property
    def loops(self) -> list[Loop]:
        return list(self._loops)

    def add_loop(self, loop: Loop) -> None:
        """Start a background loop; the heartbeat restarts it should its thread die."""
        self._loops.append(loop)
        loop.start()

    def ensure_loops(self) -> None:
        """Restart any background loop whose thread has died (the heartbeat and every task
        call this: a dead thread is noticed within a heartbeat, or at the next task)."""
        for loop in self._loops:
            loop.ensure_running()

    def log_predictions(self, job_id: str, start: int, texts: Sequence[str],
                        results: Sequence[dict[str, Any]]) -> None:
        """Hand stored results to the prediction log (a no-op when it is off)."""
        if self.prediction_log is not None:
            self.prediction_log.record(job_id=job_id, start=start, texts=texts, results=results)
        if self.shadow is not None:  # after the results are stored: never delays them
            self.shadow.offer_rows(texts, results, source="texts")


def load_model(state: WorkerProcess) -> BatchClassifier:
    """The one model-loading path, for ``model_source`` ``dir`` and ``registry``; a model
    the registry cannot give ends the process (EXIT_MODEL)."""
    import torch

    from worker.model_source import ModelSourceError, load_runner
    from worker.runner import default_threads

    s = state.settings
    torch.set_num_threads(s.torch_threads or default_threads(s.worker_concurrency))
    source = state.model_source() if s.model_source == "registry" else None
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


# --- the steps --------------------------------------------------------------------------------
class SecretsStep(Step[WorkerProcess]):
    """Read the secrets once (Vault or the environment); the process exits if it cannot."""

    name = "secrets"

    def start(self, state: WorkerProcess) -> None:
        if state.secrets is None:
            try:
                state.secrets = load_service_secrets(state.settings, service="worker")
            except SecretError as exc:
                logger.critical("worker not started: %s", exc)
                raise SystemExit(EXIT_SECRETS) from exc

    def stop(self, state: WorkerProcess) -> None:
        if state.secrets is not None:
            state.secrets.source.close()


class StoreStep(Step[WorkerProcess]):
    """The process's name (host:pid, taken after the fork), the temporary parts a killed
    worker of this host left behind removed, and the job store."""

    name = "store"
    requires = ("secrets",)

    def start(self, state: WorkerProcess) -> None:
        from worker.split_tasks import clean_stale_parts

        state.name = f"{socket.gethostname()}:{os.getpid()}"
        try:
            clean_stale_parts()
        except OSError as exc:
            logger.warning("temporary parts not cleaned: %s", exc)
        if state.store is None:
            state.store = JobStore.from_settings(state.settings)
        # stop: nothing; the Redis client's connections go with the process


class ModelStep(Step[WorkerProcess]):
    """The model, loaded and warmed before the process takes work (stop: the runner stays in
    the slot for anything still reading it)."""

    name = "model"
    requires = ("secrets",)

    def __init__(self, load: LoadRunner) -> None:
        self.load = load

    def start(self, state: WorkerProcess) -> None:
        state.swap_runner(self.load(state))


class BatcherStep(Step[WorkerProcess]):
    """The batcher every task of the process scores through, and its statistics loop."""

    name = "batcher"
    requires = ("store", "model")

    def __init__(self) -> None:
        self._stop = threading.Event()

    def start(self, state: WorkerProcess) -> None:
        from worker.batcher import Batcher

        s = state.settings
        if s.worker_pool == "threads":
            import torch

            from worker.runner import default_threads

            # One batcher thread runs every forward pass. Leave a core to Celery, Redis I/O
            # and tokenising: on 2 shared vCPUs a 2-thread OpenMP team measured ~500 ms per
            # forward pass (a descheduled team member stalls the barrier) against ~8 ms with 1.
            torch.set_num_threads(s.torch_threads or max(1, default_threads(1) - 1))
        max_tokens, max_rows = s.batch_max_tokens, s.batch_size
        if state.runner is not None and state.runner.device.type == "cuda" and s.batch_fit_gpu:
            from worker.gpu import fit_batch_to_gpu

            max_tokens, max_rows = fit_batch_to_gpu(state.runner)

        def runner() -> BatchClassifier:  # read per batch: a swapped model is picked up
            assert state.runner is not None
            return state.runner

        state.batcher = Batcher(
            runner, max_batch_tokens=max_tokens, max_batch_size=max_rows,
            max_wait_ms=s.batch_max_wait_ms, min_fill=s.batch_min_fill,
            bulk_max_batch_tokens=s.batch_bulk_max_tokens,
            bulk_lane_nice=s.batch_bulk_nice if s.batch_bulk_lane else None)
        state.add_loop(Loop("spamq-batch-stats", lambda: self.publish_stats(state),
                            every_s=s.worker_heartbeat_s, stop=self._stop))

    def publish_stats(self, state: WorkerProcess) -> None:
        """Forward-pass statistics, next to the heartbeat."""
        assert state.batcher is not None
        try:
            state.jobs.workers.set_batch_stats(
                state.name, state.batcher.stats.as_dict(),
                ttl_s=max(1, int(state.settings.worker_heartbeat_s * 3)))
        except redis.RedisError as exc:
            logger.warning("batch stats not published: %s", exc)

    def stop(self, state: WorkerProcess) -> None:
        self._stop.set()
        if state.batcher is not None:
            state.batcher.close()


class HeartbeatStep(Step[WorkerProcess]):
    """A beat now and every ``worker_heartbeat_s``: the process's record (model, device,
    readiness), the shadow's poll, the chunk leases renewed, dead loops restarted. Stop: the
    record is forgotten, so the worker leaves /readyz at once."""

    name = "heartbeat"
    requires = ("store", "model")

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._secrets_ready: tuple[float, bool, str] = (0.0, True, "")  # (checked at, ok, why)

    def start(self, state: WorkerProcess) -> None:
        self.beat(state)
        state.add_loop(Loop("spamq-heartbeat", lambda: self.beat(state),
                            every_s=state.settings.worker_heartbeat_s, stop=self._stop))

    def stop(self, state: WorkerProcess) -> None:
        self._stop.set()
        try:
            state.jobs.workers.forget(state.name)
        except redis.RedisError:
            pass

    def beat(self, state: WorkerProcess) -> None:
        state.ensure_loops()
        store = state.jobs
        try:
            ttl = max(1, int(state.settings.worker_heartbeat_s * 3))
            store.workers.beat(state.name, self.payload(state), ttl_s=ttl)
            if state.shadow is not None:
                state.shadow.poll(store.redis)
            state.leases.renew(store, ttl_s=state.settings.chunk_lease_s)
        except redis.RedisError as exc:
            logger.warning("heartbeat failed: %s", exc)

    def payload(self, state: WorkerProcess) -> dict[str, object]:
        runner = state.runner
        return {
            "name": state.name,
            "model_version": runner.version if runner else None,
            "device": str(runner.device) if runner else None,
            "precision": runner.precision if runner else None,
            "at": time.time(),
            "heartbeat_s": state.settings.worker_heartbeat_s,  # /readyz: a beat missed is dead
            **self.readiness(state),
            **({"shadow": state.shadow.stats()} if state.shadow and state.shadow.state else {}),
        }

    def readiness(self, state: WorkerProcess) -> dict[str, Any]:
        """Readiness of the secret source (checked at most every 5 s) and the model source."""
        out: dict[str, Any] = {"ready": True}
        if state.secrets is not None:
            at, ok, reason = self._secrets_ready
            if time.monotonic() - at > 5.0:
                ok, reason = state.secrets.ready()
                self._secrets_ready = (time.monotonic(), ok, reason)
            if not ok:
                out.update(ready=False, not_ready_reason=f"secrets: {reason}")
        if state.watcher is not None:
            out.update(model_swaps=state.watcher.swaps, model_watch_error=state.watcher.last_error)
        return out


class WatcherStep(Step[WorkerProcess]):
    """``model_source=registry``: follow the alias and hot-swap a promoted version."""

    name = "watcher"
    requires = ("model",)

    def start(self, state: WorkerProcess) -> None:
        s = state.settings
        logging.getLogger("hdfs").setLevel(logging.WARNING)  # HdfsCLI logs every poll at INFO
        if s.model_source != "registry":
            return
        from worker.model_source import ModelWatcher

        state.watcher = ModelWatcher(state, source=state.model_source())
        if s.model_poll_s > 0:
            state.add_loop(state.watcher.loop)  # the heartbeat restarts it, should it die

    def stop(self, state: WorkerProcess) -> None:
        if state.watcher is not None:
            state.watcher.stop()


class SweeperStep(Step[WorkerProcess]):
    """Re-send lost work, refill parked store jobs, sweep expired uploads and old feedback
    (only with a ``send_task`` to re-send with, and ``sweep_every_s`` > 0)."""

    name = "sweeper"
    requires = ("store",)

    def __init__(self, send_task: Callable[..., Any] | None) -> None:
        self.send_task = send_task
        self._stop = threading.Event()

    def start(self, state: WorkerProcess) -> None:
        s = state.settings
        send_task = self.send_task
        if s.sweep_every_s <= 0 or send_task is None:
            return
        from spamq.jobs.queue import send_refill, send_work
        from worker.sweeper import Sweeper

        store = state.jobs
        sweeper = Sweeper(store, lambda job, indices: send_work(send_task, job, indices),
                          name=state.name, queues=[s.interactive_queue, s.bulk_queue],
                          every_s=s.sweep_every_s, lost_after_s=s.lost_after_s,
                          uploads=lambda now: self.sweep_uploads(state, now),
                          feedback=(lambda now: self.sweep_feedback(state, now))
                          if s.feedback_sweep_every_s > 0 else None,
                          feedback_every_s=s.feedback_sweep_every_s,
                          refill=lambda owner: send_refill(send_task, store, owner, s))
        state.add_loop(Loop("spamq-sweeper", sweeper.sweep_once, every_s=s.sweep_every_s,
                            stop=self._stop))

    def stop(self, state: WorkerProcess) -> None:
        self._stop.set()

    @staticmethod
    def sweep_uploads(state: WorkerProcess, now: float) -> int:
        """Expired uploads (the artifact client is made on first use)."""
        from spamq.storage.uploads import Uploads

        s = state.settings
        return Uploads(state.jobs.redis, state.artifacts, tenant_root=s.store_tenant_root,
                       quota_bytes=s.max_upload_bytes_per_key, ttl_s=s.job_ttl_s).sweep(now)

    @staticmethod
    def sweep_feedback(state: WorkerProcess, now: float) -> int:
        """Feedback partitions past SPAMQ_FEEDBACK_RETENTION_DAYS."""
        from datetime import UTC, datetime

        from spamq.feedback.store import sweep_retention

        s = state.settings
        return sweep_retention(state.artifacts, retention_days=s.feedback_retention_days,
                               root=s.feedback_root, now=datetime.fromtimestamp(now, UTC))


class PredictionLogStep(Step[WorkerProcess]):
    """``prediction_log``: every stored result, written to the artifact store in parts."""

    name = "prediction_log"
    requires = ("store",)

    def start(self, state: WorkerProcess) -> None:
        s = state.settings
        if not s.prediction_log:
            return
        from spamq.storage.prediction_log import PredictionLog

        state.prediction_log = PredictionLog(
            state.artifacts, worker=state.name, root=s.prediction_log_root,
            text_mode=s.prediction_log_text, max_rows=s.prediction_log_max_rows,
            max_age_s=s.prediction_log_max_age_s,
        )
        logger.info("prediction log: %s/%s, text as %s", state.prediction_log.store.describe(),
                    s.prediction_log_root, s.prediction_log_text)

    def stop(self, state: WorkerProcess) -> None:
        if state.prediction_log is not None:
            try:
                state.prediction_log.close()
            except Exception:  # noqa: BLE001 - shutdown goes on; the rows are lost, say so
                logger.exception("prediction log: final flush failed")


class ShadowStep(Step[WorkerProcess]):
    """The shadow tap: idle (no candidate) until the heartbeat finds the shadow key."""

    name = "shadow"
    requires = ("store",)

    def start(self, state: WorkerProcess) -> None:
        from spamq.models.registry import ModelRegistry
        from worker.model_source import build_runner
        from worker.shadow import ShadowTap, ShadowWriter

        s = state.settings

        def load(model: str, version: str) -> BatchClassifier:  # verified like production
            path = ModelRegistry(state.artifacts).pull(model, version,
                                                       cache_dir=s.model_cache_dir)
            return build_runner(s, path)

        writer = ShadowWriter(state.artifacts, worker=state.name, root=s.shadow_root,
                              max_rows=s.shadow_max_rows, max_age_s=s.shadow_flush_s)
        state.shadow = ShadowTap(load, writer, model=s.model_name,
                                 queue_rows=s.shadow_queue_rows)
        state.shadow.start()

    def stop(self, state: WorkerProcess) -> None:
        if state.shadow is not None:
            state.shadow.stop()


def worker_steps(load_runner: LoadRunner,
                 send_task: Callable[..., Any] | None) -> list[Step[WorkerProcess]]:
    """A worker process's steps (each starts after those it requires)."""
    return [SecretsStep(), StoreStep(), ModelStep(load_runner), BatcherStep(), HeartbeatStep(),
            WatcherStep(), SweeperStep(send_task), PredictionLogStep(), ShadowStep()]


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
