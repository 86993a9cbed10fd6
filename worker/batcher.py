"""Dynamic batching across requests: one thread owns the model and fills each forward pass
from every task in flight in this process.

Tasks (threads of the Celery ``threads`` pool) tokenise their texts, hand the rows to
:meth:`Batcher.submit` and wait on the returned future. The batcher thread takes the oldest
pending rows (interactive before bulk) up to a token window, sorts them by length, pads the
shortest of them into one batch bounded by ``max_batch_tokens`` (rows x padded width) and
``max_batch_size``, runs the forward pass, and resolves the futures whose rows are all done.

It waits for more rows (at most ``max_wait_ms`` after the oldest one arrived) only while a
task has announced itself (:meth:`expect`) but not yet submitted: a lone request is never
held back, and under load every forward pass is as full as the budget allows.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from worker.runner import BatchClassifier, Prediction

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Request:
    """One submitter's texts; its future resolves once every row has a probability."""

    future: Future
    truncated: list[bool]
    probabilities: list[float | None]
    left: int
    runner: Any = None  # the model that tokenised it scores it too (hot swap: no mixing)
    enqueued: float = field(default_factory=time.monotonic)
    owner: str = ""  # the API key id whose job it is (the lanes take keys round-robin)
    columns: bool = False  # resolve to Scores (columns), not a Prediction per row


@dataclass(frozen=True)
class Scores:
    """A bulk submission's results as columns (:meth:`Batcher.submit_scores`): each text's
    spam probability and whether it was cut, the model's version and decision threshold."""

    probabilities: list[float]
    truncated: list[bool]
    version: str
    threshold: float

    def labels(self) -> list[str]:
        """"spam" where the probability reaches the threshold, else "ham" (a C-level map)."""
        return list(map(("ham", "spam").__getitem__, map(self.threshold.__le__,
                                                         self.probabilities)))


@dataclass(eq=False)
class _Row:
    request: _Request
    position: int
    ids: list[int]


class _Lane:
    """A lane's pending rows, by owner (an API key id; '' for none): each owner's rows in the
    order they came, the owners taken round-robin. Iterating interleaves the owners from the
    one whose turn it is (its oldest row first); :meth:`rotate` passes the turn on. So one
    key's thousands of rows cannot hold up another key's one: each pass starts with the next
    key's oldest row."""

    def __init__(self) -> None:
        self._owners: dict[str, deque[_Row]] = {}  # in turn order: the first is next

    def extend(self, owner: str, rows: list[_Row]) -> None:
        self._owners.setdefault(owner, deque()).extend(rows)

    def __bool__(self) -> bool:
        return bool(self._owners)

    def __len__(self) -> int:
        return sum(len(q) for q in self._owners.values())

    def __iter__(self) -> Iterator[_Row]:
        queues = [iter(q) for q in self._owners.values()]
        while queues:
            alive = []
            for q in queues:
                row = next(q, None)
                if row is not None:
                    yield row
                    alive.append(q)
            queues = alive

    def oldest(self) -> float:
        return min(q[0].request.enqueued for q in self._owners.values())

    def remove(self, batch: list[_Row]) -> None:
        """Drop the rows of ``batch``, and owners left without rows."""
        taken = {id(r) for r in batch}
        for owner in {r.request.owner for r in batch}:
            kept = deque(r for r in self._owners[owner] if id(r) not in taken)
            if kept:
                self._owners[owner] = kept
            else:
                del self._owners[owner]

    def rotate(self, owner: str) -> None:
        """``owner`` had its turn: it goes last."""
        if owner in self._owners:
            self._owners[owner] = self._owners.pop(owner)

    def clear(self) -> None:
        self._owners.clear()


@dataclass
class BatchStats:
    batches: int = 0
    rows: int = 0
    max_rows: int = 0
    multi_request_batches: int = 0  # forward passes that served more than one submitter
    padded_tokens: int = 0
    real_tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches, "rows": self.rows, "max_rows": self.max_rows,
            "mean_rows": round(self.rows / self.batches, 2) if self.batches else 0.0,
            "multi_request_batches": self.multi_request_batches,
            "fill": round(self.real_tokens / self.padded_tokens, 3) if self.padded_tokens else 0.0,
        }


class Batcher:
    """Collects rows from many threads into length-sorted, token-bounded forward passes."""

    def __init__(
        self,
        runner: Callable[[], BatchClassifier],
        *,
        max_batch_tokens: int = 4096,
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        min_fill: float = 0.0,
        bulk_max_batch_tokens: int | None = None,
        window_tokens: int | None = None,
        bulk_quiet_s: float = 1.0,
        bulk_lane_nice: int | None = None,
    ) -> None:
        self._runner = runner
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.min_fill = min_fill  # real / padded tokens below which a pass stops growing
        # Bulk passes are kept short while interactive rows come (one arriving waits for at
        # most one of them); after bulk_quiet_s without any, bulk passes take the full budget
        # (short passes halve the model's rows/s: bench/bulk_scale.py).
        self.bulk_max_batch_tokens = min(bulk_max_batch_tokens or max_batch_tokens,
                                         max_batch_tokens)
        self.bulk_quiet_s = bulk_quiet_s
        self._interactive_at = float("-inf")  # monotonic time of the last interactive submit
        self.window_tokens = window_tokens or 4 * max_batch_tokens
        self._cond = threading.Condition()
        self._interactive = _Lane()
        self._bulk = _Lane()
        self._expected = 0
        self._closed = False
        self.stats = BatchStats()
        # Admission control under bulk. One thread: a bulk pass in flight holds up an arriving
        # interactive row. Two lanes (``bulk_lane_nice`` set): bulk passes run on a thread
        # of their own at that OS nice level, interactive passes never wait behind one, and
        # the kernel gives the bulk thread only what the interactive path (its pass, the API,
        # Redis, Celery) leaves of the CPU; idle, bulk takes it all, at full-budget passes.
        self.bulk_lane_nice = bulk_lane_nice
        lanes: list[tuple[str, tuple[_Lane, ...], int | None]]
        lanes = ([("spamq-batcher", (self._interactive,), None),
                  ("spamq-batcher-bulk", (self._bulk,), bulk_lane_nice)]
                 if bulk_lane_nice is not None
                 else [("spamq-batcher", (self._interactive, self._bulk), None)])
        self._threads = [threading.Thread(target=self._loop, args=(queues, nice), name=name,
                                          daemon=True) for name, queues, nice in lanes]
        for thread in self._threads:
            thread.start()

    # --- submitter side -------------------------------------------------------------------
    @contextmanager
    def expect(self) -> Iterator[None]:
        """Announce a submission about to come, so a forming batch waits for it (briefly)."""
        with self._cond:
            self._expected += 1
        try:
            yield
        finally:
            with self._cond:
                self._expected -= 1
                self._cond.notify_all()

    def submit(self, texts: list[str], *, interactive: bool = True, owner: str = "") -> Future:
        """Queue ``texts``; the future gives their :class:`Prediction` list, in order.
        ``owner``: the API key id whose job they are (keys are served round-robin)."""
        return self._submit(texts, interactive=interactive, owner=owner)

    def submit_scores(self, texts: list[str], *, interactive: bool = False,
                      owner: str = "") -> Future:
        """As :meth:`submit`, the future giving :class:`Scores` (columns, no object per row):
        the bulk path's."""
        return self._submit(texts, interactive=interactive, owner=owner, columns=True)

    def _submit(self, texts: list[str], *, interactive: bool, owner: str,
                columns: bool = False) -> Future:
        future: Future = Future()
        if not texts:
            future.set_result(Scores([], [], "", 0.5) if columns else [])
            return future
        runner = self._runner()
        ids, truncated = runner.encode(texts)
        request = _Request(future, truncated, [None] * len(texts), len(texts), runner,
                           owner=owner, columns=columns)
        rows = [_Row(request, i, row) for i, row in enumerate(ids)]
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            (self._interactive if interactive else self._bulk).extend(owner, rows)
            if interactive:
                self._interactive_at = time.monotonic()
            self._cond.notify_all()
        return future

    def predict(self, texts: list[str], *, interactive: bool = True, owner: str = "",
                timeout: float | None = None) -> list[Prediction]:
        return self.submit(texts, interactive=interactive, owner=owner).result(timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(5)

    def pending(self) -> int:
        with self._cond:
            return len(self._interactive) + len(self._bulk)

    # --- batcher thread ------------------------------------------------------------------
    def _wait_s(self, queues: tuple[_Lane, ...]) -> float:
        """Called with the lock held and rows pending: 0 to run now, else how long at most to
        wait for more rows (a submit or the end of an expected one notifies sooner)."""
        if not self._expected:
            return 0.0  # nobody else is about to submit: waiting would only add latency
        oldest = min(q.oldest() for q in queues if q)
        left = oldest + self.max_wait_s - time.monotonic()
        if left <= 0:
            return 0.0
        full = sum(len(r.ids) for q in queues for r in q) >= self.max_batch_tokens
        return 0.0 if full else left

    def _take(self, queues: tuple[_Lane, ...]) -> tuple[list[_Row], bool]:
        """With the lock held: pop the next batch (interactive rows first, else bulk); and
        whether it is interactive. The batch starts from the oldest row of the key whose turn
        it is; the window it is filled from interleaves every key's rows."""
        source = next(q for q in queues if q)
        quiet = time.monotonic() - self._interactive_at >= self.bulk_quiet_s
        budget = (self.max_batch_tokens
                  if source is self._interactive or quiet or self.bulk_lane_nice is not None
                  else self.bulk_max_batch_tokens)
        window: list[_Row] = []
        tokens = 0
        for row in source:  # each key's oldest rows, so none waits forever behind shorter ones
            if window and tokens + len(row.ids) > self.window_tokens:
                break
            window.append(row)
            tokens += len(row.ids)
        model = window[0].request.runner  # one model per forward pass
        window = [r for r in window if r.request.runner is model]
        # The turn's oldest row is always in the pass (no row starves behind shorter newcomers,
        # and a key's chunks finish in order); the rest are the rows nearest to it in length,
        # while the pass stays within the token budget, the size cap and the padding-fill floor.
        anchor = window[0]
        batch = [anchor]
        width, real = len(anchor.ids), len(anchor.ids)
        for row in sorted(window[1:], key=lambda r: abs(len(r.ids) - len(anchor.ids))):
            if len(batch) >= self.max_batch_size:
                break
            new_width = max(width, len(row.ids))
            padded = new_width * (len(batch) + 1)
            if padded > budget or real + len(row.ids) < self.min_fill * padded:
                continue
            batch.append(row)
            width, real = new_width, real + len(row.ids)
        batch.sort(key=lambda r: len(r.ids))
        source.remove(batch)
        source.rotate(anchor.request.owner)
        return batch, source is self._interactive

    def _loop(self, queues: tuple[_Lane, ...], nice: int | None) -> None:
        if nice:
            _lower_priority(nice)
        while True:
            with self._cond:
                while not self._closed and not any(queues):
                    self._cond.wait()
                if self._closed:
                    self._fail_pending(RuntimeError("the batcher was closed"), queues)
                    return
                while (left := self._wait_s(queues)) > 0:
                    self._cond.wait(left)
                batch, interactive = self._take(queues)
            self._run(batch, interactive=interactive)

    def _run(self, batch: list[_Row], *, interactive: bool = True) -> None:
        try:
            runner = batch[0].request.runner or self._runner()
            ids = [r.ids for r in batch]
            stream = getattr(runner, "stream", None)  # CUDA: the lane's stream (runner.py)
            with stream(interactive) if stream else nullcontext():
                padded = runner.pad(ids, list(range(len(batch))))
                probabilities = runner.spam_probabilities(padded)
        except Exception as exc:  # noqa: BLE001 - fails only the requests in this batch
            logger.exception("forward pass over %d rows failed", len(batch))
            for request in {id(r.request): r.request for r in batch}.values():
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        with self._cond:
            self._count(batch)
        finished: dict[int, _Request] = {}
        for row, p in zip(batch, probabilities, strict=True):
            row.request.probabilities[row.position] = p
            row.request.left -= 1
            if row.request.left == 0:
                finished[id(row.request)] = row.request
        for request in finished.values():
            if request.future.done():  # an earlier batch failed it
                continue
            if request.columns:
                request.future.set_result(Scores(
                    cast(list[float], request.probabilities), request.truncated,
                    runner.version, runner.threshold))
                continue
            request.future.set_result([
                _prediction(runner, p, cut)
                for p, cut in zip(request.probabilities, request.truncated, strict=True)
            ])

    def _count(self, batch: list[_Row]) -> None:
        s = self.stats
        width = max(len(r.ids) for r in batch)
        s.batches += 1
        s.rows += len(batch)
        s.max_rows = max(s.max_rows, len(batch))
        s.padded_tokens += width * len(batch)
        s.real_tokens += sum(len(r.ids) for r in batch)
        if len({id(r.request) for r in batch}) > 1:
            s.multi_request_batches += 1

    def _fail_pending(self, exc: Exception, queues: tuple[_Lane, ...]) -> None:
        for source in queues:
            for row in source:
                if not row.request.future.done():
                    row.request.future.set_exception(exc)
            source.clear()


def _lower_priority(nice: int) -> None:
    """Raise this thread's nice value (Linux: per thread; the threads it starts, torch's
    intra-op pool among them, inherit it). Elsewhere, or refused: log and run as is."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError) as exc:
        logger.warning("bulk lane runs at normal priority: %s", exc)


def _prediction(runner: BatchClassifier, p: float | None, cut: bool) -> Prediction:
    from worker.runner import Prediction

    assert p is not None
    return Prediction(
        label="spam" if p >= runner.threshold else "ham",
        spam_probability=p,
        truncated=cut,
        model_version=runner.version,
    )
