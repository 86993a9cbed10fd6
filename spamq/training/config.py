"""``TrainConfig``: every choice one training makes, in one value.

``spamq train``'s flags and :func:`spamq.training.train`'s keywords fill it; fields left
``None`` (paths, epochs, batch size, learning rate, evaluation length) are filled by
:meth:`TrainConfig.resolved` from the settings and the mode's defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Defaults that differ between the pretrained encoder and the tiny from-scratch model.
PRETRAINED_DEFAULTS: dict[str, float] = {"epochs": 3, "lr": 8e-5, "batch_size": 16}
SCRATCH_DEFAULTS: dict[str, float] = {"epochs": 3, "lr": 2e-3, "batch_size": 32}
# Top layers + head only, on cached inputs (fast.py): a larger step suits the fresh head.
FAST_DEFAULTS: dict[str, float] = {"epochs": 4, "lr": 2e-4, "batch_size": 32}

SUPPLEMENT_SPLITS = ("template", "row")


@dataclass(frozen=True)
class TrainConfig:
    data_path: Path | None = None  # None: Settings().data_path
    out_dir: Path | None = None  # None: Settings().model_dir
    from_scratch: bool = False  # tiny randomly initialised DistilBERT, for tests
    full_finetune: bool = False  # every layer, instead of the cached-lower-layers fast path
    top_layers: int = 4  # fast path: the top layers fine-tuned
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    class_weights: bool = False
    seed: int = 13
    runs: int = 1
    limit: int | None = None
    validation_size: float = 0.15
    test_size: float = 0.15
    max_train_length: int = 128
    eval_max_length: int | None = None  # None: Settings().max_length
    augment_factor: int = 4
    supplement_per_category: int = 100
    supplement_split: str = "template"
    written: bool = True
    # loss weight of each generated and hand-written modern row (a UCI row weighs 1)
    supplement_weight: float = 1.0
    modern_eval: Path | None = None  # None: the hand-written data/modern/eval.tsv
    threads: int | None = 2
    progress: bool = True

    def __post_init__(self) -> None:
        if self.supplement_split not in SUPPLEMENT_SPLITS:
            raise ValueError(f"supplement_split must be one of {SUPPLEMENT_SPLITS}, "
                             f"not {self.supplement_split!r}")
        if self.runs < 1 or self.top_layers < 1:
            raise ValueError("runs and top_layers must be 1 or more")
        if self.supplement_weight <= 0:
            raise ValueError("supplement_weight must be above 0")

    @property
    def fast_path(self) -> bool:
        return not (self.from_scratch or self.full_finetune)

    @property
    def mode_defaults(self) -> dict[str, float]:
        if self.from_scratch:
            return SCRATCH_DEFAULTS
        return PRETRAINED_DEFAULTS if self.full_finetune else FAST_DEFAULTS

    def resolved(self, settings: Any, modern_eval: Path) -> TrainConfig:
        """A copy with no ``None`` left where a default exists (``settings``: a Settings)."""
        d = self.mode_defaults
        return dataclasses.replace(
            self,
            data_path=Path(self.data_path or settings.data_path),
            out_dir=Path(self.out_dir or settings.model_dir),
            eval_max_length=self.eval_max_length or settings.max_length,
            epochs=self.epochs if self.epochs is not None else int(d["epochs"]),
            batch_size=self.batch_size or int(d["batch_size"]),
            lr=self.lr if self.lr is not None else float(d["lr"]),
            modern_eval=Path(self.modern_eval) if self.modern_eval else modern_eval,
        )
