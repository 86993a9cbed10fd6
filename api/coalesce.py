"""Coalescing at the edge: within one API process, small submissions that arrive while a
publish is in flight (or within ``window_s``) go out as one Celery message.

Leader and followers: the first caller publishes at once (a lone request is never held
back, unless ``window_s`` > 0 asks for that short wait). Callers arriving meanwhile queue up;
when the publish returns, the first of them leads the next message, which carries all of
them (at most ``max_items``). Every caller returns once its own item is published, and sees
the publish's exception if it failed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Slot(Generic[T]):
    __slots__ = ("item", "ready", "lead", "error")

    def __init__(self, item: T) -> None:
        self.item = item
        self.ready = threading.Event()
        self.lead = False
        self.error: BaseException | None = None


class Coalescer(Generic[T]):
    def __init__(self, publish: Callable[[list[T]], None], *, window_s: float = 0.0,
                 max_items: int = 64) -> None:
        self._publish = publish
        self._window_s = window_s
        self._max = max(1, max_items)
        self._lock = threading.Lock()
        self._pending: list[_Slot[T]] = []
        self._leading = False

    def send(self, item: T) -> None:
        """Publish ``item``, alone or with the items of concurrent callers."""
        slot = _Slot(item)
        with self._lock:
            self._pending.append(slot)
            slot.lead = not self._leading
            self._leading = True
        if not slot.lead:
            slot.ready.wait()  # published by a leader, or made the next leader
        if slot.lead:
            self._lead()
        if slot.error is not None:
            raise slot.error

    def _lead(self) -> None:
        if self._window_s > 0:
            time.sleep(self._window_s)
        with self._lock:
            group, self._pending = self._pending[: self._max], self._pending[self._max :]
        error: BaseException | None = None
        try:
            self._publish([s.item for s in group])
        except BaseException as exc:  # noqa: BLE001 - every caller of the group sees it
            error = exc
        for s in group:
            s.error = error
            s.lead = False
            s.ready.set()
        with self._lock:  # hand over: the first waiting caller leads the next message
            if self._pending:
                nxt = self._pending[0]
                nxt.lead = True
                nxt.ready.set()
            else:
                self._leading = False
