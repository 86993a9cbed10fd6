"""Evaluation sets and the promotion gate's comparison.

Sets: the UCI test split (re-derived from the data file and the model's split seed), the
hand-written modern set ``data/modern/eval.tsv`` (never used for training or choosing
anything) and any labelled file given (``label<TAB>text`` or ``label<TAB>category<TAB>text``).

Per set: spam F1 with its bootstrap interval; ham FPR per A2P category and spam recall per
smishing category, each with a bootstrap interval.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spamq.settings import Settings
from spamq.training import calibration
from spamq.training.data import LABEL2ID, read_tsv, split_excluding
from spamq.training.exclude import load_excluded
from spamq.training.report import f1_interval

if TYPE_CHECKING:
    from spamq.models.loader import Classifier

MODERN_EVAL = Path(__file__).resolve().parents[2] / "data" / "modern" / "eval.tsv"
# Written apart from both the templates and eval.tsv (by a writer reading neither):
# for choosing between training candidates (`spamq models evaluate ... --file`), never trained
# on; eval.tsv stays for reporting only (data/modern/DATA_CARD.md)
MODERN_DEV = MODERN_EVAL.with_name("dev.tsv")
# Hand-written by writers other than those of the templates, dev.tsv and eval.tsv: train.tsv is
# trained on, validation.tsv (a writer of its own) joins validation, so that early stopping,
# calibration and the threshold see phrasing the model never trained on (DATA_CARD.md, section 4)
WRITTEN_TRAIN = MODERN_EVAL.with_name("train.tsv")
WRITTEN_VALIDATION = MODERN_EVAL.with_name("validation.tsv")
TARGETS = {"a2p_fpr_max": 0.02, "smishing_recall_min": 0.95, "uci_spam_f1_min": 0.96}


def read_labelled(path: Path | str) -> tuple[list[str], list[int], list[str]]:
    """(texts, labels, categories) from a TSV with a ``label`` and a ``text`` column
    (``category`` optional; missing means ``all``). Quoting off, as for the UCI file."""
    texts, labels, cats = [], [], []
    with open(path, encoding="utf-8", newline="\n") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if "label" not in header or "text" not in header:
            raise ValueError(f"{path}: header must name 'label' and 'text', got {header}")
        li, ti = header.index("label"), header.index("text")
        ci = header.index("category") if "category" in header else None
        for lineno, line in enumerate(fh, start=2):
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t", len(header) - 1)
            if len(parts) != len(header) or parts[li] not in LABEL2ID:
                raise ValueError(f"{path}:{lineno}: bad row {line[:60]!r}")
            texts.append(parts[ti])
            labels.append(LABEL2ID[parts[li]])
            cats.append(parts[ci] if ci is not None else "all")
    return texts, labels, cats


def set_metrics(probs, y, categories, threshold: float, *, seed: int = 0) -> dict:
    """Spam F1 (+ interval), and per category the ham FPR or the spam recall (+ interval)."""
    p = np.asarray(probs, dtype=float)
    yy = np.asarray(y, dtype=int)
    cats = np.asarray(categories)
    pred = p >= threshold
    tp, fp = int(np.sum(pred & (yy == 1))), int(np.sum(pred & (yy == 0)))
    fn = int(np.sum(~pred & (yy == 1)))
    out: dict = {
        "n": int(len(yy)), "threshold": float(threshold),
        "spam_f1": (2 * tp / (2 * tp + fp + fn)) if tp else 0.0,
        "spam_f1_ci95": f1_interval(yy, pred, seed=seed),
        "ham_fpr": float(np.mean(pred[yy == 0])) if np.any(yy == 0) else None,
        "ham_fpr_ci95": calibration.rate_interval(pred[yy == 0], seed=seed),
        "spam_recall": float(np.mean(pred[yy == 1])) if np.any(yy == 1) else None,
        "spam_recall_ci95": calibration.rate_interval(pred[yy == 1], seed=seed),
        "categories": {},
    }
    for cat in sorted(set(cats.tolist())):
        for label, metric in ((0, "fpr"), (1, "recall")):
            sel = (cats == cat) & (yy == label)
            if not sel.any():
                continue
            hits = pred[sel]
            out["categories"][cat] = {
                "label": "ham" if label == 0 else "spam", "metric": metric,
                "n": int(sel.sum()), "value": float(hits.mean()),
                "ci95": calibration.rate_interval(hits, seed=seed),
            }
    return out


def feedback_comparison(texts: list[str], labels: list[int], hashes: list[str], logged: set[str],
                        models: dict[str, Any]) -> dict[str, Any]:
    """Each model (name -> :func:`ModelScorer`) on the feedback texts (a shadow report):
    spam F1, recall and ham FPR with intervals; how many of the texts the shadow logged."""
    out: dict[str, Any] = {"items": len(texts), "spam": int(sum(labels)),
                           "logged_by_the_shadow": sum(h in logged for h in hashes)}
    if not texts:
        return out
    for name, runner in models.items():
        probs = runner.probabilities(texts)
        m = set_metrics(probs, labels, ["feedback"] * len(texts), runner.threshold)
        m.pop("categories", None)
        out[name] = {"version": runner.version, **m}
    return out


def targets_met(modern: dict, uci: dict) -> dict:
    """The default model's targets: A2P ham FPR in every category, smishing recall (the
    modern set), UCI test spam F1; and whether UCI F1 beats the TF-IDF baseline beyond its
    95% interval (``uci["baseline"]``, when given)."""
    cats = modern["categories"].values()
    t = TARGETS
    out = {
        f"a2p_fpr_every_category_le_{t['a2p_fpr_max']}": all(
            c["value"] <= t["a2p_fpr_max"] for c in cats if c["metric"] == "fpr"),
        f"smishing_recall_ge_{t['smishing_recall_min']}": (
            (modern["spam_recall"] or 0) >= t["smishing_recall_min"]),
        f"uci_spam_f1_ge_{t['uci_spam_f1_min']}": uci["spam_f1"] >= t["uci_spam_f1_min"],
    }
    if uci.get("baseline"):
        out["uci_spam_f1_above_baseline_interval"] = (
            uci["spam_f1"] > uci["baseline"]["spam_f1_ci95"][1])
    return out


# --- scoring a model directory -----------------------------------------------------------------
def ModelScorer(model_dir: Path | str, *, max_length: int | None = None,  # noqa: N802
                threads: int | None = 2) -> Classifier:
    """A model directory scored as a worker scores it (spamq/models/loader.py: the settings'
    precision, the cut at ``max_length`` tokens, the spam index from the label map):
    ``probabilities(texts)``, ``threshold``, ``temperature``, ``version``, ``manifest``."""
    from spamq.models.loader import load_for_scoring

    return load_for_scoring(model_dir, max_length=max_length, threads=threads)


def uci_test_set(data_path: Path | str, *, seed: int, limit: int | None = None,
                 settings: Settings | None = None):
    """The UCI test split a training with this seed scored: excluded texts dropped too."""
    excluded = load_excluded((settings or Settings()).exclude_sha256_path)
    s = split_excluding(read_tsv(Path(data_path)), excluded, seed=seed, limit=limit)
    return [e.text for e in s.test], [e.label for e in s.test], ["uci"] * len(s.test)


def evaluate_dir(model_dir: Path | str, *, data_path: Path | str, split_seed: int | None = None,
                 extra: Sequence[Path] = (), modern: Path | None = MODERN_EVAL,
                 feedback: tuple[list[str], list[int], list[str]] | None = None,
                 log=print) -> dict:
    """Every evaluation set for one model directory (``feedback``: the held-out feedback as
    (texts, labels, categories), the set ``feedback``)."""
    scorer = ModelScorer(model_dir)
    seed = split_seed if split_seed is not None else int(scorer.manifest["split"]["seed"])
    sets: dict[str, tuple] = {"uci_test": uci_test_set(data_path, seed=seed)}
    if modern is not None:
        sets["modern"] = read_labelled(modern)
    if feedback is not None and feedback[0]:
        sets["feedback"] = feedback
    for path in extra:
        sets[Path(path).name] = read_labelled(path)
    out: dict[str, Any] = {"version": scorer.version, "threshold": scorer.threshold,
           "temperature": scorer.temperature, "sets": {}}
    for name, (texts, y, cats) in sets.items():
        log(f"scoring {name} ({len(texts)} texts) with {scorer.version}")
        out["sets"][name] = set_metrics(scorer.probabilities(texts), y, cats, scorer.threshold)
    return out


# --- the gate ---------------------------------------------------------------------------------
def _rows(result: dict) -> dict[tuple[str, str], tuple[float, list, bool]]:
    """(set, metric) -> (value, interval, higher_is_better)."""
    rows = {}
    for set_name, m in result["sets"].items():
        rows[(set_name, "spam F1")] = (m["spam_f1"], m["spam_f1_ci95"], True)
        if m["ham_fpr"] is not None:
            rows[(set_name, "ham FPR")] = (m["ham_fpr"], m["ham_fpr_ci95"], False)
        if m["spam_recall"] is not None:
            rows[(set_name, "spam recall")] = (m["spam_recall"], m["spam_recall_ci95"], True)
        if len(m["categories"]) > 1:
            for cat, c in m["categories"].items():
                name = f"{cat} {'FPR' if c['metric'] == 'fpr' else 'recall'}"
                rows[(set_name, name)] = (c["value"], c["ci95"], c["metric"] == "recall")
    return rows


def compare(candidate: dict, baseline: dict) -> list[dict]:
    """Side-by-side rows; ``worse`` when the candidate's value lies outside the baseline's 95%
    bootstrap interval on the bad side (F1/recall below its low end, FPR above its high end)."""
    cand, base = _rows(candidate), _rows(baseline)
    out = []
    for key, (value, ci, higher) in cand.items():
        b = base.get(key)
        worse = False
        if b is not None and b[1][0] is not None:
            worse = value < b[1][0] if higher else value > b[1][1]
        out.append({"set": key[0], "metric": key[1], "candidate": value, "candidate_ci95": ci,
                    "baseline": b[0] if b else None, "baseline_ci95": b[1] if b else None,
                    "worse": worse})
    return out


def format_table(rows: list[dict], cand_name: str, base_name: str) -> str:
    def cell(v, ci):
        if v is None:
            return "-"
        return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and ci[0] is not None else f"{v:.3f}"

    head = f"| set | metric | {base_name} | {cand_name} | worse beyond interval |"
    lines = [head, "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['metric']} | {cell(r['baseline'], r['baseline_ci95'])} "
                     f"| {cell(r['candidate'], r['candidate_ci95'])} "
                     f"| {'WORSE' if r['worse'] else ''} |")
    return "\n".join(lines)


def sources_table(sources: dict[str, dict]) -> str:
    """Markdown: per source, n, spam F1, spam recall and ham FPR with 95% bootstrap intervals."""
    def cell(m: dict, key: str) -> str:
        v, ci = m.get(key), m.get(f"{key}_ci95") or [None, None]
        if v is None:
            return "-"
        return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci[0] is not None else f"{v:.3f}"

    lines = ["| source | n | spam F1 | spam recall | ham FPR |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {m['n']} | {cell(m, 'spam_f1')} | {cell(m, 'spam_recall')} | "
              f"{cell(m, 'ham_fpr')} |" for name, m in sources.items()]
    return "\n".join(lines)


def dump(result: dict) -> str:
    return json.dumps(result, indent=2, sort_keys=True)
