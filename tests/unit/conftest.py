"""Unit tests of API behaviour run without API keys; tests/unit/test_auth.py turns them on."""

import pytest


@pytest.fixture(autouse=True)
def _no_auth_by_default(monkeypatch):
    monkeypatch.setenv("SPAMQ_AUTH_REQUIRED", "false")
