"""Unit tests run on fakeredis. Those of API behaviour run without API keys;
tests/unit/api/test_auth.py turns them on."""

import fakeredis
import pytest

from spamq.jobs.store import JobStore
from tests.helpers.api import Tasks, make_api


@pytest.fixture(autouse=True)
def _no_auth_by_default(monkeypatch):
    monkeypatch.setenv("SPAMQ_AUTH_REQUIRED", "false")


@pytest.fixture
def store() -> JobStore:
    """An empty JobStore on fakeredis (a module that means another store by ``store`` says so)."""
    return JobStore(fakeredis.FakeRedis(), ttl_s=600)


@pytest.fixture
def ctx(tmp_path):
    """(client, jobs, tasks, root): the API over a local store at ``root``, small splits; what
    it queues is kept in ``tasks`` for tests.helpers.api.run_all (a module may mean another
    set-up by ``ctx``)."""
    tasks = Tasks()
    client, jobs = make_api(tasks, artifact_dir=tmp_path, split_bytes=200, bulk_window_chunks=2)
    return client, jobs, tasks, tmp_path
