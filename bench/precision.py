"""Accuracy cost and speed of each precision on the model's own test split.

    .venv/bin/python -m bench.precision [--model-dir weights/default]

Rebuilds the test split from the manifest's split record (spamq.training.data), scores it
at fp32, bf16, int8 and fp16w, checks each for batch invariance (every text alone vs inside
shuffled passes of similar-length texts), and names the fastest batch-invariant precision
costing at most 0.005 spam F1.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

from bench.common import hardware, split_of, write_results
from spamq.settings import Settings

MAX_F1_COST = 0.005
MAX_LOGIT_DIFF = 0.01  # issue 16: a text's logits alone vs inside any pass


def alone_and_batched(runner: Any, texts: list[str], *, seed: int = 0):
    """Logits of each text scored alone, and inside shuffled passes (2 to 32 rows) of texts of
    similar length, so that they share passes as they do in the worker."""
    import torch

    ids, _ = runner.encode(texts)
    alone = torch.cat([runner.logits(runner.pad(ids, [i])) for i in range(len(ids))])
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    rng = random.Random(seed)
    batched = torch.empty_like(alone)
    start = 0
    while start < len(order):
        window = order[start:start + rng.randint(2, 32)]
        rng.shuffle(window)
        batched[window] = runner.logits(runner.pad(ids, window))
        start += len(window)
    return alone, batched


def invariance(runner: Any, texts: list[str]) -> dict[str, Any]:
    """Max |logit difference| alone vs batched, and how many labels flip."""
    import torch

    alone, batched = alone_and_batched(runner, texts)

    def labels(logits):
        p = torch.softmax(logits / runner.temperature, dim=-1)[:, runner.spam_id]
        return p >= runner.threshold

    return {"max_abs_logit_diff": float((batched - alone).abs().max()),
            "label_flips": int((labels(alone) != labels(batched)).sum()),
            "n": len(texts)}


def evaluate(model_dir: Path, *, data_path: Path, threads: int = 2,
             precisions: tuple[str, ...] = ("fp32", "bf16", "int8", "fp16w")) -> dict[str, Any]:
    import torch
    from sklearn.metrics import f1_score

    from spamq.training.report import f1_interval
    from worker.runner import BatchClassifier

    torch.set_num_threads(threads)
    texts, labels = split_of(model_dir, data_path, "test")
    out: dict[str, Any] = {"n": len(texts), "spam": sum(labels), "by_precision": {}}
    for precision in precisions:
        runner = BatchClassifier(model_dir, device="cpu", precision=precision)
        runner.warm_up()
        runner.predict(texts[:64])
        t0 = time.perf_counter()
        predictions = runner.predict(texts)
        seconds = time.perf_counter() - t0
        predicted = [int(p.label == "spam") for p in predictions]
        inv = invariance(runner, texts)
        out["by_precision"][precision] = {
            "batch_invariance": inv,
            "batch_invariant": (inv["max_abs_logit_diff"] <= MAX_LOGIT_DIFF
                                and inv["label_flips"] == 0),
            "spam_f1": f1_score(labels, predicted),
            "spam_f1_ci95": f1_interval(labels, predicted),
            "msgs_per_s": len(texts) / seconds,
        }
    base = out["by_precision"]["fp32"]["spam_f1"]
    for r in out["by_precision"].values():
        r["f1_cost"] = base - r["spam_f1"]
    allowed = [p for p, r in out["by_precision"].items()
               if r["f1_cost"] <= MAX_F1_COST and r["batch_invariant"]]
    out["recommended"] = max(allowed, key=lambda p: out["by_precision"][p]["msgs_per_s"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--out", type=Path, default=Path("bench/results/precision.json"))
    args = parser.parse_args()
    results = {"hardware": hardware(), "model_dir": str(args.model_dir),
               **evaluate(args.model_dir, data_path=Settings().data_path)}
    print(f"test split: {results['n']} texts ({results['spam']} spam)")
    print(f"{'precision':<10}{'spam F1':>9}{'95% bootstrap':>16}{'cost':>9}{'msgs/s':>10}"
          f"{'max|dlogit|':>13}{'flips':>7}")
    for p, r in results["by_precision"].items():
        low, high = r["spam_f1_ci95"]
        inv = r["batch_invariance"]
        print(f"{p:<10}{r['spam_f1']:>9.4f}{f'{low:.3f}-{high:.3f}':>16}{r['f1_cost']:>9.4f}"
              f"{r['msgs_per_s']:>10.0f}{inv['max_abs_logit_diff']:>13.5f}{inv['label_flips']:>7}")
    print(f"fastest batch-invariant precision (max |dlogit| <= {MAX_LOGIT_DIFF}, no flips) "
          f"within {MAX_F1_COST} F1: {results['recommended']}")
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
