"""Fakes of the worker's model for unit tests: a runner of the batcher's interface, and a
scorer of the Scorer interface."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass


class FakeRunner:
    """Token ids = one per word; 'boom' in a text makes its forward pass raise."""

    threshold = 0.5
    version = "fake-v1"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[list[int]] = []  # the row lengths of each forward pass
        self.lock = threading.Lock()

    def encode(self, texts):
        ids = [[999 if w == "boom" else len(w) for w in t.split()] for t in texts]
        return ids, [False] * len(texts)

    def pad(self, ids, index):
        return [ids[i] for i in index]

    def spam_probabilities(self, batch):
        time.sleep(self.delay_s)
        with self.lock:
            self.batches.append([len(r) for r in batch])
        if any(999 in r for r in batch):
            raise RuntimeError("model exploded")
        return [min(1.0, len(r) / 10) for r in batch]


@dataclass
class Pred:
    text: str
    model_version: str = "v1"

    def as_dict(self):
        return {"label": "ham", "spam_probability": 0.1, "truncated": False,
                "model_version": self.model_version, "text": self.text}


class FakeScorer:
    """Scores every text; a pass containing a text starting with 'BAD' raises (like a model)."""

    def __init__(self, delay_s: float = 0.0):
        self.passes = 0
        self.delay_s = delay_s

    def expect(self):
        return nullcontext()

    def submit(self, texts, *, interactive=True, owner=""):
        self.passes += 1
        time.sleep(self.delay_s)
        fut = Future()
        if any(t.startswith("BAD") for t in texts):
            fut.set_exception(RuntimeError("model blew up"))
        else:
            fut.set_result([Pred(t) for t in texts])
        return fut
