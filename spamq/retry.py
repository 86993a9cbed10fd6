"""Bounded retries with exponential backoff, for calls to a store that may be away briefly."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")


def retry(fn: Callable[[], T], *, retry_on: type[BaseException] | tuple[type[BaseException], ...],
          attempts: int, first_delay_s: float, max_delay_s: float, what: str,
          sleep: Callable[[float], None] = time.sleep) -> T:
    """``fn()``, tried up to ``attempts`` times while it raises ``retry_on``; the wait before
    the second try is ``first_delay_s``, doubled after each try up to ``max_delay_s``. The
    last error propagates unchanged; any other error at once."""
    delay = min(first_delay_s, max_delay_s)
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except retry_on as exc:
            if attempt == attempts:
                raise
            logger.warning("%s failed (try %d/%d): %s; again in %.2fs",
                           what, attempt, attempts, exc, delay)
            sleep(delay)
            delay = min(delay * 2, max_delay_s)
    raise ValueError(f"attempts must be 1 or more, not {attempts}")
