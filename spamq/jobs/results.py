"""A job's texts as tasks claim them, its results as they are stored (once per chunk), and
waiting for its end. Results are written by a script that stores a chunk only if it is not
stored yet (HSETNX), so a task that runs twice can neither duplicate nor corrupt results."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from spamq.jobs import schema
from spamq.jobs.model import Claim, Job
from spamq.jobs.part import RedisPart, decode, text
from spamq.jobs.schema import DONE, JobNotFound

_WAIT_SLICE_S = 0.5


def ordered(raw: dict[Any, Any]) -> list[dict[str, Any]]:
    """A results hash (chunk index -> JSON list) as one list, in chunk order."""
    chunks = decode(raw)
    return [row for index in sorted(chunks, key=int) for row in json.loads(chunks[index])]


class Results(RedisPart):
    """Claims of texts, stored results, and waits for a job's end."""

    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        super().__init__(client, ttl_s=ttl_s)
        self._store_chunk = self._script(schema.STORE_CHUNK)
        self._start = self._script(schema.START)

    def texts(self, job_id: str, start: int, stop: int) -> list[str]:
        values = self._r.lrange(schema.job_keys(job_id)[1], start, stop - 1)
        return [text(v) for v in values]

    def claim(self, job_id: str, start: int, stop: int) -> Claim:
        """One round trip for a task: the job's status and deadline, marking it running, its
        texts."""
        return self.claim_many([(job_id, start, stop)])[0]

    def claim_many(self, ranges: list[tuple[str, int, int]]) -> list[Claim]:
        """:meth:`claim` for several (job id, start, stop) in one round trip."""
        now = repr(time.time())

        def build(pipe: Any) -> None:
            for job_id, start, stop in ranges:
                job_key = schema.job_key(job_id)
                pipe.hmget(job_key, ["status", "deadline", "owner"])
                self._eval(pipe, self._start, [job_key], [now])
                pipe.lrange(schema.job_keys(job_id)[1], start, stop - 1)

        replies = self._pipelined(build)
        claims = []
        for i in range(0, len(replies), 3):
            (status, deadline, owner), _, values = replies[i : i + 3]
            claims.append(Claim(text(status), [text(v) for v in values],
                                float(deadline) if deadline else None, text(owner) or ""))
        return claims

    def store_chunk_next(
        self, job_id: str, chunk: int, results: list[dict[str, Any]], *, model_version: str
    ) -> tuple[bool, int | None]:
        """Store one chunk's results once: (stored now, the index of the job's next chunk to
        send now, or None)."""
        outcome = self.store_chunks([(job_id, chunk, results)], model_version=model_version)[0]
        if outcome is None:
            raise JobNotFound(job_id)
        return outcome

    def store_chunks(
        self, chunks: list[tuple[str, int, list[dict[str, Any]]]], *, model_version: str
    ) -> list[tuple[bool, int | None] | None]:
        """Store several (job id, chunk index, results) once each, in one round trip; per
        chunk (stored now, next chunk to send or None), or None where the job is gone."""
        now = repr(time.time())

        def build(pipe: Any) -> None:
            for job_id, chunk, results in chunks:
                job_key, _, results_key, finished_key = schema.job_keys(job_id)
                self._eval(pipe, self._store_chunk, [job_key, results_key, finished_key],
                           [chunk, json.dumps(results), len(results), model_version, now,
                            self.ttl_s])

        return [None if int(outcome) == -1 else (int(outcome) == 1,
                                                 int(nxt) if int(nxt) >= 0 else None)
                for outcome, nxt in self._pipelined(build)]

    def results(
        self, job_id: str, offset: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The stored results in submission order (chunks not yet stored are absent)."""
        rows = ordered(self._r.hgetall(schema.job_keys(job_id)[2]))
        stop = None if limit is None else offset + limit
        return rows[offset:stop]

    def results_range(self, job: Job, start: int, stop: int) -> list[tuple[int, dict[str, Any]]]:
        """(text position, result) for the stored results among positions ``[start, stop)``."""
        stop = min(stop, job.total)
        if start >= stop:
            return []
        size = job.chunk_size or max(job.total, 1)
        first, last = start // size, (stop - 1) // size
        raw = self._r.hmget(schema.job_keys(job.id)[2], list(range(first, last + 1)))
        out: list[tuple[int, dict[str, Any]]] = []
        for index, value in zip(range(first, last + 1), raw, strict=True):
            if value is None:
                continue
            base = index * size
            for offset, result in enumerate(json.loads(value)):
                if start <= base + offset < stop:
                    out.append((base + offset, result))
        return out

    def result_rows(self, job: Job, start: int, stop: int) -> list[dict[str, Any]]:
        """The stored results among positions ``[start, stop)``, each with its ``row``."""
        return [{"row": pos, **result} for pos, result in self.results_range(job, start, stop)]

    def wait_for(self, job_id: str, timeout_s: float, *, results: bool = False
                 ) -> tuple[Job, list[dict[str, Any]] | None]:
        """Block until the job has finished or ``timeout_s`` has passed: its state, and with
        ``results`` those of a done job (else None), in two round trips for a job that is done
        or ends within one wait: the job's ``finished`` list is popped (at once if it has
        ended), then put back for any other waiter while the job (and its results) are read
        in the same pipeline."""
        job_key, _, results_key, finished_key = schema.job_keys(job_id)
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            # Short blocking slices stay below the client's socket timeout.
            popped = (self._r.blpop([finished_key], timeout=min(left, _WAIT_SLICE_S))
                      if left > 0 else None)
            pipe = self._r.pipeline(transaction=False)
            if popped is not None:
                pipe.rpush(finished_key, popped[1])
            pipe.hgetall(job_key)
            if results:
                pipe.hgetall(results_key)
            replies = pipe.execute()[1 if popped is not None else 0 :]
            if not replies[0]:
                raise JobNotFound(job_id)
            job = Job.from_hash(decode(replies[0]))
            if job.finished or deadline - time.monotonic() <= 0:
                done = results and job.status == DONE
                return job, ordered(replies[1]) if done else None
