"""A tiny model trained with --feedback: per-source metrics in metrics.json and report.md, the
feedback record in the manifest, and the gate evaluating the candidate's held-out feedback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spamq.feedback.store import text_sha256, write_feedback
from spamq.settings import Settings
from spamq.storage.artifacts import LocalArtifactStore
from spamq.training import evaluation

torch = pytest.importorskip("torch")

DATA = Settings().data_path
pytestmark = pytest.mark.skipif(not DATA.is_file(), reason=f"{DATA} not present")
KEY = "0123456789abcdef"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict, Settings, object]:
    from spamq.training import train
    from spamq.training.feedback import load_split

    root = tmp_path_factory.mktemp("fbtrain")
    settings = Settings(artifact_dir=root / "store", hdfs_url=None)
    store = LocalArtifactStore(settings.artifact_dir)
    texts, labels, _ = evaluation.read_labelled(evaluation.MODERN_DEV)
    for i, (text, label) in enumerate(list(zip(texts, labels, strict=True))[:80]):
        write_feedback(store, KEY, [{"text_sha256": text_sha256(text), "text": text,
                                     "label": "spam" if label else "ham", "source": "text"}],
                       now=T0 + timedelta(hours=i))
    source, split = load_split(f"tenants={KEY}", settings, holdout=0.25)
    out = root / "model"
    metrics = train(data_path=DATA, out_dir=out, from_scratch=True, epochs=1, limit=600, seed=7,
                    supplement_per_category=0, written=False, augment_factor=0, feedback=split,
                    feedback_source=source, progress=False, log=lambda *_: None)
    return out, metrics, settings, split


def test_metrics_json_has_per_source_figures_with_intervals(trained) -> None:
    out, metrics, _, split = trained
    on_disk = json.loads((out / "metrics.json").read_text())
    sources = on_disk["sources"]
    assert set(sources) == {"uci_test", "modern", "feedback"}
    assert sources["uci_test"]["n"] == on_disk["n"] == 90
    assert sources["feedback"]["n"] == len(split.holdout) == 20
    assert sources["feedback"]["spam_recall"] is not None
    for name, m in sources.items():
        for key in ("spam_f1", "spam_recall", "ham_fpr"):
            low, high = m[f"{key}_ci95"]
            assert low <= m[key] <= high, (name, key)
    # the UCI source is the test split the top-level figures describe
    assert sources["uci_test"]["spam_f1"] == pytest.approx(on_disk["spam_f1"])
    table = (out / "report.md").read_text()
    assert "| feedback | 20 |" in table and "| uci_test | 90 |" in table
    assert metrics["sources"]["feedback"]["spam_f1"] == sources["feedback"]["spam_f1"]


def test_manifest_records_the_feedback_and_training_used_only_the_older_side(trained) -> None:
    from spamq.models.manifest import read_manifest

    out, metrics, _, split = trained
    record = read_manifest(out)["feedback"]
    assert record["source"] == {"spec": f"tenants={KEY}", "tenants": [KEY]}
    assert record["cutoff"] == (T0 + timedelta(hours=60)).isoformat()
    assert record["holdout"]["total"] == 20 and record["holdout_fraction"] == 0.25
    sizes = metrics["split_sizes"]
    assert sizes["feedback"]["feedback_trained"] == record["train"]["total"] - record[
        "feedback_dropped_near_evaluation"]
    assert sizes["excluded"]["hashes"] > 0 or not Settings().exclude_sha256_path.is_file()


def test_the_gate_evaluates_the_candidates_held_out_feedback(trained, capsys, tmp_path) -> None:
    from spamq.cli import ops

    out, metrics, settings, split = trained
    small = tmp_path / "uci.tsv"  # a short UCI file: a 30-text test split keeps this quick
    small.write_text("".join(DATA.read_text(encoding="utf-8").splitlines(True)[:201]),
                     encoding="utf-8")
    rows, table = ops._gate(settings, out, out, data=small, files=[], json_out=None)
    fb_rows = {r["metric"]: r for r in rows if r["set"] == "feedback"}
    assert {"spam F1", "spam recall", "ham FPR"} <= set(fb_rows)
    # the same texts as training held out: the same figures
    assert fb_rows["spam F1"]["candidate"] == pytest.approx(metrics["sources"]["feedback"][
        "spam_f1"], abs=0.06)
    assert not any(r["worse"] for r in rows)  # a model is never worse than itself
    assert "| feedback | spam recall |" in table
    assert "feedback held out: 20 texts" in capsys.readouterr().err
