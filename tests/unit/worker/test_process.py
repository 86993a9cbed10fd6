"""worker.process.WorkerProcess on fakes: start, stop, hot swap, one model-loading path."""

from __future__ import annotations

import json
import os
import threading
import time

import fakeredis
import pytest

from spamq.jobs.schema import WORKER_PREFIX
from spamq.jobs.store import JobStore
from spamq.secrets.service import ServiceSecrets
from spamq.settings import Settings
from spamq.storage.artifacts import LocalArtifactStore
from worker import process
from worker.bootsteps import Blueprint, Step, in_order
from worker.process import EXIT_MODEL, WorkerProcess, load_model

STEPS = ["secrets", "store", "model", "batcher", "heartbeat", "watcher", "sweeper",
         "prediction_log", "shadow"]


class CPU:
    type = "cpu"

    def __str__(self) -> str:
        return "cpu"


class FakeRunner:
    """Token ids = one per word; spam probability = words / 10."""

    threshold = 0.5
    precision = "fp32"
    device = CPU()

    def __init__(self, version: str) -> None:
        self.version = version

    def encode(self, texts):
        return [[len(w) for w in t.split()] for t in texts], [False] * len(texts)

    def pad(self, ids, index):
        return [ids[i] for i in index]

    def spam_probabilities(self, batch):
        return [min(1.0, len(r) / 10) for r in batch]


class FakeSource:
    def __init__(self, ok: bool = True) -> None:
        self.ok, self.closed = ok, 0

    def ready(self):
        return self.ok, "fine" if self.ok else "vault sealed"

    def close(self):
        self.closed += 1


def settings(tmp_path, **kw) -> Settings:
    base = dict(worker_pool="solo", worker_heartbeat_s=0.05, sweep_every_s=0,
                artifact_dir=tmp_path / "artifacts", model_cache_dir=tmp_path / "cache",
                device="cpu")
    return Settings(**{**base, **kw})


def make(tmp_path, *, source=None, runner=None, send_task=None, **kw):
    s = settings(tmp_path, **kw)
    r = fakeredis.FakeRedis()
    store = JobStore(r, ttl_s=60)
    source = source or FakeSource()
    proc = WorkerProcess(secrets=ServiceSecrets(settings=s, source=source), store=store,
                         load_runner=lambda _p: runner or FakeRunner("v1"), send_task=send_task)
    return proc, r, source


def test_start_runs_the_steps_in_order_and_beats(tmp_path):
    proc, r, _ = make(tmp_path)
    proc.start()
    try:
        assert proc.steps.started == STEPS
        assert proc.name.endswith(f":{os.getpid()}")
        beat = json.loads(r.get(WORKER_PREFIX + proc.name))
        assert beat["name"] == proc.name and beat["model_version"] == "v1"
        assert beat["device"] == "cpu" and beat["precision"] == "fp32" and beat["ready"] is True
        assert proc.store.workers.live() == {proc.name}
        assert [p.model_version for p in proc.batcher.predict(["a b c"])] == ["v1"]
        assert {loop.name for loop in proc.loops} == {"spamq-heartbeat", "spamq-batch-stats"}
        assert all(loop.alive for loop in proc.loops)
        proc.start()  # idempotent: nothing starts twice
        assert len(proc.loops) == 2 and proc.steps.started == STEPS
    finally:
        proc.stop()


def test_heartbeat_says_not_ready_when_the_secret_source_is_not(tmp_path):
    proc, r, _ = make(tmp_path, source=FakeSource(ok=False))
    proc.start()
    try:
        beat = json.loads(r.get(WORKER_PREFIX + proc.name))
        assert beat["ready"] is False and beat["not_ready_reason"] == "secrets: vault sealed"
    finally:
        proc.stop()


def test_stop_stops_loops_forgets_the_worker_and_closes_parts(tmp_path):
    proc, r, source = make(tmp_path)
    proc.start()
    name, loops, batcher = proc.name, proc.loops, proc.batcher
    proc.stop()
    assert r.get(WORKER_PREFIX + name) is None and proc.store.workers.live() == set()
    deadline = time.monotonic() + 2
    while any(loop.alive for loop in loops) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [loop.alive for loop in loops] == [False, False]
    assert [loop.ensure_running() for loop in loops] == [False, False]  # stopped: not restarted
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(["a"])
    assert source.closed == 1 and proc.steps.started == []
    proc.stop()  # idempotent
    assert source.closed == 1
    time.sleep(0.15)  # no heartbeat thread brings the key back
    assert r.get(WORKER_PREFIX + name) is None


def test_stop_goes_in_reverse_order(tmp_path, monkeypatch):
    proc, _, _ = make(tmp_path)
    proc.start()
    stopped = []
    for step in proc.steps.steps:
        monkeypatch.setattr(step, "stop", lambda state, real=step.stop, name=step.name: (
            stopped.append(name), real(state)))
    proc.stop()
    assert stopped == list(reversed(STEPS))


def test_load_secrets_starts_the_secrets_step_alone_and_stop_closes_them(tmp_path):
    proc, _, source = make(tmp_path)
    assert proc.load_secrets() is proc.secrets and proc.steps.started == ["secrets"]
    assert not proc.started and proc.runner is None
    proc.stop()
    assert source.closed == 1 and proc.steps.started == []


class _Named(Step[list]):
    def __init__(self, name, requires=()):
        self.name, self.requires = name, tuple(requires)

    def start(self, state):
        state.append(("start", self.name))

    def stop(self, state):
        state.append(("stop", self.name))


def test_steps_start_after_what_they_require_and_stop_in_reverse():
    steps = [_Named("c", ["b"]), _Named("a"), _Named("b", ["a"]), _Named("d")]
    assert [s.name for s in in_order(steps)] == ["a", "b", "c", "d"]
    events: list = []
    blueprint = Blueprint(steps)
    blueprint.start(events, until="b")
    assert blueprint.started == ["a", "b"] and not blueprint.complete
    blueprint.start(events)
    blueprint.start(events)  # idempotent
    assert blueprint.started == ["a", "b", "c", "d"] and blueprint.complete
    blueprint.stop(events)
    assert events == [("start", n) for n in "abcd"] + [("stop", n) for n in "dcba"]
    with pytest.raises(ValueError, match="circle"):
        in_order([_Named("x", ["y"]), _Named("y", ["x"])])
    with pytest.raises(ValueError, match="unknown"):
        in_order([_Named("x", ["nope"])])


def test_hot_swap_replaces_the_runner_the_batcher_uses(tmp_path):
    proc, r, _ = make(tmp_path)
    proc.start()
    try:
        batcher = proc.batcher
        assert [p.model_version for p in batcher.predict(["a", "b c"])] == ["v1", "v1"]
        proc.swap_runner(FakeRunner("v2"))
        assert proc.batcher is batcher and proc.runner.version == "v2"  # same batcher
        assert [p.model_version for p in batcher.predict(["a", "b c"])] == ["v2", "v2"]
        deadline = time.monotonic() + 2  # the next heartbeat names the new version
        while (json.loads(r.get(WORKER_PREFIX + proc.name))["model_version"] != "v2"
               and time.monotonic() < deadline):
            time.sleep(0.01)
        assert json.loads(r.get(WORKER_PREFIX + proc.name))["model_version"] == "v2"
    finally:
        proc.stop()


def test_the_sweeper_runs_only_with_a_send_task(tmp_path):
    proc, _, _ = make(tmp_path, sweep_every_s=0.05)
    proc.start()
    names = {loop.name for loop in proc.loops}
    proc.stop()
    assert "spamq-sweeper" not in names
    sent = []
    proc, _, _ = make(tmp_path, sweep_every_s=0.05, send_task=lambda *a, **k: sent.append(a))
    proc.start()
    names = {loop.name for loop in proc.loops}
    proc.stop()
    assert "spamq-sweeper" in names


def test_one_artifact_client_for_the_prediction_log_and_the_model_source(tmp_path):
    proc, _, _ = make(tmp_path, prediction_log=True)
    proc.start()
    try:
        assert isinstance(proc.artifacts, LocalArtifactStore)
        assert proc.prediction_log.store is proc.artifacts
        assert proc.model_source().registry.store is proc.artifacts
        assert proc.artifacts is proc.artifacts
    finally:
        proc.stop()


def test_dir_and_registry_load_through_one_path(tmp_path):
    from scripts.random_model import make_random_model
    from spamq.models.registry import ModelRegistry

    version = make_random_model(tmp_path / "m1", seed=1)
    s = settings(tmp_path, model_source="dir", model_dir=tmp_path / "m1")
    proc = WorkerProcess(secrets=ServiceSecrets(settings=s, source=FakeSource()))
    assert load_model(proc).version == version
    ModelRegistry(LocalArtifactStore(tmp_path / "artifacts")).push(tmp_path / "m1",
                                                                    name="spamq-sms")
    s = settings(tmp_path, model_source="registry")  # pushed, but no alias yet
    proc = WorkerProcess(secrets=ServiceSecrets(settings=s, source=FakeSource()))
    with pytest.raises(SystemExit) as exc:
        load_model(proc)
    assert exc.value.code == EXIT_MODEL


def test_current_starts_the_installed_process(tmp_path, monkeypatch):
    monkeypatch.setattr(process, "_current", None)
    with pytest.raises(RuntimeError, match="no WorkerProcess"):
        process.current()
    proc, _, _ = make(tmp_path)
    assert process.install(proc) is proc and process.installed() is proc
    assert not proc.started
    try:
        assert process.current() is proc and proc.started
    finally:
        proc.stop()


def test_a_dead_loop_is_restarted_by_the_heartbeat(tmp_path):
    proc, _, _ = make(tmp_path)
    proc.start()
    try:
        stats = next(loop for loop in proc.loops if loop.name == "spamq-batch-stats")
        died = threading.Event()

        def boom():
            died.set()
            raise SystemExit  # kills the thread (Loop only catches Exception)

        stats._step = boom
        assert died.wait(2)
        stats._step = lambda: None
        deadline = time.monotonic() + 2
        while stats.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stats.restarts >= 1 and stats.alive
    finally:
        proc.stop()
