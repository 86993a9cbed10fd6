"""api.coalesce: concurrent small submissions share one publish; a lone one is not held."""

import threading
import time

import pytest

from api.coalesce import Coalescer


class SlowPublish:
    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.messages: list[list[int]] = []
        self.delay_s = delay_s
        self.fail = fail
        self.started = threading.Event()

    def __call__(self, items: list[int]) -> None:
        self.started.set()
        time.sleep(self.delay_s)
        self.messages.append(items)
        if self.fail:
            raise ConnectionError("broker down")


def test_a_lone_item_is_published_at_once_and_alone():
    publish = SlowPublish()
    c = Coalescer(publish)
    t0 = time.perf_counter()
    c.send(1)
    assert time.perf_counter() - t0 < 0.05
    c.send(2)
    assert publish.messages == [[1], [2]]


def test_items_arriving_during_a_publish_go_out_together_in_the_next_one():
    publish = SlowPublish(delay_s=0.2)
    c = Coalescer(publish)
    first = threading.Thread(target=c.send, args=(0,))
    first.start()
    assert publish.started.wait(1)
    others = [threading.Thread(target=c.send, args=(i,)) for i in range(1, 11)]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join(5)
    assert publish.messages[0] == [0]
    assert sorted(publish.messages[1]) == list(range(1, 11))  # one message for all ten
    assert len(publish.messages) == 2


def test_every_item_is_published_exactly_once_under_contention():
    publish = SlowPublish(delay_s=0.001)
    c = Coalescer(publish, max_items=7)
    threads = [threading.Thread(target=c.send, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    sent = [i for m in publish.messages for i in m]
    assert sorted(sent) == list(range(200))
    assert max(len(m) for m in publish.messages) <= 7
    assert len(publish.messages) < 200  # some coalesced


def test_a_failed_publish_raises_in_every_caller_of_its_message():
    publish = SlowPublish(delay_s=0.1, fail=True)
    c = Coalescer(publish)
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            c.send(i)
        except ConnectionError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(5)]
    threads[0].start()
    assert publish.started.wait(1)
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(5)
    assert len(errors) == 5
    with pytest.raises(ConnectionError):
        c.send(99)  # the coalescer is not stuck after a failure
