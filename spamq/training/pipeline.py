"""``train()``: data -> split -> augment -> fine-tune -> pick epoch and threshold -> model dir."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from spamq.models.manifest import sha256_file, write_manifest
from spamq.settings import Settings
from spamq.text import normalize
from spamq.training import augment as aug_mod
from spamq.training import calibration, convert, evaluation, report
from spamq.training import exclude as exclude_mod
from spamq.training import feedback as fb_mod
from spamq.training import supplement as supp
from spamq.training.data import Example, read_tsv, split

SCORE_DEFINITION = ("softmax(logits / calibration.temperature)[label 'spam'] of normalize(text), "
                    "truncated to max_length")

# Defaults that differ between the pretrained encoder and the tiny from-scratch model.
PRETRAINED_DEFAULTS = {"epochs": 3, "lr": 8e-5, "batch_size": 16}
SCRATCH_DEFAULTS = {"epochs": 3, "lr": 2e-3, "batch_size": 32}
# Last layer + head only, on cached inputs (fast.py): a larger step suits the fresh head.
FAST_DEFAULTS = {"epochs": 4, "lr": 2e-4, "batch_size": 32}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _encode(tok, texts: list[str], max_length: int) -> list[list[int]]:
    enc = tok([normalize(t) for t in texts], truncation=True, max_length=max_length,
              padding=False, return_attention_mask=False)
    return enc["input_ids"]


def _collate(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort by length inside pools of 50 batches, cut batches, shuffle the batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


@torch.no_grad()
def predict_scores(model, seqs: list[list[int]], pad_id: int, batch_size: int = 64):
    """Logits in input order (batches sorted by length, so padding is small)."""
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    logits = torch.empty((len(seqs), model.config.num_labels))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        out = model(**_collate([seqs[i] for i in idx], pad_id))
        logits[idx] = out.logits.float()
    return logits


def _scores_and_loss(logits: torch.Tensor, y: list[int]) -> tuple[np.ndarray, float]:
    probs = torch.softmax(logits, dim=-1)[:, 1].numpy()
    loss = float(torch.nn.functional.cross_entropy(logits, torch.tensor(y)).item())
    return probs, loss


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


def _copy_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _validate(model, val_seqs, val_y, pad_id) -> dict[str, float]:
    """Spam F1 at its best threshold, average precision and loss on the validation split."""
    scores, loss = _scores_and_loss(predict_scores(model, val_seqs, pad_id), val_y)
    t = report.choose_threshold(val_y, scores)
    m = report.classification_metrics(val_y, scores, t)
    return {"val_spam_f1": m["spam_f1"], "val_average_precision": m["average_precision"],
            "val_loss": loss, "val_threshold": t}


_VALIDATION_FIELDS = ("val_spam_f1", "val_average_precision", "val_loss", "val_threshold")


def _val_key(v: dict[str, float]) -> tuple[float, float, float]:
    return (v["val_spam_f1"], v["val_average_precision"] or 0.0, -v["val_loss"])


def _fine_tune(model, *, train_seqs, train_y, val_seqs, val_y, pad_id, epochs, batch_size, lr,
               weight_decay, warmup_ratio, loss_fn, order_seed, label, progress, log):
    """One fine-tune; returns the weights of its best epoch on validation and its record."""
    torch.manual_seed(order_seed)  # dropout
    rng = random.Random(order_seed)  # batch order
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
         "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    steps_per_epoch = math.ceil(len(train_seqs) / batch_size)
    total_steps = max(1, steps_per_epoch * epochs)
    warmup = int(warmup_ratio * total_steps)

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    lengths = [len(s) for s in train_seqs]
    history: list[dict] = []
    best: dict[str, Any] | None = None
    best_state = None
    t0 = time.monotonic()
    epoch_bar = tqdm(range(1, epochs + 1), desc=f"{label} epochs", unit="epoch",
                     disable=not progress)
    for epoch in epoch_bar:
        model.train()
        step_bar = tqdm(_bucketed_batches(lengths, batch_size, rng), desc=f"epoch {epoch}/{epochs}",
                        unit="step", leave=False, disable=not progress)
        running, seen = 0.0, 0
        for batch in step_bar:
            inputs = _collate([train_seqs[i] for i in batch], pad_id)
            labels = torch.tensor([train_y[i] for i in batch])
            loss = loss_fn(model(**inputs).logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += float(loss.item()) * len(batch)
            seen += len(batch)
            step_bar.set_postfix(loss=f"{running / seen:.4f}",
                                 lr=f"{scheduler.get_last_lr()[0]:.2e}")
        step_bar.close()
        record = {"epoch": epoch, "train_loss": running / max(seen, 1),
                  **_validate(model, val_seqs, val_y, pad_id),
                  "elapsed_s": round(time.monotonic() - t0, 2)}
        history.append(record)
        epoch_bar.set_postfix(train_loss=f"{record['train_loss']:.4f}",
                              val_f1=f"{record['val_spam_f1']:.4f}",
                              val_loss=f"{record['val_loss']:.4f}")
        log(f"{label} epoch {epoch}: " + json.dumps(
            {k: (round(v, 5) if isinstance(v, float) else v) for k, v in record.items()}))
        if best is None or _val_key(record) > _val_key(best):
            best, best_state = record, _copy_state(model)
    epoch_bar.close()
    assert best is not None  # epochs >= 1
    return best_state, {"order_seed": order_seed, "best_epoch": best["epoch"], "history": history}


def _average(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Uniform weight average (integer buffers taken from the first)."""
    return {k: (torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v)
            for k, v in states[0].items()}


def _candidates(model, states, run_records, val_seqs, val_y, pad_id) -> list[dict]:
    """Each run's best epoch, then (with several runs) the uniform and the greedy soup.

    Greedy soup (Wortsman et al., 2022): runs in order of validation score; a run joins the
    soup when the averaged weights score no worse on validation.
    """
    def scored(name: str, state: dict) -> dict:
        model.load_state_dict(state)
        return {"name": name, "validation": _validate(model, val_seqs, val_y, pad_id),
                "state": state}

    # A run's best epoch was scored on validation during its fine-tune: reuse that record.
    singles = [{"name": f"run {i + 1} (epoch {r['best_epoch']})", "state": st,
                "validation": {k: r["history"][r["best_epoch"] - 1][k] for k in _VALIDATION_FIELDS}}
               for i, (st, r) in enumerate(zip(states, run_records, strict=True))]
    if len(singles) == 1:
        return singles
    uniform = scored(f"uniform soup of runs 1-{len(states)}", _average(states))
    order = sorted(range(len(singles)), key=lambda i: _val_key(singles[i]["validation"]),
                   reverse=True)
    members, soup = [order[0]], singles[order[0]]
    for i in order[1:]:
        trial = scored("", _average([states[j] for j in members + [i]]))
        if _val_key(trial["validation"]) >= _val_key(soup["validation"]):
            members, soup = members + [i], trial
    candidates = singles + [uniform]
    if len(members) > 1:
        soup["name"] = "greedy soup of runs " + ",".join(str(j + 1) for j in sorted(members))
        candidates.append(soup)
    return candidates


def _train_fast(model, *, train_seqs, train_y, val_seqs, val_y, test_seqs, modern_seqs, epochs,
                batch_size, lr, weight_decay, warmup_ratio, loss_fn, seed, runs, log,
                top_layers):
    """Cache the frozen layers' output once, fine-tune the last layer and head (fast.py)."""
    from spamq.training import fast

    t0 = time.monotonic()
    caches = {name: fast.cache_hidden(model, seqs, top_layers=top_layers) if seqs else []
              for name, seqs in (("train", train_seqs), ("val", val_seqs), ("test", test_seqs),
                                 ("modern", modern_seqs))}
    log(f"cached the frozen layers for {sum(len(c) for c in caches.values())} texts in "
        f"{time.monotonic() - t0:.1f} s")

    def validate(logits: torch.Tensor) -> dict:
        probs, loss = _scores_and_loss(logits, val_y)
        m = report.classification_metrics(val_y, probs, 0.5)
        return {"val_spam_f1": m["spam_f1"], "val_loss": loss,
                "key": (round(m["spam_f1"], 6), -loss)}

    init = _copy_state(model)
    run_records: list[dict] = []
    best: tuple[dict, dict, int] | None = None
    for run in range(runs):
        model.load_state_dict(init)
        state, history = fast.fine_tune_top(
            model, train_cache=caches["train"], train_y=train_y, val_cache=caches["val"],
            val_y=val_y, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
            warmup_ratio=warmup_ratio, loss_fn=loss_fn, seed=seed + run, validate=validate,
            top_layers=top_layers,
            log=lambda m, r=run: log(f"run {r + 1}/{runs} {m}"))
        top = max(history, key=lambda h: h["key"])
        run_records.append({"order_seed": seed + run, "best_epoch": top["epoch"],
                            "history": [{k: v for k, v in h.items() if k != "key"}
                                        for h in history]})
        if best is None or top["key"] > best[0]["key"]:
            best = (top, state, run)
    assert best is not None  # runs >= 1
    top, state, run = best
    model.load_state_dict(state)
    chosen = {"name": f"run {run + 1} (epoch {top['epoch']})",
              "validation": {k: v for k, v in top.items() if k not in ("key", "epoch")}}

    def logits_of(name: str) -> np.ndarray:
        cache = caches[name]
        return (fast.cached_logits(model, cache, top_layers=top_layers).numpy() if cache
                else np.zeros((0, 2)))
    return chosen, [chosen], run_records, logits_of


def per_source_metrics(model, tok, pad_id, test_scores, test_y, modern_metrics,
                       feedback: fb_mod.FeedbackSplit | None, *, temperature: float,
                       threshold: float, max_length: int) -> dict[str, Any]:
    """Spam F1, spam recall and ham FPR with bootstrap intervals per source: the UCI test
    split, the hand-written modern set and the held-out (newest) feedback."""
    out: dict[str, Any] = {"uci_test": evaluation.set_metrics(test_scores, test_y,
                                                              ["uci"] * len(test_y), threshold)}
    if modern_metrics is not None:
        out["modern"] = modern_metrics
    if feedback is not None and feedback.holdout:
        seqs = _encode(tok, [r.text for r in feedback.holdout], max_length)
        probs = calibration.spam_probability(predict_scores(model, seqs, pad_id).numpy(),
                                             temperature)
        out["feedback"] = evaluation.set_metrics(probs, [r.label for r in feedback.holdout],
                                                 ["feedback"] * len(feedback.holdout), threshold)
    return out


def train(
    *,
    data_path: Path | str | None = None,
    out_dir: Path | str | None = None,
    from_scratch: bool = False,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 13,
    limit: int | None = None,
    max_train_length: int = 128,
    eval_max_length: int | None = None,
    augment_factor: int = 4,
    class_weights: bool = False,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.06,
    validation_size: float = 0.15,
    test_size: float = 0.15,
    threads: int | None = 2,
    runs: int = 1,
    supplement_per_category: int = 100,
    supplement_split: str = "template",
    written: bool = True,
    full_finetune: bool = False,
    top_layers: int = 4,
    modern_eval: Path | str | None = evaluation.MODERN_EVAL,
    feedback: fb_mod.FeedbackSplit | None = None,
    feedback_source: fb_mod.FeedbackSource | None = None,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Train and write a model directory; return the test metrics (as in metrics.json).

    The returned dict also holds ``out_dir`` and ``version``. ``feedback`` (from
    :func:`spamq.training.feedback.load_split`): its older side trains, its newest side is
    evaluated as the source ``feedback``; nothing else is read from any key's feedback.
    """
    t_start = time.monotonic()
    settings = Settings()
    data_path = Path(data_path or settings.data_path)
    out_dir = Path(out_dir or settings.model_dir)
    eval_max_length = eval_max_length or settings.max_length
    defaults = (SCRATCH_DEFAULTS if from_scratch
                else PRETRAINED_DEFAULTS if full_finetune else FAST_DEFAULTS)
    epochs = epochs if epochs is not None else int(defaults["epochs"])
    batch_size = batch_size or int(defaults["batch_size"])
    lr = lr if lr is not None else float(defaults["lr"])
    if threads:
        torch.set_num_threads(threads)
    _seed_everything(seed)

    # --- data -------------------------------------------------------------------------
    data_sha = sha256_file(data_path)
    splits = split(read_tsv(data_path), seed=seed, limit=limit,
                   validation_size=validation_size, test_size=test_size)
    # texts kept for independent evaluation (exclude.py) are never trained or validated on
    excluded = exclude_mod.load_excluded(settings.exclude_sha256_path)
    splits.train, n_excluded = exclude_mod.drop_excluded(splits.train, excluded)
    held_out = {normalize(e.text) for e in splits.validation + splits.test}
    extra = aug_mod.augment_spam(splits.train, factor=augment_factor, seed=seed, exclude=held_out)
    # The modern supplement (spamq/training/supplement.py): its own train/validation split; the
    # UCI splits above are unchanged by it, so the UCI test split stays comparable.
    modern_rows = (evaluation.read_labelled(modern_eval) if modern_eval else ([], [], []))
    supp_rows = supp.generate(per_category=supplement_per_category, seed=seed)
    supp.check_disjoint(supp_rows, modern_rows[0])
    supp_train, supp_val = supp.split_rows(supp_rows, seed=seed, by=supplement_split)
    # The hand-written modern rows (data/modern/train.tsv, validation.tsv): never an eval text.
    w_train, w_val = ((evaluation.read_labelled(evaluation.WRITTEN_TRAIN),
                       evaluation.read_labelled(evaluation.WRITTEN_VALIDATION)) if written
                      else (([], [], []), ([], [], [])))
    evaluation.check_apart(w_train[0] + w_val[0], modern_rows[0])
    train_rows: list[Example] = (splits.train + extra
                                 + [Example(r.text, r.label) for r in supp_train]
                                 + [Example(t, y) for t, y in zip(*w_train[:2], strict=True)])
    val_rows: list[Example] = (splits.validation + [Example(r.text, r.label) for r in supp_val]
                               + [Example(t, y) for t, y in zip(*w_val[:2], strict=True)])
    fb_record = None
    if feedback is not None:  # the newest feedback evaluates; its near-duplicates train nowhere
        train_rows, fb_info = fb_mod.join_training(
            train_rows, feedback, [e.text for e in val_rows + splits.test] + modern_rows[0],
            Example)
        fb_record = {**feedback.record(feedback_source), **fb_info}
    train_rows, n_dropped = exclude_mod.drop_excluded(train_rows, excluded)
    val_keep = [not exclude_mod.is_excluded(e.text, excluded) for e in val_rows]
    val_rows = [e for e, keep in zip(val_rows, val_keep, strict=True) if keep]
    sizes: dict[str, dict[str, Any]] = dict(splits.sizes())
    sizes["excluded"] = {"list": str(settings.exclude_sha256_path), "hashes": len(excluded),
                         "train": n_excluded + n_dropped,
                         "validation": len(val_keep) - len(val_rows)}
    if fb_record is not None:
        sizes["feedback"] = fb_record
    sizes["supplement"] = {"train": len(supp_train), "validation": len(supp_val),
                           "per_category": supplement_per_category,
                           "split_by": supplement_split}
    sizes["written"] = {"train": len(w_train[0]), "validation": len(w_val[0])}
    n_spam = sum(e.label for e in train_rows)
    sizes["train_augmented"] = {"total": len(train_rows), "ham": len(train_rows) - n_spam,
                                "spam": n_spam, "augmented_spam": len(extra)}
    log(f"data: {data_path} sha256 {data_sha[:12]}; split {json.dumps(sizes)}")

    # --- model and tokenizer ----------------------------------------------------------
    tok = convert.load_tokenizer()
    if from_scratch:
        from transformers import DistilBertForSequenceClassification

        model = DistilBertForSequenceClassification(convert.tiny_config(len(tok)))
        base = "from-scratch"
    else:
        model = convert.load_pretrained_distilbert()
        base = convert.BASE_NAME
    pad_id = tok.pad_token_id

    train_seqs = _encode(tok, [e.text for e in train_rows], max_train_length)
    train_y = [e.label for e in train_rows]
    val_seqs = _encode(tok, [e.text for e in val_rows], eval_max_length)
    val_y = [e.label for e in val_rows]
    test_seqs = _encode(tok, [e.text for e in splits.test], eval_max_length)
    test_y = [e.label for e in splits.test]
    modern_seqs = _encode(tok, modern_rows[0], eval_max_length) if modern_rows[0] else []

    weight = None
    if class_weights:
        counts = np.bincount(train_y, minlength=2).astype(float)
        weight = torch.tensor(counts.sum() / (2.0 * np.maximum(counts, 1.0)), dtype=torch.float)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)

    t_train = time.monotonic()
    fast_path = not (from_scratch or full_finetune)
    if fast_path:
        chosen, candidates, run_records, logits_of = _train_fast(
            model, train_seqs=train_seqs, train_y=train_y, val_seqs=val_seqs, val_y=val_y,
            test_seqs=test_seqs, modern_seqs=modern_seqs, epochs=epochs, batch_size=batch_size,
            lr=lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio, loss_fn=loss_fn,
            seed=seed, runs=runs, log=log, top_layers=top_layers)
    else:
        # `runs` full fine-tunes from one initialisation, then pick on validation. Every run
        # starts from the same weights and differs only in data order and dropout, so their
        # weights can be averaged (a "model soup", one model to serve).
        init_state = _copy_state(model)
        fit = dict(train_seqs=train_seqs, train_y=train_y, val_seqs=val_seqs, val_y=val_y,
                   pad_id=pad_id, epochs=epochs, batch_size=batch_size, lr=lr,
                   weight_decay=weight_decay, warmup_ratio=warmup_ratio, loss_fn=loss_fn,
                   progress=progress, log=log)
        run_records, states = [], []
        for run in range(runs):
            model.load_state_dict(init_state)
            state, record = _fine_tune(model, order_seed=seed + run,
                                       label=f"run {run + 1}/{runs}", **fit)
            states.append(state)
            run_records.append(record)
        candidates = _candidates(model, states, run_records, val_seqs, val_y, pad_id)
        chosen = max(candidates, key=lambda c: _val_key(c["validation"]))  # first of equals
        model.load_state_dict(chosen.pop("state"))
        for c in candidates:
            c.pop("state", None)

        def logits_of(name: str) -> np.ndarray:
            seqs = {"val": val_seqs, "test": test_seqs, "modern": modern_seqs}[name]
            return predict_scores(model, seqs, pad_id).numpy() if seqs else np.zeros((0, 2))
    training_time = time.monotonic() - t_train
    log(f"selected on validation: {chosen['name']} " + json.dumps(chosen["validation"]))

    # --- calibration and threshold on validation, then test and modern (touched only here) ---
    val_logits = logits_of("val")
    temperature = calibration.fit_temperature(val_logits, val_y)
    val_raw = calibration.spam_probability(val_logits, 1.0)
    val_probs = calibration.spam_probability(val_logits, temperature)
    threshold = calibration.choose_threshold(val_probs, val_y)
    test_logits = logits_of("test")
    test_raw = calibration.spam_probability(test_logits, 1.0)
    test_scores = calibration.spam_probability(test_logits, temperature)
    test_loss = calibration.nll(test_scores, test_y)
    metrics = report.classification_metrics(test_y, test_scores, threshold)
    metrics["test_loss"] = test_loss
    rel = {"validation": {"uncalibrated": calibration.reliability(val_raw, val_y),
                          "temperature": calibration.reliability(val_probs, val_y)},
           "test": {"uncalibrated": calibration.reliability(test_raw, test_y),
                    "temperature": calibration.reliability(test_scores, test_y)}}
    calib: dict[str, Any] = {
             "method": ("temperature scaling, fit on validation (UCI + supplement + "
                        "hand-written) by NLL"),
             "temperature": temperature,
             "validation_ece": {k: v["ece"] for k, v in rel["validation"].items()},
             "test_ece": {k: v["ece"] for k, v in rel["test"].items()},
             "validation_nll": {"uncalibrated": calibration.nll(val_raw, val_y),
                                "temperature": calibration.nll(val_probs, val_y)},
             "reliability": rel}
    log(f"calibration: T {temperature:.3f}; ECE validation "
        f"{calib['validation_ece']['uncalibrated']:.4f} -> "
        f"{calib['validation_ece']['temperature']:.4f}, test "
        f"{calib['test_ece']['uncalibrated']:.4f} -> {calib['test_ece']['temperature']:.4f}; "
        f"threshold {threshold:.4f}")
    modern_metrics = None
    if modern_rows[0]:
        modern_probs = calibration.spam_probability(logits_of("modern"), temperature)
        modern_metrics = evaluation.set_metrics(modern_probs, modern_rows[1], modern_rows[2],
                                                threshold)
    sources = per_source_metrics(model, tok, pad_id, test_scores, test_y, modern_metrics,
                                 feedback, temperature=temperature, threshold=threshold,
                                 max_length=eval_max_length)
    # Validation per category (UCI ham/spam and each supplement category): what choices
    # between configurations are made on (the modern evaluation set is not).
    val_cats = ([("uci_spam" if e.label else "uci_ham") for e in splits.validation]
                + [r.category for r in supp_val] + [f"{c} (written)" for c in w_val[2]])
    val_cats = [c for c, keep in zip(val_cats, val_keep, strict=True) if keep]
    validation_metrics = evaluation.set_metrics(val_probs, val_y, val_cats, threshold)
    log("validation per category: " + ", ".join(
        f"{c} {'FPR' if v['metric'] == 'fpr' else 'recall'} {v['value']:.3f}"
        for c, v in validation_metrics["categories"].items()))
    val_pred = val_probs >= threshold
    vy = np.asarray(val_y)
    threshold_info = {**calibration.THRESHOLD_POLICY, "threshold": threshold,
                      "validation_ham_fpr": float(np.mean(val_pred[vy == 0])),
                      "validation_spam_recall": float(np.mean(val_pred[vy == 1]))}
    if threshold_info["validation_ham_fpr"] > calibration.TARGET_FPR:
        log(f"WARNING: validation ham FPR {threshold_info['validation_ham_fpr']:.4f} at the "
            f"0.5 threshold misses the {calibration.TARGET_FPR} target")
    norm = lambda rows: [normalize(e.text) for e in rows]  # noqa: E731
    baseline = report.tfidf_baseline(
        norm(splits.train), [e.label for e in splits.train], norm(splits.validation),
        [e.label for e in splits.validation],
        norm(splits.test), test_y,
    )
    baseline_scores = baseline.pop("_scores")

    training_settings = {
        "from_scratch": from_scratch, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "seed": seed, "limit": limit, "max_train_length": max_train_length,
        "eval_max_length": eval_max_length, "augment_factor": augment_factor,
        "augmenters": list(aug_mod.AUGMENTERS), "class_weights": class_weights,
        "supplement_per_category": supplement_per_category,
        "supplement_split": supplement_split,
        "written": ({"train": sha256_file(evaluation.WRITTEN_TRAIN),
                     "validation": sha256_file(evaluation.WRITTEN_VALIDATION)} if written
                    else None),
        "method": (f"frozen embeddings + lower layers (cached), top {top_layers} layer(s) and "
                   "head fine-tuned" if fast_path else "full fine-tune"),
        "top_layers": top_layers if fast_path else None,
        "weight_decay": weight_decay, "warmup_ratio": warmup_ratio,
        "optimizer": "AdamW", "schedule": "linear warmup + linear decay",
        "grad_clip": 1.0, "threads": threads, "runs": runs, "selected": chosen["name"],
        "epoch_selection": "per run, max validation spam F1 (tie: average precision, then "
                           "loss)",
        "model_selection": "max validation spam F1 (tie: average precision, then loss) over "
                           "each run's best epoch, the uniform soup and the greedy soup",
        "threshold_selection": calibration.THRESHOLD_POLICY["rule"],
        "normalization": "spamq.text.normalize", "model_config": {
            k: getattr(model.config, k)
            for k in ("dim", "n_layers", "n_heads", "hidden_dim", "vocab_size",
                      "max_position_embeddings")},
    }
    split_info = {"seed": seed, "sizes": sizes, **splits.stats}
    metrics.update({
        "split": "test",
        "base": base,
        "baseline": baseline,
        "training_time_s": round(training_time, 2),
        "selected": chosen["name"],
        "candidates": candidates,
        "runs": run_records,
        "split_sizes": sizes,
        "score": SCORE_DEFINITION,
        "calibration": calib,
        "threshold_policy": threshold_info,
        "validation_sets": validation_metrics,
        "modern": modern_metrics,
        "modern_eval": str(modern_eval) if modern_eval else None,
        "sources": sources,
        "targets": (evaluation.targets_met(modern_metrics, metrics) if modern_metrics else None),
    })

    # --- write the model directory: everything, then the manifest last ----------------
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp_dir.chmod(0o755)
    try:
        model.eval()
        model.save_pretrained(tmp_dir, safe_serialization=True)
        convert.save_tokenizer(tok, tmp_dir)
        report.plot_report(
            tmp_dir / "report.png", test_y, test_scores, threshold, baseline_scores,
            title=f"spamq {base}: test spam F1 {metrics['spam_f1']:.4f} "
                  f"(baseline {baseline['spam_f1']:.4f})",
            reliability=rel["validation"],
        )
        metrics["total_time_s"] = round(time.monotonic() - t_start, 2)
        (tmp_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        (tmp_dir / "report.md").write_text(
            "# Per-source test metrics\n\n" + evaluation.sources_table(sources) + "\n")
        for path in tmp_dir.iterdir():
            path.chmod(0o644)
        version = write_manifest(
            tmp_dir,
            data_sha256=data_sha,
            split=split_info,
            training=training_settings,
            decision_threshold=float(threshold),
            calibration={"method": "temperature", "temperature": temperature},
            threshold_policy=threshold_info,
            supplement={"generator": "spamq.training.supplement", "seed": seed,
                        "per_category": supplement_per_category,
                        "split_by": supplement_split},
            base=base,
            score=SCORE_DEFINITION,
            **({"feedback": fb_record} if fb_record is not None else {}),
        )
        _atomic_replace(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    metrics["out_dir"] = str(out_dir)
    metrics["version"] = version
    return metrics
