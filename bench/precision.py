"""Accuracy cost and speed of each precision on the model's own test split.

    .venv/bin/python -m bench.precision [--model-dir weights/default]

Rebuilds the test split from the manifest's split record (spamq.training.data), scores it
at fp32, bf16 and int8, and names the fastest precision costing at most 0.005 spam F1.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench.common import hardware, split_of, write_results
from spamq.settings import Settings

MAX_F1_COST = 0.005


def evaluate(model_dir: Path, *, data_path: Path, threads: int = 2,
             precisions: tuple[str, ...] = ("fp32", "bf16", "int8")) -> dict[str, Any]:
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
        out["by_precision"][precision] = {
            "spam_f1": f1_score(labels, predicted),
            "spam_f1_ci95": f1_interval(labels, predicted),
            "msgs_per_s": len(texts) / seconds,
        }
    base = out["by_precision"]["fp32"]["spam_f1"]
    for r in out["by_precision"].values():
        r["f1_cost"] = base - r["spam_f1"]
    allowed = [p for p, r in out["by_precision"].items() if r["f1_cost"] <= MAX_F1_COST]
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
    print(f"{'precision':<10}{'spam F1':>9}{'95% bootstrap':>16}{'cost':>9}{'msgs/s':>10}")
    for p, r in results["by_precision"].items():
        low, high = r["spam_f1_ci95"]
        print(f"{p:<10}{r['spam_f1']:>9.4f}{f'{low:.3f}-{high:.3f}':>16}{r['f1_cost']:>9.4f}"
              f"{r['msgs_per_s']:>10.0f}")
    print(f"fastest within {MAX_F1_COST} F1: {results['recommended']}")
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
