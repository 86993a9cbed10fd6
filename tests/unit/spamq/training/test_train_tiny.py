"""A tiny from-scratch training run writes a loadable, hash-verified model directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from spamq.settings import Settings

torch = pytest.importorskip("torch")

DATA = Settings().data_path
pytestmark = pytest.mark.skipif(not DATA.is_file(), reason=f"{DATA} not present")

SPAM = "URGENT! You have WON a FREE prize worth £1000. Call 09061701461 to claim now!"
OBFUSCATED = (
    "U R G E N T! You have W.O.N a F R E E prize worth £1000. "
    "Call \uff10\uff19\uff10\uff16\u200b1701461 to cl\u200daim now!"
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    from spamq.training import train

    out = tmp_path_factory.mktemp("tiny") / "model"
    metrics = train(
        data_path=DATA, out_dir=out, from_scratch=True, epochs=1, limit=600,
        seed=7, progress=False, log=lambda *_: None,
    )
    return out, metrics


def test_directory_contents_and_metrics(tiny) -> None:
    out, metrics = tiny
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "metrics.json", "report.png", "manifest.json"} <= names
    assert not list(out.parent.glob(".model.tmp-*"))  # the temporary directory is gone
    on_disk = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "spam_precision", "spam_recall", "spam_f1", "mcc", "roc_auc",
                "confusion_matrix", "threshold", "baseline", "training_time_s"):
        assert key in on_disk
    assert on_disk["spam_f1"] == metrics["spam_f1"]
    cm = on_disk["confusion_matrix"]
    assert cm["tn"] + cm["fp"] + cm["fn"] + cm["tp"] == on_disk["n"] == 90
    assert cm["fn"] + cm["tp"] == on_disk["split_sizes"]["test"]["spam"]
    assert 0.0 < on_disk["threshold"] < 1.0
    assert on_disk["baseline"]["spam_f1"] > 0.5
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_manifest(tiny) -> None:
    from spamq.models.manifest import read_manifest, verify_model_dir

    out, metrics = tiny
    manifest = read_manifest(out)
    assert verify_model_dir(out) == metrics["version"]
    assert {"metrics.json", "report.png", "model.safetensors", "config.json"} <= set(
        manifest["files"])
    assert manifest["decision_threshold"] == metrics["threshold"]
    assert manifest["base"] == "from-scratch"
    assert manifest["split"]["seed"] == 7
    assert manifest["split"]["sizes"]["test"]["total"] == 90
    assert manifest["training"]["epochs"] == 1
    assert manifest["training"]["limit"] == 600
    # the hand-written rows (data/modern/train.tsv, validation.tsv) are in, and named by hash
    assert manifest["split"]["sizes"]["written"] == {"train": 1296, "validation": 216}
    assert [len(h) for h in manifest["training"]["written"].values()] == [64, 64]
    assert len(manifest["data_sha256"]) == 64


def test_loads_with_auto_classes(tiny) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out, _ = tiny
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(out, local_files_only=True)
    assert model.config.model_type == "distilbert"
    assert model.config.id2label == {0: "ham", 1: "spam"}
    assert model.config.max_position_embeddings == 512
    assert tok.model_input_names == ["input_ids", "attention_mask"]
    enc = tok(["hi", "word " * 400], padding=True, truncation=True, max_length=256,
              return_tensors="pt")
    assert set(enc) == {"input_ids", "attention_mask"}
    assert enc["input_ids"].shape == (2, 256)
    unpadded = tok(["hi", "ok then"])["input_ids"]
    assert [len(x) for x in unpadded] == [3, 4]  # no padding/truncation saved in the files
    with torch.no_grad():
        assert model(**enc).logits.shape == (2, 2)


def test_obfuscated_spam_scores_like_the_original(tiny) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from spamq.text import normalize

    out, _ = tiny
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(out, local_files_only=True).eval()
    assert normalize(OBFUSCATED) == normalize(SPAM)
    enc = tok([normalize(SPAM), normalize(OBFUSCATED)], padding=True, return_tensors="pt")
    with torch.no_grad():
        p = torch.softmax(model(**enc).logits, dim=-1)[:, 1]
    assert p[0].item() == p[1].item()
    raw = tok([SPAM, OBFUSCATED], padding=True, return_tensors="pt")
    assert not torch.equal(raw["input_ids"][0], raw["input_ids"][1])


def test_tampering_is_detected(tiny, tmp_path: Path) -> None:
    from spamq.models.manifest import ManifestError, verify_model_dir

    out, _ = tiny
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert verify_model_dir(copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["id2label"] = {"0": "spam", "1": "ham"}
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ManifestError, match="config.json"):
        verify_model_dir(copy)
    shutil.copytree(out, tmp_path / "copy2")
    (tmp_path / "copy2" / "metrics.json").unlink()
    with pytest.raises(ManifestError, match="missing"):
        verify_model_dir(tmp_path / "copy2")


def test_cli_flags_map_to_train_arguments() -> None:
    import argparse

    from spamq import training

    parser = argparse.ArgumentParser()
    training.add_arguments(parser)
    args = parser.parse_args(["--from-scratch", "--epochs", "1", "--limit", "50", "--lr", "1e-3",
                              "--batch-size", "8", "--augment-factor", "0", "--seed", "3"])
    assert (args.from_scratch, args.epochs, args.limit, args.lr, args.batch_size,
            args.augment_factor, args.seed) == (True, 1, 50, 1e-3, 8, 0, 3)
    defaults = parser.parse_args([])
    assert defaults.data is None and defaults.out is None and not defaults.from_scratch
    assert defaults.written and not parser.parse_args(["--no-written"]).written


def test_importing_the_cli_side_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, argparse, spamq.training as t; t.add_arguments(argparse.ArgumentParser());"
            "print(sorted(m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_weight_average_is_the_elementwise_mean_and_keeps_integer_buffers() -> None:
    from spamq.training.finetune import average

    a = {"w": torch.tensor([1.0, 2.0]), "ids": torch.tensor([0, 1])}
    b = {"w": torch.tensor([3.0, 6.0]), "ids": torch.tensor([5, 5])}
    out = average([a, b])
    assert torch.equal(out["w"], torch.tensor([2.0, 4.0]))
    assert torch.equal(out["ids"], a["ids"])


def test_two_runs_compete_with_their_soups_on_validation_only(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from spamq.training import train
    from spamq.training.batches import encode
    from spamq.training.data import read_tsv, split_excluding
    from spamq.training.exclude import load_excluded
    from spamq.training.finetune import val_key, validate

    out = tmp_path / "soup"
    metrics = train(data_path=DATA, out_dir=out, from_scratch=True, epochs=1, limit=600,
                    seed=7, runs=2, supplement_per_category=0, written=False, progress=False,
                    log=lambda *_: None)
    names = [c["name"] for c in metrics["candidates"]]
    assert names[:3] == ["run 1 (epoch 1)", "run 2 (epoch 1)", "uniform soup of runs 1-2"]
    assert [r["order_seed"] for r in metrics["runs"]] == [7, 8]
    best = max(metrics["candidates"], key=lambda c: val_key(c["validation"]))
    assert metrics["selected"] == best["name"]
    # the threshold follows the stated policy on calibrated validation scores, not the pick's
    # own F1-best threshold (which moved from run to run)
    policy = metrics["threshold_policy"]
    assert metrics["threshold"] == policy["threshold"]
    assert 0.5 <= metrics["threshold"] <= policy["max_threshold"]
    assert metrics["threshold"] == 0.5 or policy["validation_ham_fpr"] <= policy["target_fpr"]
    # the saved model is the selected candidate: its validation F1 is reproduced from disk
    # (validation is the UCI split alone here: no supplement, no hand-written rows)
    model = AutoModelForSequenceClassification.from_pretrained(out, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    excluded = load_excluded(Settings().exclude_sha256_path)
    val = split_excluding(read_tsv(DATA), excluded, seed=7, limit=600).validation
    again = validate(model, encode(tok, [e.text for e in val], 256), [e.label for e in val],
                      tok.pad_token_id)
    assert again["val_spam_f1"] == pytest.approx(best["validation"]["val_spam_f1"])
    assert again["val_loss"] == pytest.approx(best["validation"]["val_loss"], abs=1e-4)


def test_metrics_carry_a_bootstrap_interval(tiny) -> None:
    out, metrics = tiny
    low, high = metrics["spam_f1_ci95"]
    assert 0.0 <= low <= metrics["spam_f1"] <= high <= 1.0
    assert high - low > 0.0  # 90 test texts cannot pin F1 down to a point
    low_b, high_b = metrics["baseline"]["spam_f1_ci95"]
    assert low_b <= metrics["baseline"]["spam_f1"] <= high_b


def test_validation_error_analysis_never_reads_the_test_split(tiny, tmp_path) -> None:
    """bench/errors.py, run as its users run it, reads the validation split only."""
    import subprocess
    import sys

    from spamq.training.data import read_tsv, split

    out, _ = tiny
    record = json.loads((out / "manifest.json").read_text())["split"]
    splits = split(read_tsv(DATA), seed=record["seed"], limit=record.get("limit"),
                   validation_size=record["fractions"]["validation"],
                   test_size=record["fractions"]["test"])
    texts, labels = [e.text for e in splits.validation], [e.label for e in splits.validation]
    test_texts = [e.text for e in splits.test]
    report = tmp_path / "errors.json"
    subprocess.run([sys.executable, "-m", "bench.errors", str(out), str(out), "--out", str(report)],
                   check=True, capture_output=True, timeout=600,
                   cwd=Path(__file__).resolve().parents[4])
    result = json.loads(report.read_text())
    assert (result["split"], result["n"], result["spam"]) == ("validation", len(texts),
                                                             sum(labels))
    (single,) = {json.dumps(m, sort_keys=True) for m in result["models"].values()}
    single = json.loads(single)
    # Two copies of one model: the ensemble is that model, and every error is shared.
    assert result["ensemble"]["spam_f1"] == pytest.approx(single["spam_f1"])
    assert len(result["shared_errors"]) == single["fp"] + single["fn"]
    assert {e["text"] for e in result["shared_errors"]} <= set(texts) - set(test_texts)
    assert 0.0 < result["baseline"]["spam_f1"] <= 1.0
