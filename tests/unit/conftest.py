"""Unit tests run on fakeredis. Those of API behaviour run without API keys;
tests/unit/api/test_auth.py turns them on."""

import fakeredis
import pytest

from spamq.jobs.store import JobStore


@pytest.fixture(autouse=True)
def _no_auth_by_default(monkeypatch):
    monkeypatch.setenv("SPAMQ_AUTH_REQUIRED", "false")


@pytest.fixture
def store() -> JobStore:
    """An empty JobStore on fakeredis (a module that means another store by ``store`` says so)."""
    return JobStore(fakeredis.FakeRedis(), ttl_s=600)
