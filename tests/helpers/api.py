"""The API in process for unit tests: a fakeredis JobStore, a recording task sender, and the
worker's SplitScorer with a fake model to run the store-job tasks the API queued."""

from __future__ import annotations

import io
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
from flask.testing import FlaskClient

from api import create_app
from spamq.jobs.store import JobStore
from spamq.settings import Settings
from spamq.storage.artifacts import LocalArtifactStore
from worker.split_tasks import SplitScorer, plan_quotes


class RecordingSender:
    """A ``send_task`` that keeps (name, args, queue) of every task and sends nothing."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, str]] = []

    def __call__(self, name, *, args, queue, headers=None) -> None:
        self.sent.append((name, args, queue))


class Tasks:
    """A ``send_task`` that keeps (name, args) of every task, for :func:`run_all` to run."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list]] = []

    def __call__(self, name, *, args, queue, headers=None) -> None:
        self.sent.append((name, list(args)))


def make_api(send_task: Any = None, **settings: Any) -> tuple[FlaskClient, JobStore]:
    """A test client of the API with ``settings`` on an empty fakeredis JobStore."""
    store = JobStore(fakeredis.FakeRedis(), ttl_s=600)
    app = create_app(Settings(**settings), store=store,
                     send_task=RecordingSender() if send_task is None else send_task)
    return app.test_client(), store


@dataclass
class Prediction:
    label: str
    spam_probability: float
    model_version: str = "v-test"

    def as_dict(self) -> dict:
        return {"label": self.label, "spam_probability": self.spam_probability,
                "truncated": False, "model_version": self.model_version}


class WinScorer:
    """The worker's scorer with a fake model: spam (0.9) where a text holds "WIN", else ham
    (0.1); each batch it was handed is kept in ``batches``."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def submit(self, texts, *, interactive=True, **_) -> Future:
        self.batches.append(list(texts))
        future: Future = Future()
        future.set_result([Prediction("spam", 0.9) if "WIN" in t else Prediction("ham", 0.1)
                           for t in texts])
        return future


def run_all(jobs: JobStore, tasks: Tasks, artifacts: LocalArtifactStore,
            max_chars: int = 5000) -> list[int]:
    """Run every queued task, and the ones they queue, to the end; the splits scored."""
    scorer = SplitScorer(jobs, artifacts, WinScorer(), max_chars=max_chars,
                         send_next=lambda i: tasks.sent.append(("spamq.score_split", [job, i])))
    ran = []
    while tasks.sent:
        name, args = tasks.sent.pop(0)
        job = args[0]
        if name == "spamq.plan_store_job":
            plan_quotes(jobs, artifacts, job)
            tasks.sent += [("spamq.score_split", [job, i]) for i in jobs.leases.advance(job, 2)]
        else:
            scorer.run(job, args[1])
            ran.append(args[1])
    return ran


def scored_upload(client: FlaskClient, store: JobStore, sender: RecordingSender, name: str,
                  content: str, **form: Any) -> dict:
    """Upload ``content`` as the file ``name``, then run the store job's tasks as a worker
    would (with WinScorer); the job's view."""
    data = {"file": (io.BytesIO(content.encode()), name), **form}
    resp = client.post("/v1/jobs", data=data, content_type="multipart/form-data")
    assert resp.status_code == 202, resp.get_json()
    tasks = Tasks()
    tasks.sent = [(n, list(a)) for n, a, _ in sender.sent]
    sender.sent.clear()
    settings = client.application.extensions["spamq"]["settings"]
    run_all(store, tasks, LocalArtifactStore(settings.artifact_dir),
            max_chars=settings.max_chars_per_text)
    return client.get(resp.get_json()["status_url"]).get_json()


@dataclass
class File:
    """The least of an input file that StoreJobs.create reads."""

    path: str
    size: int


@dataclass
class Split:
    """The least of a split that StoreJobs.create reads: its file's index."""

    file: int


class SplitHarness:
    """The API in process over a local store under ``tmp_path/store``; what it sends is kept in
    ``sent`` as (name, args), and the worker's SplitScorer runs the splits sent."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.root = tmp_path / "store"
        self.root.mkdir()
        self.jobs = JobStore(fakeredis.FakeRedis(), ttl_s=600)
        self.sent: list[tuple[str, list]] = []
        settings = Settings(artifact_dir=self.root, bulk_window_chunks=100, **settings)
        self.client = create_app(settings, store=self.jobs, send_task=self._send).test_client()
        self.artifacts = LocalArtifactStore(self.root)

    def _send(self, name, *, args, queue, headers=None):
        self.sent.append((name, list(args)))

    def write(self, path: str, data: bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def submit(self, **body) -> str:
        self.sent.clear()
        resp = self.client.post("/v1/jobs", json={"hdfs_output": "out/j", **body})
        assert resp.status_code == 202, resp.get_json()
        return resp.get_json()["id"]

    def splits_sent(self) -> list[int]:
        assert all(name == "spamq.score_split" for name, _ in self.sent), self.sent
        return [args[1] for _, args in self.sent]

    def scorer(self, scorer=None, **kw) -> SplitScorer:
        return SplitScorer(self.jobs, self.artifacts, scorer or WinScorer(), max_chars=5000,
                           **kw)

    def run_all(self, **kw) -> None:
        scorer = self.scorer(**kw)
        for index in self.splits_sent():
            scorer.run(self._job(), index)

    def _job(self) -> str:
        return self.sent[0][1][0]
