"""Fine-tune the top of a DistilBERT on 2 busy cores: frozen lower layers, cached once.

With the embeddings and the first ``n_layers - 1`` transformer layers frozen, their output for
a text never changes, so it is computed once (no gradients) and cached. Training then runs
only the last layer and the head, and only for the [CLS] position: the classification head
reads [CLS] alone, and in the last layer [CLS]'s output depends on every token's keys and
values but on no other token's output. :func:`top_logits` is the served model's forward,
exactly (``tests/unit/training/test_fast.py`` checks it against the model's own forward).

The served architecture is unchanged: the saved model is the whole
``DistilBertForSequenceClassification``; only its last layer and head moved.
"""

from __future__ import annotations

import math
import random
import time

import torch

from spamq.training.batches import bucketed_batches


@torch.no_grad()
def cache_hidden(model, seqs: list[list[int]], *, top_layers: int = 1, batch_size: int = 64,
                 progress=None) -> list[torch.Tensor]:
    """Per text, the output of the frozen layers (all but the top ``top_layers``): a (len, dim)
    float32 tensor."""
    model.eval()
    bert = model.distilbert
    layers = bert.transformer.layer
    out: list[torch.Tensor | None] = [None] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(seqs[i]) for i in idx)
        ids = torch.zeros((len(idx), width), dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, :len(seqs[i])] = torch.tensor(seqs[i])
            mask[r, :len(seqs[i])] = 1
        h = bert.embeddings(ids)
        ext = _additive_mask(mask, h.dtype)
        for layer in layers[:len(layers) - top_layers]:
            h = _layer_full(layer, h, ext)
        for r, i in enumerate(idx):
            out[i] = h[r, :len(seqs[i])].clone()
        if progress:
            progress(len(idx))
    return out  # type: ignore[return-value]


def _additive_mask(mask: torch.Tensor, dtype) -> torch.Tensor:
    """(batch, 1, 1, width): 0 for real tokens, the dtype's minimum for padding."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


def _layer_full(layer, h: torch.Tensor, ext: torch.Tensor) -> torch.Tensor:
    """One TransformerBlock over every position (dropout as the module's mode says)."""
    att = layer.attention
    n = att.n_heads
    q, k, v = (_heads(lin(h), n) for lin in (att.q_lin, att.k_lin, att.v_lin))
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + ext
    ctx = (att.dropout(scores.softmax(-1)) @ v).transpose(1, 2).reshape(h.shape)
    a = layer.sa_layer_norm(att.out_lin(ctx) + h)
    return layer.output_layer_norm(layer.ffn(a) + a)


def top_logits(model, hidden: torch.Tensor, mask: torch.Tensor,
               top_layers: int = 1) -> torch.Tensor:
    """Logits from the cached (batch, width, dim) input of the top ``top_layers`` layers: all
    positions through all but the last of them, [CLS] only through the last."""
    layers = model.distilbert.transformer.layer
    if top_layers > 1:
        ext = _additive_mask(mask, hidden.dtype)
        for mid in layers[len(layers) - top_layers:-1]:
            hidden = _layer_full(mid, hidden, ext)
    layer = layers[-1]
    att = layer.attention
    n = att.n_heads
    h_cls = hidden[:, :1]
    q = _heads(att.q_lin(h_cls), n)
    k, v = _heads(att.k_lin(hidden), n), _heads(att.v_lin(hidden), n)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + _additive_mask(mask, hidden.dtype)
    weights = att.dropout(scores.softmax(-1))
    ctx = (weights @ v).transpose(1, 2).reshape(h_cls.shape)
    a = layer.sa_layer_norm(att.out_lin(ctx) + h_cls)
    h = layer.output_layer_norm(layer.ffn(a) + a)[:, 0]
    pooled = model.dropout(torch.relu(model.pre_classifier(h)))
    return model.classifier(pooled)


def _pad(cached: list[torch.Tensor], idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(cached[i].shape[0] for i in idx)
    dim = cached[idx[0]].shape[1]
    hidden = torch.zeros((len(idx), width, dim))
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for r, i in enumerate(idx):
        n = cached[i].shape[0]
        hidden[r, :n] = cached[i]
        mask[r, :n] = 1
    return hidden, mask


@torch.no_grad()
def cached_logits(model, cached: list[torch.Tensor], batch_size: int = 128,
                  top_layers: int = 1) -> torch.Tensor:
    model.eval()
    order = sorted(range(len(cached)), key=lambda i: cached[i].shape[0])
    out = torch.empty((len(cached), model.config.num_labels))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        out[idx] = top_logits(model, *_pad(cached, idx), top_layers).float()
    return out


def trainable_parameters(model, top_layers: int = 1) -> list[tuple[str, torch.nn.Parameter]]:
    """The top ``top_layers`` transformer layers and the head; everything else is frozen."""
    n = model.config.n_layers
    keep = tuple(f"distilbert.transformer.layer.{i}." for i in range(n - top_layers, n)) + (
        "pre_classifier.", "classifier.")
    return [(n, p) for n, p in model.named_parameters() if n.startswith(keep)]


def fine_tune_top(model, *, train_cache, train_y, val_cache, val_y, epochs, batch_size, lr,
                  weight_decay, warmup_ratio, loss_fn, seed, validate, log, top_layers=1,
                  train_weights=None):
    """Train the top on cached inputs; keep the best epoch by ``validate(val_logits)``.

    ``validate`` returns a record with a sortable ``key``; returns (best state, history).
    ``loss_fn(logits, labels, weights)``: ``weights`` the rows' ``train_weights`` (or None).
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    params = trainable_parameters(model, top_layers)
    for p in model.parameters():
        p.requires_grad_(False)
    for _, p in params:
        p.requires_grad_(True)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    optimizer = torch.optim.AdamW([
        {"params": [p for n, p in params if not n.endswith(no_decay)],
         "weight_decay": weight_decay},
        {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0},
    ], lr=lr)
    steps = max(1, math.ceil(len(train_cache) / batch_size) * epochs)
    warmup = int(warmup_ratio * steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (warmup + 1) if s < warmup
        else max(0.0, (steps - s) / max(1, steps - warmup)))
    lengths = [c.shape[0] for c in train_cache]
    history, best, best_state = [], None, None
    t0 = time.monotonic()
    for epoch in range(1, epochs + 1):
        model.train()
        running, seen = 0.0, 0
        for batch in bucketed_batches(lengths, batch_size, rng):
            logits = top_logits(model, *_pad(train_cache, batch), top_layers)
            w = None if train_weights is None else torch.tensor([train_weights[i] for i in batch])
            loss = loss_fn(logits, torch.tensor([train_y[i] for i in batch]), w)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
            optimizer.step()
            scheduler.step()
            running += float(loss.item()) * len(batch)
            seen += len(batch)
        record = {"epoch": epoch, "train_loss": running / max(seen, 1),
                  **validate(cached_logits(model, val_cache, top_layers=top_layers)),
                  "elapsed_s": round(time.monotonic() - t0, 2)}
        history.append(record)
        log(f"epoch {epoch}: " + ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in record.items() if k != "key"))
        if best is None or record["key"] > best["key"]:
            best = record
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.requires_grad_(True)
    return best_state, history
