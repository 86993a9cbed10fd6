"""Calibration, the threshold policy, the supplement, the modern set and the gate's comparison."""

import numpy as np
import pytest
import torch

from spamq.text import normalize
from spamq.training import calibration, evaluation, fast, supplement
from spamq.training.data import check_apart


def test_temperature_recovers_the_scale_of_overconfident_logits():
    rng = np.random.default_rng(0)
    d = rng.normal(0, 2, 4000)  # true log-odds
    y = (rng.random(4000) < 1 / (1 + np.exp(-d))).astype(int)
    logits = np.stack([np.zeros_like(d), 3.0 * d], axis=1)  # 3x overconfident
    t = calibration.fit_temperature(logits, y)
    assert t == pytest.approx(3.0, rel=0.1)
    before = calibration.reliability(calibration.spam_probability(logits), y)["ece"]
    after = calibration.reliability(calibration.spam_probability(logits, t), y)["ece"]
    assert after < before / 2 and after < 0.03


def test_reliability_ece_by_hand():
    rel = calibration.reliability([0.05, 0.05, 0.95, 0.95], [0, 1, 1, 1], bins=10)
    # bin 0: predicted 0.05, observed 0.5; bin 9: predicted 0.95, observed 1.0
    assert rel["ece"] == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)
    assert [b["n"] for b in rel["bins"]] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]


def test_the_threshold_maximises_validation_f1_closest_to_half_among_equals():
    y = [0] * 100 + [1] * 10
    # separable: every threshold between 0.1 and 0.9 is perfect; 0.5 is the closest to 0.5
    assert calibration.choose_threshold(y, [0.1] * 100 + [0.9] * 10) == 0.5
    # two spam at 0.3: the threshold drops below them (F1 1.0 instead of 0.889)
    t = calibration.choose_threshold(y, [0.1] * 100 + [0.3] * 2 + [0.9] * 8)
    assert t == pytest.approx(0.2)


def test_the_threshold_keeps_validation_ham_fpr_within_the_target():
    y = [0] * 100 + [1] * 10
    ham = [0.1] * 95 + [0.6, 0.7, 0.75, 0.8, 0.85]
    spam = [0.65] * 5 + [0.99] * 5
    # best F1 alone: 0.625 (4 ham at or above it, no spam below: F1 20/24)
    assert calibration.choose_threshold(y, ham + spam) == pytest.approx(0.625)
    # at most 1% ham FPR: 0.92 (no ham above, F1 10/15) beats 0.825 (1 ham above, F1 10/16)
    assert calibration.choose_threshold(y, ham + spam, target_fpr=0.01) == pytest.approx(0.92)
    # no candidate meets it: the lowest ham FPR reached wins
    assert calibration.choose_threshold([0, 0, 1], [0.9, 0.8, 0.2],
                                        target_fpr=0.0) == pytest.approx(0.85)


def test_the_served_threshold_is_half_every_run():
    y = [0] * 100 + [1] * 10
    ham = [0.1] * 95 + [0.6, 0.7, 0.75, 0.8, 0.85]  # 5% ham at or above 0.5: FPR missed
    assert calibration.choose_threshold(y, ham + [0.99] * 10, **calibration.SERVED) == 0.5
    assert calibration.choose_threshold(y, [0.1] * 100 + [0.3] * 2 + [0.9] * 8,
                                        **calibration.SERVED) == 0.5


def test_the_threshold_stays_within_its_bounds():
    y = [0] * 100 + [1] * 10
    scores = [0.1] * 100 + [0.3] * 2 + [0.9] * 8
    assert calibration.choose_threshold(y, scores, lo=0.4, hi=0.6) == 0.5
    assert calibration.choose_threshold(y, [0.95] * 100 + [0.99] * 10, lo=0.5, hi=0.9) <= 0.9


def test_rate_interval_brackets_the_rate():
    lo, hi = calibration.rate_interval([1] * 10 + [0] * 90)
    assert lo < 0.1 < hi and 0.0 <= lo and hi <= 0.2
    assert calibration.rate_interval([0] * 20) == [0.0, 0.0]


def test_supplement_is_deterministic_balanced_and_disjoint_from_the_eval_set():
    rows = supplement.generate(per_category=20, seed=3)
    assert rows == supplement.generate(per_category=20, seed=3)
    counts = supplement.counts(rows)
    assert set(counts) == set(supplement.HAM_CATEGORIES) | set(supplement.SPAM_CATEGORIES)
    assert all(n == 20 for n in counts.values())
    assert len({normalize(r.text) for r in rows}) == len(rows)
    texts, labels, cats = evaluation.read_labelled(evaluation.MODERN_EVAL)
    supplement.check_disjoint(supplement.generate(per_category=100, seed=13), texts)
    train, val = supplement.split_rows(rows, seed=3)
    assert len(val) == 18 * 4 and len(train) == 18 * 16
    assert not {r.text for r in train} & {r.text for r in val}
    with pytest.raises(ValueError, match="also generated"):
        supplement.check_disjoint(rows, [rows[0].text])


def test_template_split_holds_out_whole_templates_per_category():
    rows = supplement.generate(per_category=60, seed=13)
    train, val = supplement.split_rows(rows, seed=13, by="template")
    assert len(train) + len(val) == len(rows)
    assert set(supplement.counts(val)) == set(supplement.counts(rows))  # every category
    for cat in supplement.counts(rows):
        seen = {r.template for r in train if r.category == cat}
        held = {r.template for r in val if r.category == cat}
        assert held and seen and not seen & held
    assert supplement.split_rows(rows, seed=13, by="template") == (train, val)
    with pytest.raises(ValueError, match="by must be"):
        supplement.split_rows(rows, by="brand")


def test_supplement_round_two_is_varied():
    for table in (supplement.HAM, supplement.SPAM):
        assert all(len(templates) >= 18 for templates in table.values())
    rows = supplement.generate(per_category=100, seed=13)
    assert len({normalize(r.text) for r in rows}) == len(rows) == 1800
    assert any(r.text.isupper() for r in rows) and any("\n" in r.text for r in rows)


def _per_category(path, n: int) -> list[str]:
    """The file's texts; exactly ``n`` rows in each of the 18 categories, labelled as it says."""
    texts, labels, cats = evaluation.read_labelled(path)
    for label, names in ((0, supplement.HAM_CATEGORIES), (1, supplement.SPAM_CATEGORIES)):
        for cat in names:
            assert sum(c == cat and y == label for c, y in zip(cats, labels, strict=True)) == n
    assert len(texts) == 18 * n
    return texts


@pytest.mark.parametrize(("path", "n"), [(evaluation.MODERN_DEV, 18),
                                         (evaluation.WRITTEN_TRAIN, 72),
                                         (evaluation.WRITTEN_VALIDATION, 12)])
def test_hand_written_sets_cover_every_category_and_share_no_text(path, n):
    texts = _per_category(path, n)
    assert len({normalize(t) for t in texts}) == len(texts)
    others = [p for p in (evaluation.MODERN_EVAL, evaluation.MODERN_DEV,
                          evaluation.WRITTEN_TRAIN, evaluation.WRITTEN_VALIDATION) if p != path]
    for other in others:  # eval, choosing, training and validation text never meet
        check_apart(texts, evaluation.read_labelled(other)[0])
    supplement.check_disjoint(supplement.generate(per_category=100, seed=13), texts)


def test_check_apart_names_the_clash():
    check_apart(["Your code is 1234"], ["Your code is 5678"])
    with pytest.raises(ValueError, match="1 evaluation texts are also trained on"):
        check_apart(["Your code is 1234"], ["Your  code is 1234", "other"])


def test_modern_eval_set_covers_every_category():
    texts, labels, cats = evaluation.read_labelled(evaluation.MODERN_EVAL)
    assert len(texts) == 246
    for cat in supplement.HAM_CATEGORIES:
        assert sum(c == cat and y == 0 for c, y in zip(cats, labels, strict=True)) >= 15
    for cat in supplement.SPAM_CATEGORIES:
        assert sum(c == cat and y == 1 for c, y in zip(cats, labels, strict=True)) >= 11


def test_set_metrics_per_category():
    probs = [0.9, 0.1, 0.2, 0.8, 0.7, 0.3]
    y = [0, 0, 0, 1, 1, 1]
    cats = ["otp", "otp", "otp", "prize", "prize", "crypto"]
    m = evaluation.set_metrics(probs, y, cats, 0.5)
    assert m["categories"]["otp"]["value"] == pytest.approx(1 / 3)
    assert m["categories"]["prize"]["value"] == 1.0
    assert m["categories"]["crypto"]["value"] == 0.0
    assert m["ham_fpr"] == pytest.approx(1 / 3) and m["spam_recall"] == pytest.approx(2 / 3)
    assert m["spam_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))


def _result(f1, ci, fpr, fpr_ci):
    return {"version": "v", "sets": {"modern": {
        "spam_f1": f1, "spam_f1_ci95": ci, "ham_fpr": fpr, "ham_fpr_ci95": fpr_ci,
        "spam_recall": None, "categories": {}}}}


def test_compare_flags_only_what_is_worse_beyond_the_interval():
    base = _result(0.90, [0.85, 0.95], 0.02, [0.0, 0.05])
    rows = {r["metric"]: r for r in evaluation.compare(_result(0.86, [0.8, 0.9], 0.04, [0, .1]),
                                                       base)}
    assert not rows["spam F1"]["worse"] and not rows["ham FPR"]["worse"]
    rows = {r["metric"]: r for r in evaluation.compare(_result(0.80, [0.7, 0.9], 0.08, [0, .2]),
                                                       base)}
    assert rows["spam F1"]["worse"] and rows["ham FPR"]["worse"]
    assert "WORSE" in evaluation.format_table(list(rows.values()), "c", "b")


@pytest.mark.parametrize("top_layers", [1, 2])
def test_cached_top_forward_equals_the_model(top_layers):
    from transformers import DistilBertForSequenceClassification

    from spamq.training.convert import tiny_config

    torch.manual_seed(0)
    cfg = tiny_config(200)
    cfg.n_layers = 3
    model = DistilBertForSequenceClassification(cfg).eval()
    seqs = [[101, 5, 6, 7, 102], [101, 9, 102], [101, 11, 12, 13, 14, 15, 16, 102]]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask).logits
    cache = fast.cache_hidden(model, seqs, top_layers=top_layers)
    assert [c.shape[0] for c in cache] == [5, 3, 8]
    got = fast.cached_logits(model, cache, top_layers=top_layers)
    assert torch.allclose(got, want, atol=1e-5)
    names = [n for n, _ in fast.trainable_parameters(model, top_layers)]
    assert all(n.startswith(("pre_classifier", "classifier", "distilbert.transformer.layer."))
               for n in names)
    assert any(n.startswith(f"distilbert.transformer.layer.{3 - top_layers}.") for n in names)
    assert not any(n.startswith(f"distilbert.transformer.layer.{2 - top_layers}.") for n in names)
