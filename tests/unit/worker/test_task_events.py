"""SPAMQ_TASK_EVENTS: Celery task events on (Flower's task view) or off (less CPU per task)."""

from __future__ import annotations

import argparse

import pytest

from spamq.cli import main as cli
from spamq.jobs.queue import make_celery
from spamq.settings import Settings


@pytest.mark.parametrize("on", [True, False])
def test_the_setting_reaches_the_celery_app(on):
    conf = make_celery(Settings(task_events=on)).conf
    assert (conf.worker_send_task_events, conf.task_send_sent_event) == (on, on)


@pytest.mark.parametrize(("env", "expected"), [(None, True), ("false", False), ("true", True)])
def test_the_worker_command_asks_for_events_only_when_on(monkeypatch, env, expected):
    if env is None:
        monkeypatch.delenv("SPAMQ_TASK_EVENTS", raising=False)
    else:
        monkeypatch.setenv("SPAMQ_TASK_EVENTS", env)
    seen = []
    monkeypatch.setattr(cli, "_exec", lambda argv: seen.append(argv) or 0)
    cli._worker(argparse.Namespace(queues=None, name="w@h"))
    assert ("--events" in seen[0]) is expected


def test_interactive_group_messages_send_no_task_events_and_the_others_do():
    """A /v1/predict job goes as a group message (of one or more jobs): its task sends no
    received/started/succeeded events; bulk chunks, splits and plans keep theirs."""
    from types import SimpleNamespace

    from celery.worker.request import Request

    from spamq.jobs.queue import PLAN_STORE_JOB, SCORE_CHUNK, SCORE_GROUP, SCORE_SPLIT
    from worker.tasks import app  # the worker's app, with its tasks

    assert app.tasks[SCORE_GROUP].send_events is False
    assert all(app.tasks[name].send_events for name in (SCORE_CHUNK, SCORE_SPLIT,
                                                         PLAN_STORE_JOB))

    class Eventer:
        enabled = True
        sent: list[str] = []

        def send(self, type, **_):
            self.sent.append(type)

    for name in (SCORE_GROUP, SCORE_CHUNK):  # what Celery's worker does for each event
        Request.send_event(SimpleNamespace(_eventer=Eventer(), task=app.tasks[name], id="x"),
                           "task-started")
    assert Eventer.sent == ["task-started"]  # the chunk's, not the group's


def test_a_worker_process_sets_the_openmp_wait_policy_before_torch_loads():
    import os

    import worker.celery_app  # noqa: F401 - sets it at import
    from spamq.settings import get_settings

    assert os.environ["OMP_WAIT_POLICY"] == get_settings().omp_wait_policy.upper() == "PASSIVE"
