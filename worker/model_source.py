"""Where a worker's model comes from, and the hot swap of a promoted one.

``model_source=dir``: ``model_dir`` as it is. ``model_source=registry``: the registry
(HDFS when ``hdfs_url`` is set, else ``artifact_dir``) resolves ``model_name``/``model_alias``
to a version, pulls it into ``model_cache_dir`` (verified against its manifest: a corrupt
or partial version is refused, never loaded) and the worker loads it.

:class:`ModelWatcher` re-resolves the alias every ``model_poll_s`` seconds; when it has moved
it pulls, loads and warms the new version in its own thread, then swaps it in with
``state.swap_runner`` (the runner slot of worker/process.py). The batcher reads the runner per
forward pass and every request keeps the runner that tokenised it, so jobs in flight
finish on the version they started with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from spamq.errors import SpamqError
from spamq.models.registry import ModelRefused, ModelRegistry, RegistryError
from spamq.retry import retry
from spamq.settings import Settings
from spamq.storage.artifacts import ArtifactError, ArtifactNotFound
from worker.loops import Loop

if TYPE_CHECKING:
    from worker.runner import BatchClassifier

logger = logging.getLogger(__name__)
T = TypeVar("T")


class RunnerSlot(Protocol):
    """What the watcher swaps into: worker.process.WorkerProcess is one."""

    @property
    def runner(self) -> BatchClassifier | None: ...

    @property
    def settings(self) -> Settings: ...

    def swap_runner(self, runner: BatchClassifier) -> None: ...


class ModelSourceError(SpamqError, RuntimeError):
    """The worker cannot get its model: registry unreachable, alias unknown, artifact corrupt
    (``refused``: the registry refused the version as corrupt; it is not pulled again)."""

    http_status = 503
    code = "unavailable"
    public_message = "the model is not available (see the worker log)"

    def __init__(self, *args: object, refused: bool = False) -> None:
        super().__init__(*args)
        self.refused = refused


def retrying(fn: Callable[[], T], *, what: str, attempts: int, backoff_s: float,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """``fn()`` with bounded retries (exponential backoff) while the store is unreachable."""
    def once() -> T:
        try:
            return fn()
        except ArtifactNotFound as exc:  # a missing file is not transient
            raise ModelSourceError(f"{what}: {exc}") from exc

    try:
        return retry(once, retry_on=(ArtifactError, OSError), attempts=attempts,
                     first_delay_s=backoff_s, max_delay_s=30.0, what=what, sleep=sleep)
    except (ArtifactError, OSError) as exc:
        raise ModelSourceError(
            f"{what}: registry unreachable after {attempts} tries: {exc}") from exc


class ModelSource:
    """Resolve the configured alias and pull its version, for one worker process."""

    def __init__(self, settings: Settings, *, registry: ModelRegistry | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.registry = registry or ModelRegistry.from_settings(settings)
        self._sleep = sleep

    @property
    def ref(self) -> str:
        return f"{self.settings.model_name}@{self.settings.model_alias}"

    def resolve(self, *, attempts: int | None = None) -> str:
        s = self.settings
        try:
            return retrying(lambda: self.registry.resolve(s.model_name, s.model_alias),
                            what=f"resolving {self.ref}",
                            attempts=attempts or s.model_pull_attempts,
                            backoff_s=s.model_pull_backoff_s, sleep=self._sleep)
        except RegistryError as exc:
            raise ModelSourceError(str(exc)) from exc

    def pull(self, version: str, *, attempts: int | None = None) -> Path:
        s = self.settings
        try:
            return retrying(
                lambda: self.registry.pull(s.model_name, version, cache_dir=s.model_cache_dir),
                what=f"pulling {s.model_name}/{version}",
                attempts=attempts or s.model_pull_attempts,
                backoff_s=s.model_pull_backoff_s, sleep=self._sleep)
        except RegistryError as exc:  # corrupt/partial: refused by the registry, never loaded
            raise ModelSourceError(str(exc), refused=isinstance(exc, ModelRefused)) from exc


def build_runner(settings: Settings, model_dir: Path) -> BatchClassifier:
    """Load and warm a runner with the settings' device, precision and limits."""
    from worker.runner import BatchClassifier

    runner = BatchClassifier.from_settings(settings, model_dir)
    runner.warm_up()
    return runner


def load_from_registry(settings: Settings, *, source: ModelSource | None = None) -> BatchClassifier:
    """At start: resolve, pull, verify, load and warm; logs the resolved-to-ready time."""
    source = source or ModelSource(settings)
    version = source.resolve()
    resolved = time.perf_counter()
    logger.info("model alias %s resolved to %s", source.ref, version)
    path = source.pull(version)
    pulled = time.perf_counter()
    runner = build_runner(settings, path)
    if runner.version != version:  # verify_model_dir ran again in the runner
        raise ModelSourceError(f"{path}: holds {runner.version}, expected {version}")
    logger.info("model %s ready %.2fs after alias resolved (pull %.2fs, load+warm %.2fs)",
                version, time.perf_counter() - resolved, pulled - resolved,
                time.perf_counter() - pulled)
    return runner


def load_runner(settings: Settings, *, source: ModelSource | None = None) -> BatchClassifier:
    """The model the settings name, loaded and warmed: ``model_dir`` as it is
    (``model_source=dir``) or the alias's version from the registry (ModelSourceError)."""
    if settings.model_source == "registry":
        return load_from_registry(settings, source=source)
    return build_runner(settings, settings.model_dir)


class ModelWatcher:
    """Follows the alias in ``loop`` (the worker process starts it) and hot-swaps the
    process's runner through ``state.swap_runner``."""

    def __init__(self, state: RunnerSlot, *, source: ModelSource | None = None) -> None:
        self.state = state
        self.source = source or ModelSource(state.settings)
        self.poll_s = state.settings.model_poll_s
        self.swaps = 0
        self.last_error: str | None = None
        self._refused: set[str] = set()
        self._stop = threading.Event()
        self.loop = Loop("spamq-model-watcher", self._step, every_s=self.poll_s or 1.0,
                         stop=self._stop)

    def stop(self) -> None:
        self._stop.set()

    def check_once(self) -> bool:
        """Re-resolve; if the alias moved, pull + load + warm, then swap. True if swapped."""
        current = self.state.runner.version if self.state.runner else None
        version = self.source.resolve(attempts=1)
        if version == current or version in self._refused:
            return False
        resolved = time.perf_counter()
        logger.info("model alias %s moved: %s -> %s; loading it", self.source.ref, current, version)
        try:
            runner = build_runner(self.state.settings, self.source.pull(version, attempts=1))
        except ModelSourceError as exc:
            if exc.refused:  # corrupt: do not download it again every poll
                self._refused.add(version)
            raise
        self.state.swap_runner(runner)  # the batcher picks it up at its next forward pass
        self.swaps += 1
        self.last_error = None
        logger.info("model swapped to %s (%.2fs after alias resolved)", version,
                    time.perf_counter() - resolved)
        return True

    def _step(self) -> None:
        try:
            self.check_once()
        except (ModelSourceError, ArtifactError, OSError) as exc:
            self.last_error = str(exc)
            logger.warning("model watcher: keeping %s: %s",
                           self.state.runner.version if self.state.runner else None, exc)
        except Exception as exc:  # noqa: BLE001 - the watcher must outlive a bad version
            self.last_error = str(exc)
            logger.exception("model watcher: loading the new version failed")
