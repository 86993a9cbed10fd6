"""A job and its public view, and a settable clock, for unit tests of webhooks."""

from __future__ import annotations

JOB = "a" * 32
VIEW = {"id": JOB, "status": "done", "progress": {"done": 3, "total": 3}, "rejected": 0,
        "model_version": "v1", "output": None, "results_url": f"/v1/jobs/{JOB}/results",
        "results": [{"label": "spam"}] * 3}


class Clock:
    """A clock that says ``now`` until a test moves it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
