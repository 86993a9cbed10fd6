"""spamq.models.loader: the promotion gate scores exactly as a worker serves.

The gate's scorer (spamq.training.evaluation.ModelScorer) and the worker's runner
(worker.model_source.build_runner) load one model directory through the one loader: the same
probabilities for the same texts, bit for bit, at the settings' precision, with texts cut at
``max_length`` tokens, and the spam index read from the model's label map.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from spamq.models import loader
from spamq.models.manifest import write_manifest
from spamq.settings import Settings
from spamq.training import evaluation
from worker.model_source import build_runner

TEXTS = [
    "see you at 5",
    "WINNER!! You have won a free prize, call 0800 123 456 now to claim",
    "F R E E pr\u200bize \uff10\uff18\uff10\uff10",  # normalised before tokenising
    "Your parcel is held: pay the fee at http://parcel-fee.example/x " * 30,  # > 256 tokens
    "ok",
]


@pytest.fixture(scope="module")
def model_dir(random_model_dir) -> Path:
    """The trained tiny model when the integration tests name one, else a random one."""
    given = os.environ.get("SPAMQ_TEST_MODEL_DIR")
    return Path(given) if given else random_model_dir


def settings(tmp_path: Path, precision: str) -> Settings:
    return Settings(device="cpu", precision=precision, max_length=256, model_source="dir",
                    artifact_dir=tmp_path / "artifacts", model_cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("precision", ["fp32", "bf16mm"])
def test_the_gate_scores_exactly_as_the_worker_serves(model_dir, tmp_path, monkeypatch,
                                                      precision):
    s = settings(tmp_path, precision)
    monkeypatch.setattr(loader, "get_settings", lambda: s)
    gate = evaluation.ModelScorer(model_dir)
    runner = build_runner(s, model_dir)
    assert (gate.precision, gate.max_length, gate.version) == (precision, 256, runner.version)
    served = [p.spam_probability for p in runner.predict(TEXTS)]
    assert gate.probabilities(TEXTS) == served  # identical, not approximately equal
    assert [p.truncated for p in runner.predict(TEXTS)] == [False, False, False, True, False]
    assert gate.threshold == runner.threshold and gate.temperature == runner.temperature


def test_a_text_past_max_length_is_scored_on_its_cut(model_dir, tmp_path):
    gate = loader.load_for_scoring(model_dir, settings(tmp_path, "fp32"), max_length=16)
    ids, truncated = gate.encode([TEXTS[3]])
    assert truncated == [True] and len(ids[0]) == 16
    assert ids[0][-1] == gate.tokenizer.sep_token_id
    cut = gate.tokenizer.decode(ids[0][1:-1])
    assert gate.probabilities([TEXTS[3]]) == pytest.approx(gate.probabilities([cut]), abs=1e-6)


def test_the_spam_index_comes_from_the_label_map(model_dir, tmp_path):
    flipped = tmp_path / "flipped"
    shutil.copytree(model_dir, flipped)
    config = json.loads((flipped / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "spam", "1": "ham"}, {"spam": 0, "ham": 1}
    (flipped / "config.json").write_text(json.dumps(config))
    write_manifest(flipped, decision_threshold=0.5, base="flipped-test-model", seed=0)
    s = settings(tmp_path, "fp32")
    plain = loader.load_for_scoring(model_dir, s)
    other = loader.load_for_scoring(flipped, s)
    assert (plain.spam_id, other.spam_id) == (1, 0)
    assert other.temperature == 1.0  # the rewritten manifest has no calibration
    ids, _ = plain.encode(TEXTS)
    logits = torch.cat([plain.logits(plain.pad(ids, [i])) for i in range(len(TEXTS))])
    expected = torch.softmax(logits, dim=-1)[:, 0].tolist()  # the same logits, index 0
    assert other.probabilities(TEXTS) == pytest.approx(expected, abs=1e-6)
    config["id2label"], config["label2id"] = {"0": "a", "1": "b"}, {"a": 0, "b": 1}
    (flipped / "config.json").write_text(json.dumps(config))
    write_manifest(flipped, decision_threshold=0.5, base="no-spam-label", seed=0)
    with pytest.raises(ValueError, match="no 'spam' class"):
        loader.load_for_scoring(flipped, s)
