"""The model runner a worker serves: spamq/models/loader.py's Classifier (loaded, tokenised
and scored the one way the promotion gate scores too), with what serving adds: a CUDA stream
per batcher lane and a warm-up, so the first request pays no first-call costs."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from functools import cached_property

import torch

from spamq.models.loader import Classifier, PaddedBatch, Prediction, pick_device

__all__ = ["BatchClassifier", "PaddedBatch", "Prediction", "default_threads", "pick_device"]


def default_threads(concurrency: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, concurrency))


class BatchClassifier(Classifier):
    """Load once, warm, then ``predict(texts)``; on CUDA, interactive passes first."""

    @cached_property
    def _streams(self) -> dict[bool, torch.cuda.Stream]:
        return {}  # made once per lane (warm_up makes both on CUDA)

    def stream(self, interactive: bool) -> AbstractContextManager:
        """Where a pass runs. CUDA: interactive passes on a high-priority stream, bulk passes on
        a normal one, so the GPU schedules an interactive pass's kernels before a queued bulk
        pass's (the batcher's two lanes would otherwise share one stream, in order). CPU: as is.
        """
        if self.device.type != "cuda":
            return nullcontext()
        streams = self._streams
        if interactive not in streams:
            stream = torch.cuda.Stream(self.device, priority=-1 if interactive else 0)
            # what the default stream queued so far (the weights' upload, the trace) comes first
            stream.wait_stream(torch.cuda.default_stream(self.device))
            streams[interactive] = stream
        return torch.cuda.stream(streams[interactive])

    def warm_up(self) -> None:
        """Run a few shapes once so the first request pays no first-call costs; on CUDA every
        padded width of a single row (each new shape pays kernel selection once)."""
        self.predict(["warm up", "a somewhat longer warm-up message " * 8])
        if self.device.type == "cuda":
            for width in range(self.pad_multiple, self.max_length + 1, self.pad_multiple):
                for interactive in (True, False):
                    with self.stream(interactive):
                        self.spam_probabilities(self.pad([[self.tokenizer.cls_token_id] * width],
                                                         [0]))
