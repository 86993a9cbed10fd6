"""Metrics on the test split, the TF-IDF baseline and the report plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spamq.training.calibration import choose_threshold, plot_reliability


def f1_interval(y_true, y_pred, *, resamples: int = 2000, level: float = 0.95,
                seed: int = 0) -> list[float]:
    """Percentile bootstrap interval of spam F1: how far the number could move on another
    sample of texts like these (resampled with replacement, ``resamples`` times)."""
    y = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    idx = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    yy, pp = y[idx], p[idx]
    tp = (yy & pp).sum(1)
    wrong = (yy != pp).sum(1)
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + wrong, 1), 0.0)
    tail = (1.0 - level) / 2.0
    return [float(np.quantile(f1, tail)), float(np.quantile(f1, 1.0 - tail))]


def classification_metrics(y_true, scores, threshold: float) -> dict:
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        confusion_matrix,
        f1_score,
        matthews_corrcoef,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y = np.asarray(y_true, dtype=int)
    s = np.asarray(scores, dtype=float)
    pred = (s >= threshold).astype(int)
    both = len(set(y.tolist())) == 2
    cm = confusion_matrix(y, pred, labels=[0, 1])
    return {
        "n": int(len(y)),
        "threshold": float(threshold),
        "accuracy": float(accuracy_score(y, pred)),
        "spam_precision": float(precision_score(y, pred, zero_division=0)),
        "spam_recall": float(recall_score(y, pred, zero_division=0)),
        "spam_f1": float(f1_score(y, pred, zero_division=0)),
        "spam_f1_ci95": f1_interval(y, pred),
        "mcc": float(matthews_corrcoef(y, pred)),
        "roc_auc": float(roc_auc_score(y, s)) if both else None,
        "average_precision": float(average_precision_score(y, s)) if both else None,
        "confusion_matrix": {
            "labels": ["ham", "spam"],
            "rows_true_cols_pred": cm.tolist(),
            "tn": int(cm[0, 0]), "fp": int(cm[0, 1]), "fn": int(cm[1, 0]), "tp": int(cm[1, 1]),
        },
    }


def tfidf_baseline(train_texts, train_y, val_texts, val_y, test_texts, test_y) -> dict:
    """TF-IDF (word 1-2 grams + char 2-5 grams) + logistic regression, on the same split.

    Trained on the un-augmented training split, threshold chosen on validation like the model.
    Returns the test metrics plus the test scores under the key ``_scores`` (not serialised).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    clf = make_pipeline(
        make_union(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
        ),
        LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000),
    )
    clf.fit(train_texts, train_y)
    threshold = choose_threshold(val_y, clf.predict_proba(val_texts)[:, 1])
    scores = clf.predict_proba(test_texts)[:, 1]
    out = classification_metrics(test_y, scores, threshold)
    out["model"] = "tfidf(word 1-2 + char_wb 2-5) + logistic regression (C=10, balanced)"
    out["_scores"] = scores
    return out


def plot_report(
    path: Path, y_true, scores, threshold: float, baseline_scores=None, title: str = "",
    reliability: dict | None = None,
) -> None:
    """PR curve and confusion matrix on test; with ``reliability`` ({"uncalibrated": ...,
    "temperature": ...} from calibration.reliability), a reliability diagram too."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix, precision_recall_curve

    y = np.asarray(y_true, dtype=int)
    s = np.asarray(scores, dtype=float)
    if reliability:
        fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.8))
        plot_reliability(ax3, reliability["uncalibrated"], reliability["temperature"],
                         "Reliability (validation)")
    else:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.8))
    prec, rec, _ = precision_recall_curve(y, s)
    ax1.plot(rec, prec, label="DistilBERT")
    if baseline_scores is not None:
        bp, br, _ = precision_recall_curve(y, baseline_scores)
        ax1.plot(br, bp, "--", label="TF-IDF + LR baseline")
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    p_at = tp / max(int(pred.sum()), 1)
    r_at = tp / max(int(y.sum()), 1)
    ax1.plot([r_at], [p_at], "o", color="red", label=f"threshold {threshold:.3f}")
    ax1.set_xlabel("spam recall")
    ax1.set_ylabel("spam precision")
    ax1.set_title("Precision-recall (test split)")
    ax1.set_xlim(0, 1.01)
    ax1.set_ylim(0, 1.01)
    ax1.legend(loc="lower left")
    ax1.grid(alpha=0.3)

    cm = confusion_matrix(y, pred.astype(int), labels=[0, 1])
    ax2.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax2.text(j, i, str(v), ha="center", va="center",
                 color="white" if v > cm.max() / 2 else "black", fontsize=14)
    ax2.set_xticks([0, 1], ["ham", "spam"])
    ax2.set_yticks([0, 1], ["ham", "spam"])
    ax2.set_xlabel("predicted")
    ax2.set_ylabel("true")
    ax2.set_title(f"Confusion matrix (threshold {threshold:.3f})")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
