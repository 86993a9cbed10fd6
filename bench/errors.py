"""Where the classifiers go wrong, measured on the validation split only.

    .venv/bin/python -m bench.errors weights/default weights/other [...]

Rebuilds the validation split from the manifests (every model must share one split), scores
it with each model at fp32, picks each model's threshold on it as training does, and reports
each model's spam F1, the mean-probability ensemble of all of them, the TF-IDF baseline, and
the texts that every model gets wrong. Errors every model shares are bias or label noise, which
more seeds, soups or ensembles cannot remove; errors that differ between models are variance.
The test split is never read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.lib import hardware, split_of, write_results
from spamq.settings import Settings


def _at_best_threshold(labels: list[int], scores: np.ndarray) -> dict[str, Any]:
    from spamq.training import report

    threshold = report.choose_threshold(labels, scores)
    metrics = report.classification_metrics(labels, scores, threshold)
    wrong = (scores >= threshold).astype(int) != np.asarray(labels)
    return {"spam_f1": metrics["spam_f1"], "threshold": threshold,
            "fp": metrics["confusion_matrix"]["fp"], "fn": metrics["confusion_matrix"]["fn"],
            "errors": np.flatnonzero(wrong).tolist()}


def _spam_probabilities(model_dir: Path, texts: list[str]) -> np.ndarray:
    from worker.runner import BatchClassifier

    runner = BatchClassifier(model_dir, device="cpu", precision="fp32")
    return np.array([p.spam_probability for p in runner.predict(texts)])


def _baseline_scores(model_dir: Path, data_path: Path, texts: list[str],
                     labels: list[int]) -> np.ndarray:
    """The TF-IDF + logistic regression baseline, trained on the same training split."""
    from spamq.text import normalize
    from spamq.training import report

    train_texts, train_labels = split_of(model_dir, data_path, "train")
    val = [normalize(t) for t in texts]
    return report.tfidf_baseline([normalize(t) for t in train_texts], train_labels,
                                 val, labels, val, labels)["_scores"]


def evaluate(model_dirs: list[Path], *, data_path: Path, threads: int = 2) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    texts, labels = split_of(model_dirs[0], data_path, "validation")
    for other in model_dirs[1:]:
        if split_of(other, data_path, "validation")[0] != texts:
            raise SystemExit(f"{other} was trained on another split than {model_dirs[0]}")
    probabilities = {str(d): _spam_probabilities(d, texts) for d in model_dirs}
    models = {name: _at_best_threshold(labels, p) for name, p in probabilities.items()}
    shared = set.intersection(*(set(m["errors"]) for m in models.values()))
    baseline = _baseline_scores(model_dirs[0], data_path, texts, labels)
    return {
        "split": "validation", "n": len(texts), "spam": sum(labels),
        "models": models,
        "ensemble": _at_best_threshold(labels, np.mean(list(probabilities.values()), axis=0)),
        "baseline": _at_best_threshold(labels, baseline),
        "shared_errors": [
            {"label": ["ham", "spam"][labels[i]], "text": texts[i],
             "spam_probability": {name: round(float(p[i]), 4)
                                  for name, p in probabilities.items()},
             "baseline": round(float(baseline[i]), 4)}
            for i in sorted(shared)
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dirs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=Path("bench/results/errors.json"))
    args = parser.parse_args()
    results = {"hardware": hardware(), **evaluate(args.model_dirs,
                                                  data_path=Settings().data_path)}
    print(f"validation split: {results['n']} texts ({results['spam']} spam)")
    rows = {**results["models"], "ensemble (mean probability)": results["ensemble"],
            "tf-idf baseline": results["baseline"]}
    print(f"{'model':<40}{'spam F1':>9}{'FP':>5}{'FN':>5}")
    for name, r in rows.items():
        print(f"{name:<40}{r['spam_f1']:>9.4f}{r['fp']:>5}{r['fn']:>5}")
    print(f"wrong in every model: {len(results['shared_errors'])}")
    for e in results["shared_errors"]:
        scores = json.dumps(list(e["spam_probability"].values()))
        print(f"  {e['label']:<5} {scores} baseline {e['baseline']}: {e['text'][:100]!r}")
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
