"""spamq.retry: the one backoff loop behind model pulls, secret reads and output writes."""

from __future__ import annotations

import pytest

from spamq.retry import retry


def test_backs_off_doubling_up_to_the_cap_and_returns_the_first_success():
    sleeps, calls = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 5:
            raise ConnectionError(f"down {len(calls)}")
        return "ok"

    assert retry(flaky, retry_on=ConnectionError, attempts=5, first_delay_s=0.5,
                 max_delay_s=1.5, what="x", sleep=sleeps.append) == "ok"
    assert sleeps == [0.5, 1.0, 1.5, 1.5]


def test_the_last_error_propagates_unchanged():
    sleeps = []

    def down():
        raise ConnectionError("still down")

    with pytest.raises(ConnectionError, match="still down"):
        retry(down, retry_on=ConnectionError, attempts=3, first_delay_s=1, max_delay_s=10,
              what="x", sleep=sleeps.append)
    assert sleeps == [1, 2]


def test_other_errors_are_not_retried():
    sleeps, calls = [], []

    def broken():
        calls.append(1)
        raise KeyError("not transient")

    with pytest.raises(KeyError):
        retry(broken, retry_on=ConnectionError, attempts=5, first_delay_s=1, max_delay_s=1,
              what="x", sleep=sleeps.append)
    assert calls == [1] and sleeps == []
