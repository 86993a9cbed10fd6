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
from typing import Any

import numpy as np

from spamq.text import normalize
from spamq.training import calibration
from spamq.training.data import LABEL2ID

MODERN_EVAL = Path(__file__).resolve().parents[2] / "data" / "modern" / "eval.tsv"
# Written apart from both the templates and eval.tsv (another session, not reading either):
# for choosing between training candidates (`spamq models evaluate ... --file`), never trained
# on; eval.tsv stays for reporting only (data/modern/DATA_CARD.md)
MODERN_DEV = MODERN_EVAL.with_name("dev.tsv")
# Hand-written by writers other than those of the templates, dev.tsv and eval.tsv: train.tsv is
# trained on, validation.tsv (a writer of its own) joins validation, so that early stopping,
# calibration and the threshold see phrasing the model never trained on (DATA_CARD.md, section 4)
WRITTEN_TRAIN = MODERN_EVAL.with_name("train.tsv")
WRITTEN_VALIDATION = MODERN_EVAL.with_name("validation.tsv")
TARGETS = {"a2p_fpr_max": 0.02, "smishing_recall_min": 0.90, "uci_spam_f1_min": 0.95}


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


def check_apart(texts: Sequence[str], eval_texts: Sequence[str], what: str = "trained on") -> None:
    """Raise if any evaluation text equals (after normalisation) one of ``texts``."""
    seen = {normalize(t) for t in texts}
    clash = [t for t in eval_texts if normalize(t) in seen]
    if clash:
        raise ValueError(f"{len(clash)} evaluation texts are also {what}, e.g. {clash[0]!r}")


def set_metrics(probs, y, categories, threshold: float, *, seed: int = 0) -> dict:
    """Spam F1 (+ interval), and per category the ham FPR or the spam recall (+ interval)."""
    from spamq.training.report import f1_interval

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


def targets_met(modern: dict, uci: dict) -> dict:
    cats = modern["categories"].values()
    return {
        "a2p_fpr_every_category_le_0.02": all(c["value"] <= TARGETS["a2p_fpr_max"]
                                              for c in cats if c["metric"] == "fpr"),
        "smishing_recall_ge_0.90": (modern["spam_recall"] or 0) >= TARGETS["smishing_recall_min"],
        "uci_spam_f1_ge_0.95": uci["spam_f1"] >= TARGETS["uci_spam_f1_min"],
    }


# --- scoring a model directory -----------------------------------------------------------------
class ModelScorer:
    """A model directory's calibrated p(spam), temperature and threshold from its manifest."""

    def __init__(self, model_dir: Path | str, *, max_length: int = 256, threads: int | None = 2):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from spamq.models.manifest import read_manifest, verify_model_dir

        if threads:
            torch.set_num_threads(threads)
        self.model_dir = Path(model_dir)
        self.version = verify_model_dir(self.model_dir)
        self.manifest = read_manifest(self.model_dir)
        self.threshold = float(self.manifest.get("decision_threshold", 0.5))
        self.temperature = float(self.manifest.get("calibration", {}).get("temperature", 1.0))
        self.tok = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            self.model_dir, local_files_only=True).eval()
        self.max_length = max_length

    def logits(self, texts: list[str]) -> np.ndarray:
        from spamq.training.pipeline import _encode, predict_scores

        seqs = _encode(self.tok, texts, self.max_length)
        return predict_scores(self.model, seqs, self.tok.pad_token_id).numpy()

    def probabilities(self, texts: list[str]) -> np.ndarray:
        return calibration.spam_probability(self.logits(texts), self.temperature)


def uci_test_set(data_path: Path | str, *, seed: int, limit: int | None = None):
    from spamq.training.data import read_tsv, split

    s = split(read_tsv(Path(data_path)), seed=seed, limit=limit)
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
