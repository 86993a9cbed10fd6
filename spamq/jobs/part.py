"""What the parts of the job store share: a Redis client, the job TTL, their Lua scripts run
in pipelines, and reading replies as text (the client may return bytes or str)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis


def text(value: Any) -> Any:
    """A Redis reply as text (bytes decoded; None and str as they are)."""
    return value.decode() if isinstance(value, bytes) else value


def decode(raw: dict[Any, Any]) -> dict[str, str]:
    """A hash reply with its fields and values as text."""
    return {text(k): text(v) for k, v in raw.items()}


class RedisPart:
    """One concern of the job store over the shared client. Nothing connects until a method
    is called."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self._r = client
        self.ttl_s = ttl_s

    def _script(self, source: str) -> Any:
        return self._r.register_script(source)

    def _pipelined(self, build: Callable[[Any], object]) -> list[Any]:
        """Run the commands ``build(pipe)`` adds in one round trip (no MULTI). Scripts go as
        plain EVALSHA (:meth:`_eval`): redis-py's pipelines would ask SCRIPT EXISTS first, a
        round trip more on every call. If Redis lost its script cache (a restart), the scripts
        are loaded and the pipeline runs again: only for pipelines safe to run twice (reads,
        and scripts that fail as a whole when not loaded)."""
        for attempt in range(2):
            pipe = self._r.pipeline(transaction=False)
            build(pipe)
            try:
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                for script in self._scripts():
                    self._r.script_load(script.script)
        raise AssertionError("unreachable")

    def _scripts(self) -> list[Any]:
        return [v for v in vars(self).values() if isinstance(v, redis.commands.core.Script)]

    @staticmethod
    def _eval(pipe: Any, script: Any, keys: list[str], args: list[Any]) -> None:
        """Add ``script`` to ``pipe`` as EVALSHA (see :meth:`_pipelined`)."""
        pipe.evalsha(script.sha, len(keys), *keys, *args)
