"""A simulated operator: feedback reported in time order, the model retrained on the earlier half.

    .venv/bin/python -m bench.feedback_sim [--set data/modern/dev.tsv] [--full] [--threads 2]

Takes a labelled set apart from training (default ``data/modern/dev.tsv``: hand-written 2020s
A2P ham and smishing, never trained on; texts of the exclusion list are dropped), puts it in a
seeded random time order and stores it as one key's feedback, one item a minute, with the same
writer ``POST /v1/feedback`` uses (spamq/feedback/store.py), in a temporary artifact store.
Then trains two models with the same seed and settings: "before" without feedback, and
"after" with ``--feedback tenants=<that key> --feedback-holdout 0.5`` (the earlier half trains;
the later half, and the earlier items near-duplicating it, are held out). Both are scored on
the later half, the UCI test split and data/modern/eval.tsv; prints spam recall, ham FPR and
spam F1 with 95% bootstrap intervals, before and after, and writes
bench/results/feedback_sim.json.

The default is the tiny from-scratch model (minutes on 2 CPUs); ``--full`` trains the default
pretrained model (its cached fast path) for both runs.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.lib import hardware, write_results
from spamq.settings import Settings
from spamq.training import evaluation

KEY = "00000000feedbac5"  # the simulated operator's key id
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def report_in_time_order(path: Path, store_dir: Path, *, seed: int, excluded: frozenset[str]
                         ) -> int:
    """Store the set as KEY's feedback, one item a minute in a seeded order; return the count."""
    from spamq.feedback.store import text_sha256, write_feedback
    from spamq.storage.artifacts import LocalArtifactStore
    from spamq.training.exclude import is_excluded

    texts, labels, cats = evaluation.read_labelled(path)
    items = [(t, y, c) for t, y, c in zip(texts, labels, cats, strict=True)
             if not is_excluded(t, excluded)]
    random.Random(seed).shuffle(items)
    store = LocalArtifactStore(store_dir)
    for i, (text, label, cat) in enumerate(items):
        write_feedback(store, KEY, [{"text_sha256": text_sha256(text), "text": text,
                                     "label": "spam" if label else "ham", "category": cat,
                                     "source": "text"}], now=T0 + timedelta(minutes=i))
    return len(items)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", type=Path, default=evaluation.MODERN_DEV,
                    help="labelled TSV (label, [category,] text) apart from training")
    ap.add_argument("--full", action="store_true",
                    help="the default pretrained model instead of the tiny from-scratch one")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="keep both model directories here")
    ap.add_argument("--json", type=Path, default=None,
                    help="default: bench/results/feedback_sim[_full].json")
    args = ap.parse_args(argv)

    from spamq.training import train
    from spamq.training.exclude import load_excluded
    from spamq.training.feedback import load_split

    base = Settings()
    excluded = load_excluded(base.exclude_sha256_path)
    work = Path(tempfile.mkdtemp(prefix="spamq-feedback-sim-"))
    out_root = args.keep or work
    settings = Settings(artifact_dir=work / "store", hdfs_url=None)
    n = report_in_time_order(args.set, settings.artifact_dir, seed=args.seed, excluded=excluded)
    source, split = load_split(f"tenants={KEY}", settings, holdout=0.5, excluded=excluded)
    print(f"{n} items reported; training on {split.stats['train']['total']} older, "
          f"evaluating {split.stats['holdout']['total']} newer "
          f"({split.stats['near_duplicates_dropped_from_training']} near-duplicates of newer "
          f"items kept out of training)")

    common: dict[str, Any] = dict(from_scratch=not args.full, epochs=args.epochs, seed=args.seed,
                                  threads=args.threads, progress=False, log=lambda *_: None)
    models, times = {}, {}
    for name, fb in (("before", None), ("after", split)):
        t0 = time.monotonic()
        metrics = train(out_dir=out_root / name, feedback=fb,
                        feedback_source=source if fb else None, **common)
        times[name] = round(time.monotonic() - t0, 1)
        models[name] = Path(metrics["out_dir"])
        print(f"{name}: trained {metrics['version']} in {times[name]} s")

    held = ([r.text for r in split.holdout], [r.label for r in split.holdout],
            ["later half"] * len(split.holdout))
    results = {name: evaluation.evaluate_dir(d, data_path=base.data_path, feedback=held,
                                             log=lambda *_: None)
               for name, d in models.items()}
    rows = evaluation.compare(results["after"], results["before"])
    print(evaluation.format_table(rows, "after (with the earlier half)", "before"))
    fmt = {name: evaluation.sources_table(r["sets"]) for name, r in results.items()}
    for name, table in fmt.items():
        print(f"\n{name}:\n{table}")
    out = {"set": str(args.set), "items": n, "model": "pretrained (fast path)" if args.full
           else "tiny from-scratch", "seed": args.seed, "train_seconds": times,
           "feedback": split.record(source), "results": results, "rows": rows,
           "hardware": hardware()}
    path = args.json or Path("bench/results") / (
        "feedback_sim_full.json" if args.full else "feedback_sim.json")
    write_results(path, out)
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
