"""The two ways a model is fitted, each returning a :class:`Fit`.

- :func:`fit_fast` (the default): the frozen lower layers' output is cached once
  (:mod:`spamq.training.fast`), the top layers and the head are trained on it.
- :func:`fit_full` (``--full-finetune``, ``--from-scratch``): every layer, ``runs`` fine-tunes
  from one start, then each run's best epoch and the weight soups compete on validation.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from spamq.training import calibration, fast, report
from spamq.training.batches import bucketed_batches, collate, predict_scores, scores_and_loss
from spamq.training.config import TrainConfig

_VALIDATION_FIELDS = ("val_spam_f1", "val_average_precision", "val_loss", "val_threshold")
EPOCH_SELECTION = ("max validation spam F1 at the served threshold (tie: average precision, "
                   "then loss)")


@dataclass
class Encoded:
    """Token ids and labels of the sets one training touches."""
    train: list[list[int]]
    train_y: list[int]
    train_weights: list[float] | None  # None: every row weighs 1
    val: list[list[int]]
    val_y: list[int]
    test: list[list[int]]
    test_y: list[int]
    modern: list[list[int]]
    pad_id: int


@dataclass
class Fit:
    chosen: dict[str, Any]  # name and validation record of the kept weights
    candidates: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    logits_of: Callable[[str], np.ndarray]  # "val" | "test" | "modern" -> (n, 2) logits
    training_time_s: float


def copy_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def validate(model, val_seqs, val_y, pad_id) -> dict[str, float]:
    """Spam F1 at the served threshold, average precision and loss on the validation split."""
    scores, loss = scores_and_loss(predict_scores(model, val_seqs, pad_id), val_y)
    t = calibration.choose_threshold(val_y, scores, **calibration.SERVED)
    m = report.classification_metrics(val_y, scores, t)
    return {"val_spam_f1": m["spam_f1"], "val_average_precision": m["average_precision"],
            "val_loss": loss, "val_threshold": t}


def val_key(v: dict[str, float]) -> tuple[float, float, float]:
    return (v["val_spam_f1"], v["val_average_precision"] or 0.0, -v["val_loss"])


def _optimizer(named_params, cfg: TrainConfig, steps_per_epoch: int):
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    named = list(named_params)
    optimizer = torch.optim.AdamW([
        {"params": [p for n, p in named if not n.endswith(no_decay)],
         "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0},
    ], lr=float(cfg.lr or 0.0))
    total = max(1, steps_per_epoch * int(cfg.epochs or 1))
    warmup = int(cfg.warmup_ratio * total)

    def lr_lambda(step: int) -> float:  # linear warmup, then linear decay to 0
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


def _one_epoch(model, enc: Encoded, batches, optimizer, scheduler, loss_fn, bar) -> float:
    model.train()
    running, seen = 0.0, 0
    for batch in bar(batches):
        inputs = collate([enc.train[i] for i in batch], enc.pad_id)
        w = (None if enc.train_weights is None
             else torch.tensor([enc.train_weights[i] for i in batch]))
        loss = loss_fn(model(**inputs).logits, torch.tensor([enc.train_y[i] for i in batch]), w)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        running += float(loss.item()) * len(batch)
        seen += len(batch)
    return running / max(seen, 1)


def fine_tune(model, enc: Encoded, cfg: TrainConfig, loss_fn, *, order_seed: int, label: str,
              log) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One full fine-tune; returns the weights of its best epoch on validation and its record."""
    torch.manual_seed(order_seed)  # dropout
    rng = random.Random(order_seed)  # batch order
    batch_size, epochs = int(cfg.batch_size or 1), int(cfg.epochs or 1)
    optimizer, scheduler = _optimizer(model.named_parameters(), cfg,
                                      math.ceil(len(enc.train) / batch_size))
    lengths = [len(s) for s in enc.train]
    history: list[dict] = []
    best: dict[str, Any] | None = None
    best_state = None
    t0 = time.monotonic()
    for epoch in range(1, epochs + 1):
        def bar(it, epoch=epoch):
            return tqdm(it, desc=f"{label} epoch {epoch}/{epochs}", unit="step", leave=False,
                        disable=not cfg.progress)
        train_loss = _one_epoch(model, enc, bucketed_batches(lengths, batch_size, rng),
                                optimizer, scheduler, loss_fn, bar)
        record = {"epoch": epoch, "train_loss": train_loss,
                  **validate(model, enc.val, enc.val_y, enc.pad_id),
                  "elapsed_s": round(time.monotonic() - t0, 2)}
        history.append(record)
        log(f"{label} epoch {epoch}: " + json.dumps(
            {k: (round(v, 5) if isinstance(v, float) else v) for k, v in record.items()}))
        if best is None or val_key(record) > val_key(best):
            best, best_state = record, copy_state(model)
    assert best is not None and best_state is not None  # epochs >= 1
    return best_state, {"order_seed": order_seed, "best_epoch": best["epoch"], "history": history}


def average(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Uniform weight average (integer buffers taken from the first)."""
    return {k: (torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v)
            for k, v in states[0].items()}


def candidates(model, states, run_records, enc: Encoded) -> list[dict]:
    """Each run's best epoch, then (with several runs) the uniform and the greedy soup.

    Greedy soup (Wortsman et al., 2022): runs in order of validation score; a run joins the
    soup when the averaged weights score no worse on validation.
    """
    def scored(name: str, state: dict) -> dict:
        model.load_state_dict(state)
        return {"name": name, "validation": validate(model, enc.val, enc.val_y, enc.pad_id),
                "state": state}

    # A run's best epoch was scored on validation during its fine-tune: reuse that record.
    singles = [{"name": f"run {i + 1} (epoch {r['best_epoch']})", "state": st,
                "validation": {k: r["history"][r["best_epoch"] - 1][k] for k in _VALIDATION_FIELDS}}
               for i, (st, r) in enumerate(zip(states, run_records, strict=True))]
    if len(singles) == 1:
        return singles
    uniform = scored(f"uniform soup of runs 1-{len(states)}", average(states))
    order = sorted(range(len(singles)), key=lambda i: val_key(singles[i]["validation"]),
                   reverse=True)
    members, soup = [order[0]], singles[order[0]]
    for i in order[1:]:
        trial = scored("", average([states[j] for j in members + [i]]))
        if val_key(trial["validation"]) >= val_key(soup["validation"]):
            members, soup = members + [i], trial
    found = singles + [uniform]
    if len(members) > 1:
        soup["name"] = "greedy soup of runs " + ",".join(str(j + 1) for j in sorted(members))
        found.append(soup)
    return found


def fit_full(model, enc: Encoded, cfg: TrainConfig, loss_fn, log) -> Fit:
    """``runs`` full fine-tunes from one initialisation, then pick on validation. Every run
    starts from the same weights and differs only in data order and dropout, so their weights
    can be averaged (a "model soup", one model to serve)."""
    t0 = time.monotonic()
    init_state = copy_state(model)
    run_records, states = [], []
    for run in range(cfg.runs):
        model.load_state_dict(init_state)
        state, record = fine_tune(model, enc, cfg, loss_fn, order_seed=cfg.seed + run,
                                  label=f"run {run + 1}/{cfg.runs}", log=log)
        states.append(state)
        run_records.append(record)
    found = candidates(model, states, run_records, enc)
    chosen = max(found, key=lambda c: val_key(c["validation"]))  # first of equals
    model.load_state_dict(chosen.pop("state"))
    for c in found:
        c.pop("state", None)
    seqs = {"val": enc.val, "test": enc.test, "modern": enc.modern}

    def logits_of(name: str) -> np.ndarray:
        s = seqs[name]
        return predict_scores(model, s, enc.pad_id).numpy() if s else np.zeros((0, 2))
    return Fit(chosen, found, run_records, logits_of, time.monotonic() - t0)


def fit_fast(model, enc: Encoded, cfg: TrainConfig, loss_fn, log) -> Fit:
    """Cache the frozen layers' output once, fine-tune the top layers and head (fast.py);
    ``runs`` runs with seeds seed, seed+1, ...; the best epoch of the best run is kept."""
    t0 = time.monotonic()
    top = cfg.top_layers
    caches = {name: fast.cache_hidden(model, seqs, top_layers=top) if seqs else []
              for name, seqs in (("train", enc.train), ("val", enc.val), ("test", enc.test),
                                 ("modern", enc.modern))}
    log(f"cached the frozen layers for {sum(len(c) for c in caches.values())} texts in "
        f"{time.monotonic() - t0:.1f} s")

    def check(logits: torch.Tensor) -> dict:
        probs, loss = scores_and_loss(logits, enc.val_y)
        t = calibration.choose_threshold(enc.val_y, probs, **calibration.SERVED)
        m = report.classification_metrics(enc.val_y, probs, t)
        return {"val_spam_f1": m["spam_f1"], "val_loss": loss, "val_threshold": t,
                "key": (round(m["spam_f1"], 6), -loss)}

    init = copy_state(model)
    run_records: list[dict] = []
    best: tuple[dict, dict, int] | None = None
    for run in range(cfg.runs):
        model.load_state_dict(init)
        state, history = fast.fine_tune_top(
            model, train_cache=caches["train"], train_y=enc.train_y, val_cache=caches["val"],
            val_y=enc.val_y, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
            weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio, loss_fn=loss_fn,
            seed=cfg.seed + run, validate=check, top_layers=top, train_weights=enc.train_weights,
            log=lambda m, r=run: log(f"run {r + 1}/{cfg.runs} {m}"))
        pick = max(history, key=lambda h: h["key"])
        run_records.append({"order_seed": cfg.seed + run, "best_epoch": pick["epoch"],
                            "history": [{k: v for k, v in h.items() if k != "key"}
                                        for h in history]})
        if best is None or pick["key"] > best[0]["key"]:
            best = (pick, state, run)
    assert best is not None  # runs >= 1
    pick, state, run = best
    model.load_state_dict(state)
    chosen = {"name": f"run {run + 1} (epoch {pick['epoch']})",
              "validation": {k: v for k, v in pick.items() if k not in ("key", "epoch")}}

    def logits_of(name: str) -> np.ndarray:
        cache = caches[name]
        return (fast.cached_logits(model, cache, top_layers=top).numpy() if cache
                else np.zeros((0, 2)))
    return Fit(chosen, [chosen], run_records, logits_of, time.monotonic() - t0)
