"""CPU precisions whose arithmetic for one text does not depend on the texts beside it.

A worker batches texts from unrelated requests into one forward pass, so a text's score must
not move with its pass companions (tests/unit/worker/test_batch_invariance.py). Each module
here replaces an ``nn.Linear`` and keeps every row's arithmetic its own:

- ``Bf16Linear``: bf16 weights; the activations are rounded to bf16 per element on the way
  in, the product accumulates in fp32 (AVX512-BF16 / AMX dot products) and comes back fp32.
  LayerNorm, softmax, GELU and the residual stream stay fp32.
- ``Int8RowLinear``: int8 weights with one scale per output channel; each activation row
  (token) is quantised with its own scale, max|x_row| / 127, and the int32 accumulation is
  exact, so no other row enters a row's result.
- ``Int8StaticLinear``: as above with one fixed activation scale per layer, calibrated once
  on training texts (``calibrate``).

Unlike these, ``torch.ao.quantization.quantize_dynamic`` (precision ``int8``) picks one
activation scale for the whole batch tensor, and full bf16 (precision ``bf16``) rounds
every intermediate to bf16, where a padded width changes reduction order and the rounding
amplifies it (|d logit| ~0.03 measured).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

# precisions whose scores do not depend on the pass (the encoder's linears replaced, the
# attention made width-independent, the classification head kept fp32)
ROWWISE_PRECISIONS = ("bf16mm", "int8row", "int8static")
# what ``auto`` may pick on a CPU: the row-wise precisions within bench/precision.py's 0.005
# spam-F1 budget (bf16mm: cost 0.000, 1.64x fp32; int8row: 1.95x but cost 0.006, so offered,
# not picked); the probe at start keeps one only where it measures faster than fp32 here
AUTO_CPU_CANDIDATES: tuple[str, ...] = ("bf16mm",)
# a candidate must take at most this share of fp32's probe time to be picked
PROBE_MARGIN = 0.9


def _bias(linear: nn.Linear) -> torch.Tensor:
    bias = linear.bias
    return (bias.detach() if bias is not None else torch.zeros(linear.out_features)).float()


class Bf16Linear(nn.Module):
    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.register_buffer("weight", linear.weight.detach().to(torch.bfloat16))
        self.register_buffer("bias", _bias(linear))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x.to(torch.bfloat16), self.weight).float() + self.bias


def _quantise_weight(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 weight as (in, out), contiguous (the layout ``torch._int_mm`` runs fastest on), and
    the per-output-channel scales."""
    w = linear.weight.detach().float()
    scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q.t().contiguous(), scale


class Int8RowLinear(nn.Module):
    weight_q: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        q, scale = _quantise_weight(linear)
        self.register_buffer("weight_q", q)
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", _bias(linear))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        scale = rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127.0
        q = torch.round(rows / scale).to(torch.int8)
        out = torch._int_mm(q, self.weight_q).float()
        out = torch.addcmul(self.bias, out.mul_(scale), self.weight_scale)
        return out.reshape(*x.shape[:-1], out.shape[-1])


class Int8StaticLinear(nn.Module):
    weight_q: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor

    def __init__(self, linear: nn.Linear, activation_absmax: float) -> None:
        super().__init__()
        q, scale = _quantise_weight(linear)
        self.register_buffer("weight_q", q)
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", _bias(linear))
        self.input_scale = max(activation_absmax, 1e-12) / 127.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        q = torch.round(rows * (1.0 / self.input_scale)).clamp_(-127, 127).to(torch.int8)
        out = torch._int_mm(q, self.weight_q).float()
        out = torch.addcmul(self.bias, out, self.weight_scale * self.input_scale)
        return out.reshape(*x.shape[:-1], out.shape[-1])


def replace_linears(model: nn.Module, make) -> nn.Module:
    """Every ``nn.Linear`` under ``model`` replaced by ``make(name, linear)``, in place."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                full = f"{name}.{child_name}" if name else child_name
                setattr(module, child_name, make(full, child))
    return model


ROWWISE_ATTENTION = "spamq_rowwise"
_KEY_PAD = 16


def rowwise_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor,
                      value: torch.Tensor, attention_mask: torch.Tensor | None,
                      scaling: float | None = None, dropout: float = 0.0,
                      **kwargs: object) -> tuple[torch.Tensor, None]:
    """Eager attention whose result for a row does not depend on the padded width of its pass.

    PyTorch's CPU SDPA kernel blocks its softmax by the key length, so a text padded to a
    wider pass gets other roundings (|d| ~2e-7 in fp32, which a bf16 or int8 rounding
    downstream can amplify to 0.01-0.25 in a logit). Plain matmul + softmax gives bitwise
    equal rows for every width of 16 or more keys (below 16, the kernels take a short-row
    path), so 16 keys that no query may attend are appended to every pass."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    key = nn.functional.pad(key, (0, 0, 0, _KEY_PAD))
    value = nn.functional.pad(value, (0, 0, 0, _KEY_PAD))
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    low = torch.finfo(scores.dtype).min
    # True for the real keys, False for the appended ones (built from key: no traced constants)
    real = nn.functional.pad(torch.ones_like(key[0, 0, :-_KEY_PAD, 0], dtype=torch.bool),
                             (0, _KEY_PAD), value=False)
    if attention_mask is not None:  # sdpa_mask's form: True where a query may attend a key
        real = real & nn.functional.pad(attention_mask, (0, _KEY_PAD), value=False)
    scores = scores.masked_fill(~real, low)
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def use_rowwise_attention(model: nn.Module) -> nn.Module:
    """Switch a transformers model to ``rowwise_attention`` (registered once)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ROWWISE_ATTENTION, rowwise_attention)
    AttentionMaskInterface.register(ROWWISE_ATTENTION, sdpa_mask)
    config: Any = model.config
    config._attn_implementation = ROWWISE_ATTENTION
    return model


def prepare_rowwise(model: nn.Module, precision: str,
                    activation_absmax: Mapping[str, float] | None = None) -> nn.Module:
    """``model`` (a transformers sequence classifier, fp32, CPU) at a row-wise precision: the
    encoder's linears replaced, its attention width-independent; the head stays fp32 (it runs
    once per text, and its M=1 vs M=32 products differ only at fp32 rounding)."""
    use_rowwise_attention(model)
    encoder = getattr(model, "base_model", model)
    if precision == "bf16mm":
        replace_linears(encoder, lambda name, linear: Bf16Linear(linear))
    elif precision == "int8row":
        replace_linears(encoder, lambda name, linear: Int8RowLinear(linear))
    elif precision == "int8static":
        if activation_absmax is None:
            raise ValueError("int8static needs calibrated activation ranges")
        scales = activation_absmax
        replace_linears(encoder, lambda name, linear: Int8StaticLinear(linear, scales[name]))
    else:
        raise ValueError(f"not a row-wise precision: {precision}")
    return model


def calibrate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
              ) -> dict[str, float]:
    """Largest |input| of each encoder linear over ``batches`` of (input_ids, attention_mask),
    real tokens only: the fixed activation ranges of ``int8static``."""
    encoder = getattr(model, "base_model", model)
    found: dict[str, float] = {}
    current: dict[str, torch.Tensor] = {}

    def record(name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: object) -> None:
            x = inputs[0][current["mask"].bool()]  # padding rows carry no text
            found[name] = max(found.get(name, 0.0), float(x.abs().max()))
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in encoder.named_modules()
               if isinstance(m, nn.Linear)]
    try:
        with torch.inference_mode():
            for ids, mask in batches:
                current["mask"] = mask
                model(input_ids=ids, attention_mask=mask)
    finally:
        for h in handles:
            h.remove()
    return found


def cpu_supports_bf16() -> bool:
    """Whether this CPU has bf16 dot products (AVX512-BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, c, lambda: False)()) for c in checks)


def auto_cpu_candidates(bf16_supported: bool) -> tuple[str, ...]:
    return tuple(p for p in AUTO_CPU_CANDIDATES if p != "bf16mm" or bf16_supported)


def choose_cpu_precision(seconds: Mapping[str, float]) -> str:
    """The probe's pick: the fastest candidate that takes at most PROBE_MARGIN of fp32's time,
    else fp32. ``seconds`` maps precision -> probe pass time, fp32 included."""
    base = seconds["fp32"]
    faster = {p: s for p, s in seconds.items() if p != "fp32" and s <= PROBE_MARGIN * base}
    return min(faster, key=lambda p: faster[p]) if faster else "fp32"


def probe_cpu_precisions(model: nn.Module, candidates: Iterable[str], *, rows: int = 16,
                         width: int = 32, token_id: int = 100,
                         rounds: int = 5) -> dict[str, float]:
    """Seconds of one SMS-sized pass (``rows`` x ``width`` tokens) of the fp32 model and of a
    copy at each candidate precision, on this CPU and thread count: the best of ``rounds``
    rounds, each pass once per round in turn, so that other load on the machine falls on all
    of them alike."""
    ids = torch.full((rows, width), token_id, dtype=torch.long)
    mask = torch.ones_like(ids)
    models = {"fp32": model}
    for precision in candidates:
        try:
            models[precision] = prepare_rowwise(copy.deepcopy(model), precision)
            with torch.inference_mode():  # first-call costs, and a kernel this CPU may lack
                models[precision](input_ids=ids, attention_mask=mask)
        except (RuntimeError, NotImplementedError) as exc:
            logger.info("precision probe: %s unavailable (%s)", precision, exc)
            models.pop(precision, None)
    seconds = dict.fromkeys(models, float("inf"))
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask)
        for _ in range(rounds):
            for precision, candidate in models.items():
                started = time.perf_counter()
                candidate(input_ids=ids, attention_mask=mask)
                seconds[precision] = min(seconds[precision], time.perf_counter() - started)
    return seconds
