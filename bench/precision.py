"""Accuracy cost, speed and batch invariance of each precision on the model's own test split.

    .venv/bin/python -m bench.precision [--model-dir weights/default] [--rounds 5]

Rebuilds the test split from the manifest's split record (spamq.training.data), scores it
at each precision (fp32, bf16, int8, fp16w, and the row-wise bf16mm, int8row, int8static of
spamq/models/precision.py), checks each for batch invariance (every text alone vs inside shuffled
passes of similar-length texts), and times the model alone at each precision in alternated
rounds on the same threads (median msgs/s and its ratio to fp32). int8static's activation
ranges are calibrated on the model's training split (never on an excluded text). Names the
fastest batch-invariant precision costing at most 0.005 spam F1, and what ``auto``'s probe
picks on this CPU.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

from bench.lib import hardware, split_of, write_results
from spamq.models.invariance import MAX_LOGIT_DIFF, alone_and_batched
from spamq.settings import Settings

MAX_F1_COST = 0.005


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


PRECISIONS = ("fp32", "bf16", "int8", "fp16w", "bf16mm", "int8row", "int8static")


def calibration_ranges(model_dir: Path, data_path: Path, *, texts: int = 512,
                       seed: int = 0) -> dict[str, float]:
    """int8static's activation ranges: each encoder linear's largest |input| over ``texts``
    texts of the model's training split, none of them on the exclusion list."""
    from spamq.models.precision import calibrate
    from spamq.training.exclude import is_excluded, load_excluded
    from worker.runner import BatchClassifier

    excluded = load_excluded(Settings().exclude_sha256_path)
    train, _ = split_of(model_dir, data_path, "train")
    pool = [t for t in train if not is_excluded(t, excluded)]
    chosen = random.Random(seed).sample(pool, min(texts, len(pool)))
    runner = BatchClassifier(model_dir, device="cpu", precision="fp32", torchscript=False)
    ids, _ = runner.encode(chosen)
    batches = [runner.pad(ids, index) for index in runner.plan([len(r) for r in ids])]
    return calibrate(runner.model, ((b.input_ids, b.attention_mask) for b in batches))


def evaluate(model_dir: Path, *, data_path: Path, threads: int = 2, rounds: int = 5,
             precisions: tuple[str, ...] = PRECISIONS,
             invariance_texts: int | None = None) -> dict[str, Any]:
    import statistics

    import torch
    from sklearn.metrics import f1_score

    from spamq.training.report import f1_interval
    from worker.runner import BatchClassifier

    torch.set_num_threads(threads)
    texts, labels = split_of(model_dir, data_path, "test")
    out: dict[str, Any] = {"n": len(texts), "spam": sum(labels), "threads": threads,
                           "rounds": rounds, "by_precision": {}}
    ranges = calibration_ranges(model_dir, data_path) if "int8static" in precisions else None
    runners = {p: BatchClassifier(model_dir, device="cpu", precision=p,
                                  activation_absmax=ranges if p == "int8static" else None)
               for p in precisions}
    auto = BatchClassifier(model_dir, device="cpu", precision="auto")
    out["auto_picks"] = auto.precision
    del auto
    for precision, runner in runners.items():
        runner.warm_up()
        predicted = [int(p.label == "spam") for p in runner.predict(texts)]
        inv = invariance(runner, texts[:invariance_texts])
        out["by_precision"][precision] = {
            "batch_invariance": inv,
            "batch_invariant": (inv["max_abs_logit_diff"] <= MAX_LOGIT_DIFF
                                and inv["label_flips"] == 0),
            "spam_f1": f1_score(labels, predicted),
            "spam_f1_ci95": f1_interval(labels, predicted),
        }
    # the model alone: every precision once per round, in turn, so that the machine's other
    # load falls on all of them alike; the median round counts
    rates: dict[str, list[float]] = {p: [] for p in precisions}
    for _ in range(rounds):
        for precision, runner in runners.items():
            t0 = time.perf_counter()
            runner.predict(texts)
            rates[precision].append(len(texts) / (time.perf_counter() - t0))
    base = out["by_precision"]["fp32"]
    for precision, r in out["by_precision"].items():
        r["msgs_per_s"] = statistics.median(rates[precision])
        r["msgs_per_s_rounds"] = rates[precision]
    for r in out["by_precision"].values():
        r["f1_cost"] = base["spam_f1"] - r["spam_f1"]
        r["speed_vs_fp32"] = r["msgs_per_s"] / base["msgs_per_s"]
    allowed = [p for p, r in out["by_precision"].items()
               if r["f1_cost"] <= MAX_F1_COST and r["batch_invariant"]]
    out["recommended"] = max(allowed, key=lambda p: out["by_precision"][p]["msgs_per_s"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Settings().model_dir)
    parser.add_argument("--out", type=Path, default=Path("bench/results/precision.json"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternated timing rounds; the median counts (default 5)")
    parser.add_argument("--precisions", default=",".join(PRECISIONS),
                        help="comma-separated; fp32 is always included")
    parser.add_argument("--invariance-texts", type=int, default=None,
                        help="check invariance on the first N test texts (default: all)")
    args = parser.parse_args()
    chosen = tuple(dict.fromkeys(["fp32", *args.precisions.split(",")]))
    results = {"hardware": hardware(), "model_dir": str(args.model_dir),
               **evaluate(args.model_dir, data_path=Settings().data_path, threads=args.threads,
                          rounds=args.rounds, precisions=chosen,
                          invariance_texts=args.invariance_texts)}
    print(f"test split: {results['n']} texts ({results['spam']} spam), {results['threads']} "
          f"torch threads, median of {results['rounds']} alternated rounds")
    print(f"{'precision':<11}{'spam F1':>9}{'95% bootstrap':>16}{'cost':>9}{'msgs/s':>9}"
          f"{'x fp32':>8}{'max|dlogit|':>13}{'flips':>7}")
    for p, r in results["by_precision"].items():
        low, high = r["spam_f1_ci95"]
        inv = r["batch_invariance"]
        print(f"{p:<11}{r['spam_f1']:>9.4f}{f'{low:.3f}-{high:.3f}':>16}{r['f1_cost']:>9.4f}"
              f"{r['msgs_per_s']:>9.0f}{r['speed_vs_fp32']:>8.2f}"
              f"{inv['max_abs_logit_diff']:>13.5f}{inv['label_flips']:>7}")
    print(f"fastest batch-invariant precision (max |dlogit| <= {MAX_LOGIT_DIFF}, no flips) "
          f"within {MAX_F1_COST} F1: {results['recommended']}; auto's probe picks "
          f"{results['auto_picks']} on this CPU")
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
