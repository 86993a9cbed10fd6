"""The peer of issue 16: the same model served by BentoML's adaptive batching.

    .venv-peer/bin/python -m bentoml serve bench.peer_service:PeerClassifier --port 3000

Run by bench/peer.py (``make bench-peer``) from its own venv, .venv-peer: BentoML is never a
dependency of spamq itself. One worker; one batchable endpoint at the same path and with the
same body as spamq's (``POST /v1/predict {"texts": [...]}``): BentoML's dispatcher gathers up
to 32 concurrent requests into one call, and ``BatchClassifier.predict`` tokenises them,
truncates at 256 tokens and runs length-sorted passes of at most 32 rows.

Environment: ``SPAMQ_MODEL_DIR`` (the model directory, as for spamq's worker; default
Settings().model_dir), ``SPAMQ_PRECISION`` (default ``auto``: what spamq's worker uses on the
CPU), ``SPAMQ_TORCH_THREADS`` (torch threads; default: all cores) and
``SPAMQ_PEER_TORCHSCRIPT`` (``false``: the eager model, for the peer alone).
"""

import os
from pathlib import Path

import bentoml
from pydantic import BaseModel

#: rows per model call and per pass, as the issue measured the peer
MAX_BATCH = 32


class Score(BaseModel):
    label: str
    spam_probability: float


def _model_dir() -> Path:
    configured = os.environ.get("SPAMQ_MODEL_DIR")
    if configured:
        return Path(configured)
    from spamq.settings import Settings

    return Settings().model_dir


@bentoml.service(workers=1, traffic={"timeout": 60})
class PeerClassifier:
    def __init__(self) -> None:
        import torch

        from worker.runner import BatchClassifier

        threads = os.environ.get("SPAMQ_TORCH_THREADS")
        torch.set_num_threads(int(threads) if threads else (os.cpu_count() or 1))
        # max_batch_tokens 32 x 256: the pass is bounded by its 32 rows only
        self.runner = BatchClassifier(
            _model_dir(), device="cpu", precision=os.environ.get("SPAMQ_PRECISION", "auto"),
            max_length=256, batch_size=MAX_BATCH, max_batch_tokens=MAX_BATCH * 256,
            torchscript=os.environ.get("SPAMQ_PEER_TORCHSCRIPT", "true") != "false",
        )
        self.runner.warm_up()

    @bentoml.api(route="/v1/predict", batchable=True, max_batch_size=MAX_BATCH)
    def predict(self, texts: list[str]) -> list[Score]:
        return [Score(label=p.label, spam_probability=p.spam_probability)
                for p in self.runner.predict(texts)]
