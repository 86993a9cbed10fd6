"""The one model loader: a verified model directory loaded and scored the one way.

:class:`Classifier` is what a worker serves (worker/runner.py adds the CUDA lanes and the
warm-up) and what the promotion gate and training's evaluation score with
(:func:`load_for_scoring`), so the gate's probabilities are production's: the same
normalisation, tokenisation and cut at ``max_length`` tokens (keeping [SEP]), the same
precision (spamq/models/precision.py), the same TorchScript forward pass, calibration
temperature and spam index (from the model config's label map).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from spamq.models.manifest import read_manifest, verify_model_dir
from spamq.models.precision import (
    ROWWISE_PRECISIONS,
    auto_cpu_candidates,
    choose_cpu_precision,
    cpu_supports_bf16,
    prepare_rowwise,
    probe_cpu_precisions,
)
from spamq.settings import Settings, get_settings
from spamq.text import normalize_many

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    label: str
    spam_probability: float
    truncated: bool
    model_version: str

    def as_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "spam_probability": self.spam_probability,
            "truncated": self.truncated,
            "model_version": self.model_version,
        }


@dataclass(frozen=True)
class PaddedBatch:
    """Rows of the request (``index``) padded to the longest of them."""

    index: list[int]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @property
    def fill(self) -> float:
        """Real tokens / padded tokens."""
        return float(self.attention_mask.sum()) / self.attention_mask.numel()


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def spam_index(config: Any) -> int:
    """The spam class's index in the model's logits, from its config's label map."""
    label2id = {str(k).lower(): int(v) for k, v in (config.label2id or {}).items()}
    if "spam" not in label2id:
        raise ValueError(f"the model's label map names no 'spam' class: {sorted(label2id)}")
    return label2id["spam"]


class _Logits(torch.nn.Module):
    """The classifier as ``(input_ids, attention_mask) -> logits``: the form that is traced."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


class Classifier:
    """Load once, then ``predict(texts)``: normalise, tokenise, sort by length, batch."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "auto",
        max_length: int = 256,
        batch_size: int = 32,
        max_batch_tokens: int = 8192,
        precision: str = "fp32",
        torchscript: bool = True,
        activation_absmax: dict[str, float] | None = None,
    ) -> None:
        started = time.perf_counter()
        self.model_dir = Path(model_dir)
        self.version = verify_model_dir(self.model_dir)
        self.manifest = read_manifest(self.model_dir)
        self.threshold = float(self.manifest.get("decision_threshold", 0.5))
        # temperature scaling fit on validation at training time (1.0: an uncalibrated model)
        self.temperature = float(self.manifest.get("calibration", {}).get("temperature", 1.0))
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.device = pick_device(device)
        # CUDA: widths rounded up to a multiple of 8 (tensor-core tiles; 8x fewer distinct
        # shapes, each of which pays kernel selection once). CPU: padding is compute, none.
        self.pad_multiple = 8 if self.device.type == "cuda" else 1
        self.activation_absmax = activation_absmax  # int8static's calibrated ranges
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            self.model_dir, local_files_only=True
        )
        self.spam_id = spam_index(model.config)
        self.precision = self._resolve_precision(precision, model.eval())
        self.model = self._prepare(model.eval())
        self._forward = self._compile() if torchscript else _Logits(self.model)
        self.load_seconds = time.perf_counter() - started
        logger.info(
            "model %s loaded from %s on %s (%s) in %.2fs",
            self.version, self.model_dir, self.device, self.precision, self.load_seconds,
        )

    @classmethod
    def from_settings(cls, settings: Settings, model_dir: Path) -> Self:
        """``model_dir`` with the settings' device, precision, length and batch limits."""
        return cls(model_dir, device=settings.device, max_length=settings.max_length,
                   batch_size=settings.batch_size, precision=settings.precision,
                   torchscript=settings.torchscript)

    def _resolve_precision(self, precision: str, model: torch.nn.Module) -> str:
        """``auto``: bf16 on CUDA; on a CPU the fastest batch-invariant precision that a short
        probe pass measures faster than fp32 here (spamq/models/precision.py), else fp32."""
        if precision != "auto":
            return precision
        if self.device.type != "cpu":
            return "bf16"
        candidates = auto_cpu_candidates(cpu_supports_bf16())
        if not candidates:
            return "fp32"
        seconds = probe_cpu_precisions(model, candidates)
        chosen = choose_cpu_precision(seconds)
        logger.info("cpu precision probe (s per pass): %s -> %s",
                    {p: round(s, 4) for p, s in seconds.items()}, chosen)
        return chosen

    def _prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        # bf16mm, int8row: row-wise precisions (spamq/models/precision.py): each text's
        # arithmetic its own whatever shares its pass, 1.6-2x fp32's speed on an
        # AVX512-BF16/VNNI CPU
        if self.precision in ROWWISE_PRECISIONS:
            if self.device.type != "cpu":
                raise ValueError(f"{self.precision} runs on the CPU only")
            return prepare_rowwise(model, self.precision, self.activation_absmax)
        # int8: dynamic quantisation scales the activations by the whole batch tensor, so a
        # text's score moves with its pass companions (and their padding). fp16w (fp16
        # weights, fp32 activations and accumulation) and fp32 keep every row's arithmetic
        # its own: scores do not depend on the batch (tests/unit/worker/test_batch_invariance).
        quantised = {"int8": torch.qint8, "fp16w": torch.float16}.get(self.precision)
        if quantised is not None:
            if self.device.type != "cpu":
                raise ValueError(f"{self.precision} dynamic quantisation runs on the CPU only")
            return torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=quantised
            )
        if self.precision == "bf16":
            model = model.to(torch.bfloat16)
        return model.to(self.device)

    def _compile(self) -> torch.nn.Module:
        """The forward pass traced to TorchScript and frozen: the same operations (scores equal
        to the eager model's, tests/unit/worker/test_runner.py), without transformers' Python
        per layer (about 3 ms of a 10 ms single-text pass on one CPU thread), and run with the
        GIL released, so the worker's Celery and Redis threads run beside the pass. Dynamic
        quantisation (int8, fp16w) stays eager."""
        eager = _Logits(self.model)
        if self.precision in ("int8", "fp16w"):
            return eager
        ids = torch.full((2, 16), self.tokenizer.unk_token_id, dtype=torch.long, device=self.device)
        mask = torch.ones_like(ids)
        mask[0, 8:] = 0  # a padded row: the masking path is traced, not assumed away
        with warnings.catch_warnings(), torch.inference_mode():
            # transformers' shape checks become constants; they hold for every (rows, width)
            # the runner makes: one mask, no cache, no causal attention
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(eager, (ids, mask), check_trace=False)
        return torch.jit.freeze(traced.eval())

    def encode(self, texts: list[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids per text, cut at ``max_length`` (keeping [SEP]); whether each was cut."""
        backend = self.tokenizer.backend_tokenizer
        if backend.truncation is None and backend.padding is None:
            # the same ids as the call below, without its Python per row (a BatchEncoding
            # and a conversion per encoding) or the offsets nobody reads
            encoded = [e.ids for e in backend.encode_batch_fast(normalize_many(texts),
                                                                add_special_tokens=True)]
        else:  # a tokenizer.json that cuts or pads: the call turns both off
            encoded = self.tokenizer(
                normalize_many(texts), add_special_tokens=True, truncation=False, verbose=False
            )["input_ids"]
        sep = self.tokenizer.sep_token_id
        ids, truncated = [], []
        for row in encoded:
            cut = len(row) > self.max_length
            ids.append(row[: self.max_length - 1] + [sep] if cut else row)
            truncated.append(cut)
        return ids, truncated

    def plan(self, lengths: list[int]) -> list[list[int]]:
        """Group row indices into batches: sorted by length, bounded by size and padded tokens."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            widest = max(lengths[i], max((lengths[j] for j in current), default=0))
            if current and (
                len(current) >= self.batch_size
                or widest * (len(current) + 1) > self.max_batch_tokens
            ):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def pad(self, ids: list[list[int]], index: list[int]) -> PaddedBatch:
        """The rows ``index`` of ``ids`` padded into one tensor: built whole in numpy (every
        row's ids in one flat array, placed by a boolean mask), not a tensor per row, and
        handed to torch without a copy (torch's masked assignment cost 4-8 ms per 256 rows on
        busy cores, numpy's 0.3). CUDA: in pinned host memory, copied without blocking (the
        copy queues on the current stream, before the pass that reads it)."""
        rows = [ids[i] for i in index]
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        width = int(lengths.max())
        width += -width % self.pad_multiple
        real = np.arange(width) < lengths[:, None]  # row-major: the rows' ids in order
        padded = np.full((len(rows), width), self.tokenizer.pad_token_id, dtype=np.int64)
        padded[real] = np.fromiter(chain.from_iterable(rows), dtype=np.int64,
                                   count=int(lengths.sum()))
        input_ids = torch.from_numpy(padded)
        mask = torch.from_numpy(real.astype(np.int64))
        if self.device.type == "cuda":
            return PaddedBatch(index, input_ids.pin_memory().to(self.device, non_blocking=True),
                               mask.pin_memory().to(self.device, non_blocking=True))
        return PaddedBatch(index, input_ids.to(self.device), mask.to(self.device))

    @torch.inference_mode()
    def logits(self, batch: PaddedBatch) -> torch.Tensor:
        # the interpreter as traced: no profiling re-specialisation (or GPU fusion compile)
        # per new shape, which would stall the first pass of every new width
        with torch.jit.optimized_execution(False):
            out = self._forward(batch.input_ids, batch.attention_mask)
        return out.float().cpu()

    def spam_probabilities(self, batch: PaddedBatch) -> list[float]:
        # numpy, not torch.softmax: torch hands even an (n, 2) softmax to its intra-op
        # threads, and on busy cores that hand-off cost more than a null model's whole pass
        z = self.logits(batch).numpy().astype(np.float64) / self.temperature
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return (e[:, self.spam_id] / e.sum(axis=1)).tolist()

    def probabilities(self, texts: list[str]) -> list[float]:
        """Calibrated p(spam) per text, in order (the gate's and evaluation's figures)."""
        return self.score(texts)[0]

    def score(self, texts: list[str]) -> tuple[list[float], list[bool]]:
        """(p(spam), whether the text was cut) per text, in order."""
        ids, truncated = self.encode(texts)
        probabilities = [0.0] * len(texts)
        for index in self.plan([len(row) for row in ids]):
            for i, p in zip(index, self.spam_probabilities(self.pad(ids, index)), strict=True):
                probabilities[i] = p
        return probabilities, truncated

    def predict(self, texts: list[str]) -> list[Prediction]:
        probabilities, truncated = self.score(texts)
        return [
            Prediction(
                label="spam" if p >= self.threshold else "ham",
                spam_probability=p,
                truncated=cut,
                model_version=self.version,
            )
            for p, cut in zip(probabilities, truncated, strict=True)
        ]


def load_for_scoring(model_dir: Path | str, settings: Settings | None = None, *,
                     max_length: int | None = None, threads: int | None = 2) -> Classifier:
    """A model directory loaded as a worker loads it, for the promotion gate and training's
    evaluation: the settings' device, precision, TorchScript and ``max_length`` (unless
    given); ``threads``: the torch threads of this process (None: left as they are)."""
    s = settings or get_settings()
    if max_length is not None:
        s = s.model_copy(update={"max_length": max_length})
    if threads:
        torch.set_num_threads(threads)
    return Classifier.from_settings(s, Path(model_dir))
