"""The peer: the same model served by BentoML's adaptive batching.

    PEER_THREADS=2 .venv-peer/bin/python -m bentoml serve bench.peer_service:PeerClassifier

Run by bench/peer.py and bench/peer_tune.py (``make bench-peer``) from their own venv,
.venv-peer: BentoML is never a dependency of spamq itself. One batchable endpoint at the same
path and with the same body as spamq's (``POST /v1/predict {"texts": [...]}``): BentoML's
dispatcher gathers concurrent requests into one call of up to ``PEER_MAX_BATCH`` texts, and
``BatchClassifier.predict`` (spamq's runner: the same weights, tokenizer, truncation at 256
tokens and temperature) runs length-sorted passes of at most that many rows.
``GET /v1/info`` says what the service resolved (precision, threads, TorchScript).

Its settings come from the environment that bench/peer_stack.py sets per server (this file is
a bench peer, not part of the service, so it reads them itself):

- ``PEER_MODEL_DIR``: the model directory (required);
- ``PEER_THREADS``: torch threads per worker (default: all cores);
- ``PEER_WORKERS``: BentoML worker processes (default 1), each with its own model;
- ``PEER_PRECISION``: a spamq precision (default ``fp32``; ``auto`` resolves as spamq's
  worker does on this machine);
- ``PEER_TORCHSCRIPT``: ``true`` (default) for the traced forward pass, ``false`` for eager;
- ``PEER_MAX_BATCH``: the dispatcher's ``max_batch_size`` (default 32);
- ``PEER_MAX_LATENCY_MS``: the dispatcher's ``max_latency_ms`` (default BentoML's own).
"""

import os
from pathlib import Path
from typing import Any

import bentoml
from pydantic import BaseModel


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


MAX_BATCH = _env_int("PEER_MAX_BATCH", 32)
WORKERS = _env_int("PEER_WORKERS", 1)
_batching: dict[str, Any] = {"max_batch_size": MAX_BATCH}
if os.environ.get("PEER_MAX_LATENCY_MS"):
    _batching["max_latency_ms"] = int(os.environ["PEER_MAX_LATENCY_MS"])


class Score(BaseModel):
    label: str
    spam_probability: float


@bentoml.service(workers=WORKERS, traffic={"timeout": 60})
class PeerClassifier:
    def __init__(self) -> None:
        import torch

        from worker.runner import BatchClassifier

        self.threads = _env_int("PEER_THREADS", os.cpu_count() or 1)
        torch.set_num_threads(self.threads)
        self.torchscript = os.environ.get("PEER_TORCHSCRIPT", "true") != "false"
        # max_batch_tokens MAX_BATCH x 256: the pass is bounded by its rows only
        self.runner = BatchClassifier(
            Path(os.environ["PEER_MODEL_DIR"]), device="cpu",
            precision=os.environ.get("PEER_PRECISION", "fp32"), max_length=256,
            batch_size=MAX_BATCH, max_batch_tokens=MAX_BATCH * 256, torchscript=self.torchscript,
        )
        self.runner.warm_up()

    @bentoml.api(route="/v1/predict", batchable=True, **_batching)
    def predict(self, texts: list[str]) -> list[Score]:
        return [Score(label=p.label, spam_probability=p.spam_probability)
                for p in self.runner.predict(texts)]

    @bentoml.api(route="/v1/info")
    def info(self) -> dict[str, Any]:
        return {"precision": self.runner.precision, "threads": self.threads,
                "torchscript": self.torchscript, "workers": WORKERS, **_batching}
