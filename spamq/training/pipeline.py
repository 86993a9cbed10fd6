"""``train()``: data -> model -> fit -> calibrate and choose the threshold -> measure -> write.

Each step is a function of its own below, in that order; :class:`TrainConfig` holds every
choice, :class:`TrainingData` the rows one training reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import DistilBertForSequenceClassification

from spamq.models.manifest import sha256_file, write_manifest
from spamq.settings import Settings
from spamq.text import normalize
from spamq.training import augment as aug_mod
from spamq.training import calibration, convert, evaluation, report
from spamq.training import exclude as exclude_mod
from spamq.training import feedback as fb_mod
from spamq.training import supplement as supp
from spamq.training.batches import WeightedCrossEntropy, encode, predict_scores
from spamq.training.config import TrainConfig
from spamq.training.data import Example, Splits, check_apart, read_tsv, split_excluding
from spamq.training.finetune import EPOCH_SELECTION, Encoded, Fit, fit_fast, fit_full

SCORE_DEFINITION = ("softmax(logits / calibration.temperature)[label 'spam'] of normalize(text), "
                    "truncated to max_length")


@dataclass
class TrainingData:
    """What one training reads: the UCI splits, the rows trained and validated on (UCI,
    augmented spam, the generated supplement, the hand-written modern rows, feedback) and the
    modern evaluation set."""
    data_sha256: str
    splits: Splits
    train: list[Example]
    validation: list[Example]
    validation_categories: list[str]
    modern: tuple[list[str], list[int], list[str]]
    sizes: dict[str, Any] = field(default_factory=dict)
    feedback_record: dict[str, Any] | None = None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _atomic_replace(tmp_dir: Path, out_dir: Path) -> None:
    """Move the finished directory into place; the old one is removed only afterwards."""
    backup = None
    if out_dir.exists():
        backup = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        if backup.exists():
            shutil.rmtree(backup)
        out_dir.rename(backup)
    tmp_dir.rename(out_dir)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


# --- step 1: data -----------------------------------------------------------------------------
def load_data(cfg: TrainConfig, settings: Settings, feedback: fb_mod.FeedbackSplit | None,
              feedback_source: fb_mod.FeedbackSource | None) -> TrainingData:
    """UCI split (excluded texts dropped from all three splits), augmented training spam, the
    generated supplement and the hand-written rows, and the chosen feedback's older side.

    The modern supplement (supplement.py) has its own train/validation split; the UCI splits
    are unchanged by it, so the UCI test split stays comparable between models.
    """
    assert cfg.data_path is not None and cfg.modern_eval is not None  # resolved
    excluded = exclude_mod.load_excluded(settings.exclude_sha256_path)
    splits = split_excluding(read_tsv(cfg.data_path), excluded, seed=cfg.seed, limit=cfg.limit,
                             validation_size=cfg.validation_size, test_size=cfg.test_size)
    held_out = {normalize(e.text) for e in splits.validation + splits.test}
    extra = aug_mod.augment_spam(splits.train, factor=cfg.augment_factor, seed=cfg.seed,
                                 exclude=held_out)
    modern = evaluation.read_labelled(cfg.modern_eval)
    supp_rows = supp.generate(per_category=cfg.supplement_per_category, seed=cfg.seed)
    supp.check_disjoint(supp_rows, modern[0])
    supp_train, supp_val = supp.split_rows(supp_rows, seed=cfg.seed, by=cfg.supplement_split)
    # The hand-written modern rows (data/modern/train.tsv, validation.tsv): never an eval text.
    empty: tuple[list[str], list[int], list[str]] = ([], [], [])
    w_train, w_val = ((evaluation.read_labelled(evaluation.WRITTEN_TRAIN),
                       evaluation.read_labelled(evaluation.WRITTEN_VALIDATION))
                      if cfg.written else (empty, empty))
    check_apart(w_train[0] + w_val[0], modern[0])
    sw = cfg.supplement_weight
    train = (splits.train + extra + [Example(r.text, r.label, weight=sw) for r in supp_train]
             + [Example(t, y, weight=sw) for t, y in zip(*w_train[:2], strict=True)])
    val = [*splits.validation, *(Example(r.text, r.label) for r in supp_val),
           *(Example(t, y) for t, y in zip(*w_val[:2], strict=True))]
    val_cats = ([("uci_spam" if e.label else "uci_ham") for e in splits.validation]
                + [r.category for r in supp_val] + [f"{c} (written)" for c in w_val[2]])
    fb_record = None
    if feedback is not None:  # the newest feedback evaluates; its near-duplicates train nowhere
        train, fb_info = fb_mod.join_training(
            train, feedback, [e.text for e in val + splits.test] + modern[0], Example)
        fb_record = {**feedback.record(feedback_source), **fb_info}
    train, n_dropped = exclude_mod.drop_excluded(train, excluded)
    keep = [not exclude_mod.is_excluded(e.text, excluded) for e in val]
    sizes: dict[str, Any] = dict(splits.sizes())
    sizes["excluded"] = {"list": str(settings.exclude_sha256_path), "hashes": len(excluded),
                         **splits.stats["excluded"],
                         "train": splits.stats["excluded"]["train"] + n_dropped,
                         "validation": (splits.stats["excluded"]["validation"]
                                        + keep.count(False))}
    if fb_record is not None:
        sizes["feedback"] = fb_record
    sizes["supplement"] = {"train": len(supp_train), "validation": len(supp_val),
                           "per_category": cfg.supplement_per_category,
                           "weight": cfg.supplement_weight,
                           "split_by": cfg.supplement_split}
    sizes["written"] = {"train": len(w_train[0]), "validation": len(w_val[0])}
    n_spam = sum(e.label for e in train)
    sizes["train_augmented"] = {"total": len(train), "ham": len(train) - n_spam,
                                "spam": n_spam, "augmented_spam": len(extra)}
    return TrainingData(
        data_sha256=sha256_file(cfg.data_path), splits=splits, train=train,
        validation=[e for e, k in zip(val, keep, strict=True) if k],
        validation_categories=[c for c, k in zip(val_cats, keep, strict=True) if k],
        modern=modern, sizes=sizes, feedback_record=fb_record)


# --- step 2: model and inputs -----------------------------------------------------------------
def load_model(cfg: TrainConfig):
    """(model, tokenizer, base name): the tiny from-scratch model or the pretrained encoder."""
    tok = convert.load_tokenizer()
    if cfg.from_scratch:
        return (DistilBertForSequenceClassification(convert.tiny_config(len(tok))), tok,
                "from-scratch")
    return convert.load_pretrained_distilbert(), tok, convert.BASE_NAME


def encode_sets(tok, data: TrainingData, cfg: TrainConfig) -> Encoded:
    n = int(cfg.eval_max_length or 0)
    return Encoded(
        train=encode(tok, [e.text for e in data.train], cfg.max_train_length),
        train_y=[e.label for e in data.train],
        train_weights=(None if all(e.weight == 1.0 for e in data.train)
                       else [e.weight for e in data.train]),
        val=encode(tok, [e.text for e in data.validation], n),
        val_y=[e.label for e in data.validation],
        test=encode(tok, [e.text for e in data.splits.test], n),
        test_y=[e.label for e in data.splits.test],
        modern=encode(tok, data.modern[0], n) if data.modern[0] else [],
        pad_id=tok.pad_token_id)


def loss_function(cfg: TrainConfig, train_y: list[int]) -> WeightedCrossEntropy:
    """Cross-entropy; with ``class_weights``, weighted by inverse class frequency."""
    weight = None
    if cfg.class_weights:
        counts = np.bincount(train_y, minlength=2).astype(float)
        weight = torch.tensor(counts.sum() / (2.0 * np.maximum(counts, 1.0)), dtype=torch.float)
    return WeightedCrossEntropy(weight)


# --- step 4: calibration and threshold, on validation only ----------------------------------
@dataclass
class Calibrated:
    temperature: float
    threshold: float
    val_probs: np.ndarray
    test_scores: np.ndarray  # calibrated p(spam) on the UCI test split
    record: dict[str, Any]  # metrics.json's "calibration"


def calibrate(fit: Fit, enc: Encoded, log) -> Calibrated:
    """Temperature by validation NLL, then the threshold by calibration.choose_threshold on
    the calibrated validation probabilities; reliability before and after, validation and test
    (the test split is scored here, and only here, with the weights already chosen)."""
    val_logits, test_logits = fit.logits_of("val"), fit.logits_of("test")
    temperature = calibration.fit_temperature(val_logits, enc.val_y)
    raw = {"validation": calibration.spam_probability(val_logits, 1.0),
           "test": calibration.spam_probability(test_logits, 1.0)}
    cal = {"validation": calibration.spam_probability(val_logits, temperature),
           "test": calibration.spam_probability(test_logits, temperature)}
    ys = {"validation": enc.val_y, "test": enc.test_y}
    threshold = calibration.choose_threshold(enc.val_y, cal["validation"], **calibration.SERVED)
    rel = {k: {"uncalibrated": calibration.reliability(raw[k], ys[k]),
               "temperature": calibration.reliability(cal[k], ys[k])} for k in ys}
    ece = {k: {name: r["ece"] for name, r in v.items()} for k, v in rel.items()}
    record: dict[str, Any] = {
        "method": ("temperature scaling, fit on validation (UCI + supplement + "
                   "hand-written) by NLL"),
        "temperature": temperature,
        "validation_ece": ece["validation"], "test_ece": ece["test"],
        "validation_nll": {"uncalibrated": calibration.nll(raw["validation"], enc.val_y),
                           "temperature": calibration.nll(cal["validation"], enc.val_y)},
        "reliability": rel}
    log(f"calibration: T {temperature:.3f}; ECE validation "
        f"{ece['validation']['uncalibrated']:.4f} -> {ece['validation']['temperature']:.4f}, "
        f"test {ece['test']['uncalibrated']:.4f} -> {ece['test']['temperature']:.4f}; "
        f"threshold {threshold:.4f}")
    return Calibrated(temperature, threshold, cal["validation"], cal["test"], record)


# --- step 5: measure --------------------------------------------------------------------------
def per_source_metrics(model, tok, enc: Encoded, cal: Calibrated, modern_metrics,
                       feedback: fb_mod.FeedbackSplit | None, max_length: int) -> dict[str, Any]:
    """Spam F1, spam recall and ham FPR with bootstrap intervals per source: the UCI test
    split, the hand-written modern set and the held-out (newest) feedback."""
    out: dict[str, Any] = {"uci_test": evaluation.set_metrics(
        cal.test_scores, enc.test_y, ["uci"] * len(enc.test_y), cal.threshold)}
    if modern_metrics is not None:
        out["modern"] = modern_metrics
    if feedback is not None and feedback.holdout:
        seqs = encode(tok, [r.text for r in feedback.holdout], max_length)
        probs = calibration.spam_probability(predict_scores(model, seqs, enc.pad_id).numpy(),
                                             cal.temperature)
        out["feedback"] = evaluation.set_metrics(probs, [r.label for r in feedback.holdout],
                                                 ["feedback"] * len(feedback.holdout),
                                                 cal.threshold)
    return out


def measure(model, tok, data: TrainingData, enc: Encoded, fit: Fit, cal: Calibrated,
            cfg: TrainConfig, feedback: fb_mod.FeedbackSplit | None, log) -> dict[str, Any]:
    """Test metrics, the modern set and the feedback holdout per source, validation per
    category, the threshold's record and the TF-IDF baseline on the same split."""
    metrics = report.classification_metrics(enc.test_y, cal.test_scores, cal.threshold)
    metrics["test_loss"] = calibration.nll(cal.test_scores, enc.test_y)
    modern_metrics = None
    if data.modern[0]:
        probs = calibration.spam_probability(fit.logits_of("modern"), cal.temperature)
        modern_metrics = evaluation.set_metrics(probs, data.modern[1], data.modern[2],
                                                cal.threshold)
    # Validation per category (UCI ham/spam and each supplement category): what choices
    # between configurations are made on (the modern evaluation set is not).
    val_sets = evaluation.set_metrics(cal.val_probs, enc.val_y, data.validation_categories,
                                      cal.threshold)
    log("validation per category: " + ", ".join(
        f"{c} {'FPR' if v['metric'] == 'fpr' else 'recall'} {v['value']:.3f}"
        for c, v in val_sets["categories"].items()))
    pred, vy = cal.val_probs >= cal.threshold, np.asarray(enc.val_y)
    threshold_info = {**calibration.THRESHOLD_POLICY, "threshold": cal.threshold,
                      "validation_ham_fpr": float(np.mean(pred[vy == 0])),
                      "validation_spam_recall": float(np.mean(pred[vy == 1]))}
    if threshold_info["validation_ham_fpr"] > calibration.TARGET_FPR:
        log(f"WARNING: validation ham FPR {threshold_info['validation_ham_fpr']:.4f} at "
            f"threshold {cal.threshold:.4f} misses the {calibration.TARGET_FPR} target")
    s = data.splits
    norm = lambda rows: [normalize(e.text) for e in rows]  # noqa: E731
    baseline = report.tfidf_baseline(norm(s.train), [e.label for e in s.train],
                                      norm(s.validation), [e.label for e in s.validation],
                                      norm(s.test), enc.test_y)
    metrics.update({
        "split": "test", "baseline": baseline, "calibration": cal.record,
        "threshold_policy": threshold_info, "validation_sets": val_sets,
        "modern": modern_metrics, "modern_eval": str(cfg.modern_eval),
        "sources": per_source_metrics(model, tok, enc, cal, modern_metrics, feedback,
                                      int(cfg.eval_max_length or 0))})
    metrics["targets"] = (evaluation.targets_met(modern_metrics, metrics) if modern_metrics
                          else None)
    return metrics


def training_record(cfg: TrainConfig, fit: Fit, model) -> dict[str, Any]:
    """The manifest's ``training``: every setting that made these weights."""
    return {
        "from_scratch": cfg.from_scratch, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
        "lr": cfg.lr, "seed": cfg.seed, "limit": cfg.limit,
        "max_train_length": cfg.max_train_length, "eval_max_length": cfg.eval_max_length,
        "augment_factor": cfg.augment_factor, "augmenters": list(aug_mod.AUGMENTERS),
        "class_weights": cfg.class_weights,
        "supplement_per_category": cfg.supplement_per_category,
        "supplement_split": cfg.supplement_split,
        "supplement_weight": cfg.supplement_weight,
        "written": ({"train": sha256_file(evaluation.WRITTEN_TRAIN),
                     "validation": sha256_file(evaluation.WRITTEN_VALIDATION)} if cfg.written
                    else None),
        "method": (f"frozen embeddings + lower layers (cached), top {cfg.top_layers} layer(s) "
                   "and head fine-tuned" if cfg.fast_path else "full fine-tune"),
        "top_layers": cfg.top_layers if cfg.fast_path else None,
        "weight_decay": cfg.weight_decay, "warmup_ratio": cfg.warmup_ratio,
        "optimizer": "AdamW", "schedule": "linear warmup + linear decay",
        "grad_clip": 1.0, "threads": cfg.threads, "runs": cfg.runs,
        "selected": fit.chosen["name"],
        "epoch_selection": f"per run, {EPOCH_SELECTION}",
        "model_selection": (f"{EPOCH_SELECTION} over each run's best epoch"
                            + ("" if cfg.fast_path else ", the uniform and the greedy soup")),
        "threshold_selection": calibration.THRESHOLD_POLICY["rule"],
        "normalization": "spamq.text.normalize", "model_config": {
            k: getattr(model.config, k)
            for k in ("dim", "n_layers", "n_heads", "hidden_dim", "vocab_size",
                      "max_position_embeddings")},
    }


# --- step 6: the model directory --------------------------------------------------------------
def write_model_dir(model, tok, metrics: dict[str, Any], *, cfg: TrainConfig, base: str,
                    data: TrainingData, fit: Fit, cal: Calibrated, t_start: float) -> str:
    """Everything into a temporary directory, the manifest last, then moved into place."""
    out_dir = Path(cfg.out_dir or ".")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp_dir.chmod(0o755)
    baseline_scores = metrics["baseline"].pop("_scores")
    try:
        model.eval()
        model.save_pretrained(tmp_dir, safe_serialization=True)
        convert.save_tokenizer(tok, tmp_dir)
        report.plot_report(
            tmp_dir / "report.png", [e.label for e in data.splits.test],
            cal.test_scores, cal.threshold, baseline_scores,
            title=f"spamq {base}: test spam F1 {metrics['spam_f1']:.4f} "
                  f"(baseline {metrics['baseline']['spam_f1']:.4f})",
            reliability=cal.record["reliability"]["validation"])
        metrics["total_time_s"] = round(time.monotonic() - t_start, 2)
        (tmp_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        (tmp_dir / "report.md").write_text(
            "# Per-source test metrics\n\n" + evaluation.sources_table(metrics["sources"]) + "\n")
        for path in tmp_dir.iterdir():
            path.chmod(0o644)
        fb = data.feedback_record
        version = write_manifest(
            tmp_dir, data_sha256=data.data_sha256,
            split={"seed": cfg.seed, "sizes": data.sizes, **data.splits.stats},
            training=training_record(cfg, fit, model),
            decision_threshold=float(cal.threshold),
            calibration={"method": "temperature", "temperature": cal.temperature},
            threshold_policy=metrics["threshold_policy"],
            supplement={"generator": "spamq.training.supplement", "seed": cfg.seed,
                        "per_category": cfg.supplement_per_category,
                        "split_by": cfg.supplement_split},
            base=base, score=SCORE_DEFINITION, **({"feedback": fb} if fb is not None else {}))
        _atomic_replace(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return version


def train(config: TrainConfig | None = None, /, *,
          feedback: fb_mod.FeedbackSplit | None = None,
          feedback_source: fb_mod.FeedbackSource | None = None, log=print,
          **fields: Any) -> dict[str, Any]:
    """Train and write a model directory; return the test metrics (as in metrics.json).

    ``config`` (or :class:`TrainConfig`'s fields as keywords, which override it) says what to
    train. The returned dict also holds ``out_dir`` and ``version``. ``feedback`` (from
    :func:`spamq.training.feedback.load_split`): its older side trains, its newest side is
    evaluated as the source ``feedback``; nothing else is read from any key's feedback.
    """
    t_start = time.monotonic()
    settings = Settings()
    base_cfg = dataclasses.replace(config, **fields) if config else TrainConfig(**fields)
    cfg = base_cfg.resolved(settings, evaluation.MODERN_EVAL)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    _seed_everything(cfg.seed)
    data = load_data(cfg, settings, feedback, feedback_source)
    log(f"data: {cfg.data_path} sha256 {data.data_sha256[:12]}; split {json.dumps(data.sizes)}")
    model, tok, base = load_model(cfg)
    enc = encode_sets(tok, data, cfg)
    fit = (fit_fast if cfg.fast_path else fit_full)(model, enc, cfg,
                                                     loss_function(cfg, enc.train_y), log)
    log(f"selected on validation: {fit.chosen['name']} " + json.dumps(fit.chosen["validation"]))
    cal = calibrate(fit, enc, log)
    metrics = measure(model, tok, data, enc, fit, cal, cfg, feedback, log)
    metrics.update({"base": base, "training_time_s": round(fit.training_time_s, 2),
                    "selected": fit.chosen["name"], "candidates": fit.candidates,
                    "runs": fit.runs, "split_sizes": data.sizes, "score": SCORE_DEFINITION})
    version = write_model_dir(model, tok, metrics, cfg=cfg, base=base, data=data, fit=fit,
                              cal=cal, t_start=t_start)
    metrics["out_dir"] = str(cfg.out_dir)
    metrics["version"] = version
    return metrics
