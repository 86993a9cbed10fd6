"""The dynamic batcher: many submitters share forward passes, within budget and wait bounds."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers.worker import FakeRunner
from worker.batcher import Batcher


def make(runner, **kw) -> Batcher:
    return Batcher(lambda: runner, **kw)


def test_results_come_back_in_order_with_labels():
    runner = FakeRunner()
    b = make(runner)
    try:
        out = b.predict(["one two three four five six", "one", "a b c d e f g h i j k"])
    finally:
        b.close()
    assert [p.spam_probability for p in out] == [0.6, 0.1, 1.0]
    assert [p.label for p in out] == ["spam", "ham", "spam"]
    assert {p.model_version for p in out} == {"fake-v1"}


def test_concurrent_submitters_share_forward_passes():
    runner = FakeRunner(delay_s=0.01)  # while one pass runs, the others queue up
    b = make(runner, max_batch_tokens=10_000, max_batch_size=64, max_wait_ms=5)
    texts = [" ".join(["w"] * (1 + i % 7)) for i in range(64)]

    def one(text):
        with b.expect():
            future = b.submit([text])
        return future.result(5)[0].spam_probability

    try:
        with ThreadPoolExecutor(16) as pool:
            got = list(pool.map(one, texts))
    finally:
        b.close()
    assert got == [min(1.0, (1 + i % 7) / 10) for i in range(64)]
    assert sum(len(x) for x in runner.batches) == 64
    assert len(runner.batches) < 64 / 4  # far fewer passes than texts
    assert max(len(x) for x in runner.batches) >= 8
    assert b.stats.multi_request_batches >= 1
    assert all(x == sorted(x) for x in runner.batches)  # sorted by length inside a pass


def test_token_budget_and_size_bound_every_pass():
    runner = FakeRunner()
    b = make(runner, max_batch_tokens=20, max_batch_size=3, max_wait_ms=0)
    texts = [" ".join(["w"] * n) for n in (1, 2, 3, 4, 5, 6, 7, 8, 2, 2)]
    try:
        b.predict(texts)
    finally:
        b.close()
    assert sum(len(x) for x in runner.batches) == len(texts)
    for lengths in runner.batches:
        assert len(lengths) <= 3
        assert max(lengths) * len(lengths) <= 20  # padded tokens
        assert lengths == sorted(lengths)


def test_a_lone_request_does_not_wait_but_an_announced_one_is_waited_for():
    runner = FakeRunner()
    b = make(runner, max_wait_ms=200)
    try:
        t0 = time.perf_counter()
        b.predict(["alone"])
        assert time.perf_counter() - t0 < 0.1  # nobody announced: no max-wait pause

        release = threading.Event()

        def late():
            with b.expect():
                release.wait(5)
                return b.submit(["late one"])

        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(late)
            time.sleep(0.02)
            first = b.submit(["early"])
            time.sleep(0.03)
            release.set()
            second = pending.result(5)
            first.result(5), second.result(5)
        assert runner.batches[-1] == [1, 2]  # the early text waited and shared the pass
    finally:
        b.close()


def test_max_wait_bounds_the_wait_for_an_announced_submitter():
    runner = FakeRunner()
    b = make(runner, max_wait_ms=30)
    hold = threading.Event()
    try:
        with ThreadPoolExecutor(1) as pool:
            def never():
                with b.expect():
                    hold.wait(5)
            pool.submit(never)
            time.sleep(0.01)
            t0 = time.perf_counter()
            b.predict(["waits at most max_wait"], timeout=5)
            waited = time.perf_counter() - t0
            hold.set()
        assert 0.02 <= waited < 0.5
    finally:
        b.close()


def test_interactive_rows_go_before_bulk_rows():
    runner = FakeRunner(delay_s=0.02)
    b = make(runner, max_batch_tokens=8, max_batch_size=4, max_wait_ms=0)
    try:
        bulk = b.submit(["w w"] * 40, interactive=False)  # ten passes of four
        time.sleep(0.03)  # the first bulk pass is running
        t0 = time.perf_counter()
        b.predict(["x x x"], interactive=True, timeout=5)
        interactive_s = time.perf_counter() - t0
        assert not bulk.done()
        bulk.result(5)
    finally:
        b.close()
    assert interactive_s < 0.1  # one bulk pass at most, not the ten queued
    lengths = [x for batch in runner.batches for x in batch]
    first_three = lengths.index(3)
    assert first_three <= 8  # served right after the pass that was running


def test_a_model_error_fails_only_the_requests_in_that_pass():
    runner = FakeRunner(delay_s=0.05)
    b = make(runner, max_batch_tokens=10_000, max_wait_ms=0)
    try:
        first = b.submit(["busy"])  # occupies the model while the next two queue together
        time.sleep(0.01)
        bad = b.submit(["this goes boom"])
        same_pass = b.submit(["shares the pass"])
        with pytest.raises(RuntimeError, match="exploded"):
            bad.result(5)
        with pytest.raises(RuntimeError, match="exploded"):
            same_pass.result(5)
        assert first.result(5)[0].spam_probability == pytest.approx(0.1)
        later = b.submit(["fine afterwards"])
        assert later.result(5)[0].spam_probability == pytest.approx(0.2)
        assert runner.batches == [[1], [3, 3], [2]]
    finally:
        b.close()


def test_same_predictions_as_the_runner_alone(random_model_dir):
    from worker.runner import BatchClassifier

    runner = BatchClassifier(random_model_dir, device="cpu")
    texts = ["short", "a much longer message about a prize you have won " * 3, "hi", "ok then"]
    reference = runner.predict(texts)
    b = Batcher(lambda: runner, max_batch_tokens=64, max_batch_size=2, max_wait_ms=1)
    try:
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda t: b.predict([t], timeout=10)[0], texts))
    finally:
        b.close()
    assert [p.spam_probability for p in got] == pytest.approx(
        [p.spam_probability for p in reference], abs=1e-5)
    assert [p.truncated for p in got] == [p.truncated for p in reference]


def test_min_fill_keeps_long_rows_out_of_a_pass_of_short_ones():
    runner = FakeRunner()
    b = make(runner, max_batch_tokens=10_000, max_batch_size=64, max_wait_ms=0, min_fill=0.7)
    texts = [" ".join(["w"] * n) for n in (2, 2, 3, 2, 40, 3, 41)]
    try:
        b.predict(texts)
    finally:
        b.close()
    assert runner.batches == [[2, 2, 2, 3, 3], [40, 41]]
    assert b.stats.as_dict()["fill"] > 0.9


def test_bulk_passes_are_short_while_interactive_rows_come_and_full_when_quiet():
    runner = FakeRunner()
    b = make(runner, max_batch_tokens=100, bulk_max_batch_tokens=8, max_wait_ms=0,
             bulk_quiet_s=0.3)
    try:
        b.predict(["w w"] * 12, interactive=True)
        b.predict(["w w"] * 12, interactive=False)  # an interactive row just came: short passes
        time.sleep(0.35)
        b.predict(["w w"] * 12, interactive=False)  # quiet: the full budget
    finally:
        b.close()
    assert runner.batches[0] == [2] * 12  # interactive: one pass
    assert runner.batches[1:4] == [[2] * 4] * 3  # bulk: 4 rows x 2 tokens = the budget of 8
    assert runner.batches[4] == [2] * 12


class GatedRunner(FakeRunner):
    """A bulk pass (rows of 2 tokens) blocks until ``release`` is set; other passes run."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.bulk_running = threading.Event()
        self.bulk_thread_nice: int | None = None

    def spam_probabilities(self, batch):
        if all(len(r) == 2 for r in batch):
            import os

            self.bulk_thread_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            self.bulk_running.set()
            assert self.release.wait(5)
        return super().spam_probabilities(batch)


def test_with_a_bulk_lane_an_interactive_pass_never_waits_behind_a_bulk_pass():
    runner = GatedRunner()
    b = make(runner, max_batch_tokens=100, max_wait_ms=0, bulk_lane_nice=5)
    try:
        bulk = b.submit(["w w"] * 8, interactive=False)
        assert runner.bulk_running.wait(5)  # the bulk pass is in flight, held
        out = b.predict(["x x x", "y y y y"], interactive=True, timeout=5)
        assert [p.spam_probability for p in out] == [0.3, 0.4]
        assert not bulk.done()
        runner.release.set()
        assert [p.spam_probability for p in bulk.result(5)] == [0.2] * 8
    finally:
        runner.release.set()
        b.close()
    assert runner.batches[0] == [3, 4]  # the interactive pass finished first
    assert runner.batches[1] == [2] * 8  # bulk took the full budget in one pass
    assert runner.bulk_thread_nice == 5  # the bulk lane runs at its own, lower priority


def test_without_a_bulk_lane_the_interactive_pass_waits_for_the_bulk_pass():
    runner = GatedRunner()
    b = make(runner, max_batch_tokens=100, max_wait_ms=0)
    try:
        b.submit(["w w"] * 8, interactive=False)
        assert runner.bulk_running.wait(5)
        pending = b.submit(["x x x"], interactive=True)
        time.sleep(0.1)
        assert not pending.done()  # one model thread: behind the bulk pass
        runner.release.set()
        assert pending.result(5)[0].spam_probability == 0.3
    finally:
        runner.release.set()
        b.close()


def test_keys_are_served_round_robin_so_a_flood_does_not_starve_a_lone_text():
    runner = FakeRunner(delay_s=0.003)
    b = make(runner, max_batch_tokens=96, max_batch_size=64, max_wait_ms=0)
    try:
        flood = [b.submit(["w w w"] * 256, owner="key-a") for _ in range(30)]
        started = time.monotonic()
        passes_before = len(runner.batches)
        lone = b.submit(["hello there friend"], owner="key-b")
        lone.result(5)
        waited, passes = time.monotonic() - started, len(runner.batches) - passes_before
        flood_left = sum(not f.done() for f in flood)
        for f in flood:
            f.result(30)
    finally:
        b.close()
    assert passes <= 3, passes  # the next pass or the one after is key-b's
    assert flood_left >= 25  # most of key-a's rows were still waiting when key-b's came back
    assert waited < 1.0


def test_one_keys_requests_still_finish_in_the_order_they_came():
    runner = FakeRunner(delay_s=0.001)
    b = make(runner, max_batch_tokens=32, max_wait_ms=0)
    order: list[int] = []
    try:
        futures = [b.submit(["w w"] * 40, owner="k") for _ in range(5)]
        for i, f in enumerate(futures):
            f.add_done_callback(lambda _, i=i: order.append(i))
        other = b.submit(["x"] * 40, owner="other")
        for f in [*futures, other]:
            f.result(10)
    finally:
        b.close()
    assert order == sorted(order)
