"""Temperature scaling, expected calibration error, the threshold policy, bootstrap intervals.

The served ``spam_probability`` is ``softmax(logits / T)[spam]`` with ``T`` fit on validation
(minimum negative log-likelihood). Temperature scaling keeps the ranking and the argmax, so the
label at the 0.5 threshold is the model's argmax whatever ``T`` is.

One threshold rule, :func:`choose_threshold`: the threshold within bounds that maximises spam F1
on validation, optionally only among those meeting a ham FPR target. The TF-IDF baseline uses
it unbounded. The served model uses it with :data:`SERVED` (bounds 0.5 to ``MAX_THRESHOLD``,
today 0.5): 0.5 on the calibrated probability, every run (the Bayes decision for a calibrated
score and equal costs), and the epochs are chosen on validation F1 at that same threshold. The
validation ham FPR at 0.5 is reported against ``target_fpr`` (``threshold_policy`` in the
manifest); a model that misses it is flagged, not re-thresholded. On the seed-13 default, the
F1-best threshold on validation was 0.22 and UCI test spam F1 fell from 0.914 (at 0.5) to 0.889;
chosen on the UCI validation rows alone it was 0.80 and F1 0.907: the served rule stays 0.5.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TARGET_FPR = 0.01
MAX_THRESHOLD = 0.5  # the served policy: the threshold stays at 0.5
SERVED: dict[str, Any] = {"target_fpr": TARGET_FPR, "lo": 0.5, "hi": MAX_THRESHOLD}
THRESHOLD_POLICY: dict[str, Any] = {
    "rule": "0.5 on the calibrated probability, every run; validation ham FPR at 0.5 is "
            "reported against target_fpr (missed: flagged, not re-thresholded)",
    "target_fpr": TARGET_FPR,
    "max_threshold": MAX_THRESHOLD,
}


def spam_probability(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T)[:, 1] for two-class logits (n, 2), computed stably."""
    z = np.asarray(logits, dtype=np.float64)
    d = (z[:, 1] - z[:, 0]) / temperature
    return 1.0 / (1.0 + np.exp(-d))


def fit_temperature(logits: np.ndarray, y, *, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T > 0 minimising validation NLL of softmax(logits / T) (golden-section on log T)."""
    z = np.asarray(logits, dtype=np.float64)
    d = z[:, 1] - z[:, 0]
    yy = np.asarray(y, dtype=np.float64)

    def nll(log_t: float) -> float:
        s = d / np.exp(log_t)
        # -log sigmoid(s) for spam, -log sigmoid(-s) for ham
        return float(np.mean(np.logaddexp(0.0, -s) * yy + np.logaddexp(0.0, s) * (1 - yy)))

    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    c, e = b - g * (b - a), a + g * (b - a)
    fc, fe = nll(c), nll(e)
    for _ in range(80):
        if fc < fe:
            b, e, fe = e, c, fc
            c = b - g * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, e, fe
            e = a + g * (b - a)
            fe = nll(e)
    return float(np.exp((a + b) / 2))


def nll(probs, y) -> float:
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1 - 1e-12)
    yy = np.asarray(y, dtype=np.float64)
    return float(-np.mean(yy * np.log(p) + (1 - yy) * np.log(1 - p)))


def reliability(probs, y, bins: int = 10) -> dict:
    """Equal-width bins of p(spam): count, mean predicted, observed spam rate; and the ECE.

    ECE = sum over bins of (n_bin / n) * |observed rate - mean predicted|.
    """
    p = np.asarray(probs, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        if not n:
            rows.append({"bin": [float(edges[b]), float(edges[b + 1])], "n": 0,
                         "mean_predicted": None, "observed": None})
            continue
        mp, ob = float(p[sel].mean()), float(yy[sel].mean())
        ece += n / len(p) * abs(ob - mp)
        rows.append({"bin": [float(edges[b]), float(edges[b + 1])], "n": n,
                     "mean_predicted": mp, "observed": ob})
    return {"ece": float(ece), "bins": rows}


def choose_threshold(y, scores, *, target_fpr: float | None = None, lo: float = 0.0,
                     hi: float = 1.0) -> float:
    """The threshold in ``[lo, hi]`` that maximises spam F1 on (validation) data.

    Candidates are 0.5 and the midpoints between consecutive distinct scores; with
    ``target_fpr``, only those whose ham FPR is at most ``target_fpr`` (if none is, the
    candidate with the lowest ham FPR). Among equally good candidates the one closest to 0.5
    wins (the least surprising under a small validation set).
    """
    yy = np.asarray(y, dtype=int)
    s = np.asarray(scores, dtype=np.float64)
    uniq = np.unique(s)
    cands = np.concatenate([[0.5], (uniq[:-1] + uniq[1:]) / 2.0])
    cands = cands[(cands >= lo) & (cands <= hi)]
    if not len(cands):
        return float(min(max(0.5, lo), hi))
    pred = s[None, :] >= cands[:, None]
    tp = (pred & (yy == 1)).sum(1)
    fp = (pred & (yy == 0)).sum(1)
    fn = (~pred & (yy == 1)).sum(1)
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    if target_fpr is not None and np.any(yy == 0):
        fpr = fp / int(np.sum(yy == 0))
        ok = fpr <= target_fpr + 1e-12
        f1 = np.where(ok, f1, -1.0) if ok.any() else np.where(fpr == fpr.min(), f1, -1.0)
    best = f1.max()
    tied = cands[np.abs(f1 - best) <= 1e-12]
    return float(tied[np.argmin(np.abs(tied - 0.5))])


def rate_interval(hits, *, resamples: int = 2000, level: float = 0.95, seed: int = 0):
    """Percentile bootstrap interval of a proportion (FPR of ham, recall of spam)."""
    h = np.asarray(hits, dtype=float)
    if not len(h):
        return [None, None]
    idx = np.random.default_rng(seed).integers(0, len(h), size=(resamples, len(h)))
    rates = h[idx].mean(1)
    tail = (1.0 - level) / 2.0
    return [float(np.quantile(rates, tail)), float(np.quantile(rates, 1.0 - tail))]


def plot_reliability(ax, before: dict, after: dict, title: str) -> None:
    """Reliability diagram (observed spam rate against mean predicted) before/after scaling."""
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
    for rel, style, name in ((before, "s--", "uncalibrated"), (after, "o-", "temperature")):
        pts = [(b["mean_predicted"], b["observed"]) for b in rel["bins"] if b["n"]]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, style, label=f"{name} (ECE {rel['ece']:.3f})")
    ax.set_xlabel("mean predicted p(spam)")
    ax.set_ylabel("observed spam rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
