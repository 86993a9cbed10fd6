"""How a task ends on an error: Redis or the broker away (a restart, a Sentinel failover) puts
the message back; anything else fails the job."""

from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import Mock

import pytest
import redis
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from worker.tasks import _failures


@pytest.mark.parametrize("error", [
    redis.ConnectionError("Error 111 connecting"),
    # kombu's, when sending the next chunk finds no broker: "No master found" mid-failover
    OperationalError("No master found for 'mymaster'"),
])
def test_redis_or_the_broker_away_requeues_the_message_and_leaves_the_job(error):
    state = SimpleNamespace(jobs=Mock())
    with pytest.raises(Reject) as caught, _failures(state, ["job-1"], "chunk 4"):
        raise error
    assert caught.value.requeue is True
    state.jobs.jobs.fail.assert_not_called()


def test_any_other_error_fails_the_job():
    state = SimpleNamespace(jobs=Mock())
    with pytest.raises(ValueError), _failures(state, ["job-1"], "chunk 4"):
        raise ValueError("bad")
    state.jobs.jobs.fail.assert_called_once()
    assert state.jobs.jobs.fail.call_args.args[0] == "job-1"
