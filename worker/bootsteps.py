"""Start and stop in steps, as Celery's bootsteps do: each :class:`Step` names the steps it
``requires``; a :class:`Blueprint` starts them so that every step comes after those it
requires (in the order given where that leaves a choice) and stops the started ones in the
reverse order."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import ClassVar, Generic, TypeVar

logger = logging.getLogger(__name__)
S = TypeVar("S")


class Step(Generic[S]):
    """One part of a process: ``start(state)`` makes it and hangs it on ``state``;
    ``stop(state)`` undoes that (nothing, unless a step says otherwise)."""

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()

    def start(self, state: S) -> None:
        raise NotImplementedError

    def stop(self, state: S) -> None:  # noqa: B027 - most steps leave nothing to stop
        """Nothing to stop."""


def in_order(steps: Iterable[Step[S]]) -> list[Step[S]]:
    """``steps`` ordered so that each comes after the steps it requires (stable: the given
    order breaks ties). A requirement no step meets, or steps requiring each other in a
    circle, raise ValueError."""
    pending = list(steps)
    names = {step.name for step in pending}
    for step in pending:
        unknown = sorted(set(step.requires) - names)
        if unknown:
            raise ValueError(f"step {step.name!r} requires unknown steps {unknown}")
    ordered: list[Step[S]] = []
    done: set[str] = set()
    while pending:
        ready = next((s for s in pending if done.issuperset(s.requires)), None)
        if ready is None:
            raise ValueError(f"steps require each other in a circle: "
                             f"{sorted(s.name for s in pending)}")
        pending.remove(ready)
        ordered.append(ready)
        done.add(ready.name)
    return ordered


class Blueprint(Generic[S]):
    """The steps of one state object, started in :func:`in_order`'s order and stopped in the
    reverse one. Both are idempotent and safe from several threads."""

    def __init__(self, steps: Iterable[Step[S]]) -> None:
        self.steps = in_order(steps)
        self._started: list[Step[S]] = []
        self._lock = threading.RLock()

    @property
    def started(self) -> list[str]:
        """The names of the started steps, in the order they started."""
        return [step.name for step in self._started]

    @property
    def complete(self) -> bool:
        """Whether every step has started."""
        return len(self._started) == len(self.steps)

    def start(self, state: S, *, until: str | None = None) -> None:
        """Start every step not yet started, or those up to and including ``until``."""
        with self._lock:
            for step in self.steps:
                if step not in self._started:
                    step.start(state)
                    self._started.append(step)
                if step.name == until:
                    return

    def stop(self, state: S) -> None:
        """Stop the started steps, last first; a failing step is logged and the others
        still stop."""
        with self._lock:
            while self._started:
                step = self._started.pop()
                try:
                    step.stop(state)
                except Exception:  # noqa: BLE001 - shutdown goes on with the other steps
                    logger.exception("stopping step %s failed", step.name)
