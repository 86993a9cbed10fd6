"""Background loops of a worker process that outlive bad data and are restarted if they die.

A step that raises is logged (with its traceback) and the loop goes on at its next period;
``ensure_running`` starts a new thread for a loop whose thread has died anyway (the
heartbeat calls it for the others), so a sweeper or stats thread never silently stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Loop:
    """Call ``step()`` every ``every_s`` seconds until ``stop`` is set."""

    def __init__(self, name: str, step: Callable[[], object], *, every_s: float,
                 stop: threading.Event) -> None:
        self.name, self._step, self._every_s, self._stop = name, step, every_s, stop
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # many task threads may notice a dead loop at once
        self.restarts = 0
        self.errors = 0

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self._step()
            except Exception:  # noqa: BLE001 - log it and go on: one bad record stops nothing
                self.errors += 1
                logger.exception("%s: a step failed; going on", self.name)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def ensure_running(self) -> bool:
        """Restart the loop if its thread died; True if it was restarted."""
        if self.alive or self._stop.is_set():
            return False
        with self._lock:
            if self.alive:
                return False
            self.start()  # before the count: whoever sees the count sees the new thread
            self.restarts += 1
            logger.error("%s: its thread had died; restarted (%d)", self.name, self.restarts)
            return True
