"""The pipeline's ceiling: the worker with a forward pass that costs nothing, beside what the
fast tokenizer alone encodes on the same cores.

The null-model legs run a real worker process with ``SPAMQ_NULL_MODEL=true`` (bench only:
the same tokenizer, batcher, Celery, Redis and split I/O; zero logits instead of the
encoder, worker/null_model.py): bulk in rows/s (a file job end to end, as leg (2)) and
``/v1/predict`` at 32 clients in req/s. The tokenizer leg runs the model's own
``tokenizer.json`` in a child process (Rayon's thread count is fixed at its first parallel
call, so a fresh process per thread count), ``encode_batch`` over the same SMS texts, with
1 thread and with the thread count the worker's tokenizer gets (Rayon's default: all cores).
``python -m bench`` prints both and their ratio; ``python -m bench --null-only`` runs these
legs alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_ENCODE = r"""
import json, sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
texts = json.load(open(sys.argv[2], encoding="utf-8"))
tok.encode_batch(texts[:256])  # the thread pool and caches: not timed
best, cpu, passes, until = 0.0, float("inf"), 0, time.perf_counter() + float(sys.argv[3])
while passes < 5 or time.perf_counter() < until:  # shared cores: the best pass of several
    t0, c0 = time.perf_counter(), time.process_time()  # process_time: every Rayon thread's
    tok.encode_batch(texts, add_special_tokens=True)
    best = max(best, len(texts) / (time.perf_counter() - t0))
    cpu = min(cpu, (time.process_time() - c0) * 1000 / len(texts))
    passes += 1
print(json.dumps({"msgs_per_s": best, "cpu_ms_per_text": cpu, "n": len(texts),
                  "passes": passes}))
"""


def worker_tokenizer_threads() -> int:
    """The threads the worker's batch encode runs on: Rayon's default, the cores."""
    return os.cpu_count() or 1


def tokenizer_alone(model_dir: Path, texts: list[str], *, threads: int,
                    seconds: float = 3.0) -> dict[str, Any]:
    """``encode_batch`` of ``texts`` with ``threads`` Rayon threads: the best pass of at least
    5 and of ``seconds`` (on shared cores a single pass measures the neighbours)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as fh:
        json.dump(texts, fh)
        fh.flush()
        env = {**os.environ, "RAYON_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "true"}
        out = subprocess.run([sys.executable, "-c", _ENCODE, str(model_dir / "tokenizer.json"),
                              fh.name, str(seconds)],
                             env=env, capture_output=True, text=True, check=True)
    return {**json.loads(out.stdout), "threads": threads}


def null_env(env: dict[str, str]) -> dict[str, str]:
    """A worker environment with the forward pass replaced by zero logits (bench only)."""
    return {**env, "SPAMQ_NULL_MODEL": "true"}


def null_ratio(r: dict[str, Any]) -> float:
    """Null-model bulk rows/s over the tokenizer's own msgs/s on the worker's thread count."""
    return r["null_bulk"]["msgs_per_s"] / r["tokenizer"]["msgs_per_s"]


def cpu_ratio(r: dict[str, Any]) -> float:
    """The same ratio in CPU time, which neighbours on shared cores do not inflate: the
    tokenizer's CPU per text over the null worker's CPU per bulk row."""
    worker = sum(v for k, v in r["null_bulk"]["cpu_ms_per_row"].items() if "worker" in k)
    return r["tokenizer_1"]["cpu_ms_per_text"] / worker


def target(r: dict[str, Any]) -> tuple[str, str, bool] | None:
    if "null_bulk" not in r or "tokenizer" not in r:
        return None
    ratio = null_ratio(r)
    return (f"(7) null bulk >= 0.7x (8) tokenizer, {r['tokenizer']['threads']} thr.",
            f"{ratio:.2f}x", ratio >= 0.7)
