"""What a worker process sets up around its model: secrets, model source, prediction log.

Called from worker.state / worker.celery_app / worker.tasks with one line each, so the
per-process state stays small. A start-up failure (secrets unreadable, model refused)
is logged as one clear line and ends the process: a worker without them is never ready.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from spamq.secrets.service import ServiceSecrets, load_service_secrets
from spamq.secrets.sources import SecretError
from spamq.settings import Settings, get_settings

if TYPE_CHECKING:
    from spamq.storage.prediction_log import PredictionLog
    from worker.model_source import ModelWatcher
    from worker.runner import BatchClassifier
    from worker.state import WorkerState

logger = logging.getLogger(__name__)

EXIT_SECRETS = 78  # EX_CONFIG
EXIT_MODEL = 79

_lock = threading.Lock()
_secrets: ServiceSecrets | None = None
_watcher: ModelWatcher | None = None
_prediction_log: PredictionLog | None = None
_ready_cache: tuple[float, bool, str] = (0.0, True, "")


def worker_secrets() -> ServiceSecrets:
    """This process's secrets (read once; the process exits if they cannot be read)."""
    global _secrets
    with _lock:
        if _secrets is None:
            try:
                _secrets = load_service_secrets(get_settings(), service="worker")
            except SecretError as exc:
                logger.critical("worker not started: %s", exc)
                raise SystemExit(EXIT_SECRETS) from exc
        return _secrets


def worker_settings() -> Settings:
    return worker_secrets().settings


def load_registry_runner(settings: Settings) -> BatchClassifier:
    from worker.model_source import ModelSourceError, load_from_registry

    try:
        return load_from_registry(settings)
    except ModelSourceError as exc:
        logger.critical("worker not started: model %s@%s not loaded: %s",
                        settings.model_name, settings.model_alias, exc)
        raise SystemExit(EXIT_MODEL) from exc


def start_extras(state: WorkerState) -> None:
    """After the model is loaded: the alias watcher and the prediction log, as configured."""
    global _watcher, _prediction_log
    s = state.settings
    logging.getLogger("hdfs").setLevel(logging.WARNING)  # HdfsCLI logs every poll at INFO
    if s.model_source == "registry" and _watcher is None:
        from worker.model_source import ModelWatcher

        _watcher = ModelWatcher(state)
        if s.model_poll_s > 0:
            state.add_loop(_watcher.loop)  # the heartbeat restarts it, should it die
    if s.sweep_every_s > 0:
        from spamq.jobs.queue import send_work
        from worker.celery_app import app
        from worker.loops import Loop
        from worker.sweeper import Sweeper

        sweeper = Sweeper(state.store, lambda job, indices: send_work(app.send_task, job, indices),
                          name=state.name,
                          queues=[s.interactive_queue, s.bulk_queue],
                          every_s=s.sweep_every_s, lost_after_s=s.lost_after_s)
        state.add_loop(Loop("spamq-sweeper", sweeper.sweep_once, every_s=s.sweep_every_s,
                            stop=state._stop))
    if s.prediction_log and _prediction_log is None:
        from spamq.storage.artifacts import artifact_store_from_settings
        from spamq.storage.prediction_log import PredictionLog

        _prediction_log = PredictionLog(
            artifact_store_from_settings(s), worker=state.name, root=s.prediction_log_root,
            text_mode=s.prediction_log_text, max_rows=s.prediction_log_max_rows,
            max_age_s=s.prediction_log_max_age_s,
        )
        logger.info("prediction log: %s/%s, text as %s", _prediction_log.store.describe(),
                    s.prediction_log_root, s.prediction_log_text)


def log_predictions(job_id: str, start: int, texts: Sequence[str],
                    results: Sequence[dict[str, Any]]) -> None:
    """Hand stored results to the prediction log (a no-op when it is off)."""
    if _prediction_log is not None:
        _prediction_log.record(job_id=job_id, start=start, texts=texts, results=results)


def heartbeat_extra() -> dict[str, Any]:
    """Readiness of the secret source (checked at most every 5 s) and the model source."""
    global _ready_cache
    out: dict[str, Any] = {"ready": True}
    if _secrets is not None:
        at, ok, reason = _ready_cache
        if time.monotonic() - at > 5.0:
            ok, reason = _secrets.ready()
            _ready_cache = (time.monotonic(), ok, reason)
        if not ok:
            out.update(ready=False, not_ready_reason=f"secrets: {reason}")
    if _watcher is not None:
        out.update(model_swaps=_watcher.swaps, model_watch_error=_watcher.last_error)
    return out


def shutdown() -> None:
    if _watcher is not None:
        _watcher.stop()
    if _prediction_log is not None:
        try:
            _prediction_log.close()
        except Exception:  # noqa: BLE001 - shutdown goes on; the rows are lost, say so
            logger.exception("prediction log: final flush failed")
    if _secrets is not None:
        _secrets.source.close()
