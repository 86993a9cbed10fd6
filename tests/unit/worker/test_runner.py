import pytest
import torch

from spamq.models import loader
from spamq.models.manifest import ManifestError
from spamq.models.precision import auto_cpu_candidates, choose_cpu_precision
from worker.runner import BatchClassifier


@pytest.fixture(scope="module")
def runner(random_model_dir) -> BatchClassifier:
    return BatchClassifier(random_model_dir, device="cpu", max_length=32, batch_size=4,
                           max_batch_tokens=64)


def test_plan_sorts_by_length_and_respects_size_and_token_budget(runner):
    lengths = [30, 3, 12, 5, 5, 7, 30, 2, 9, 4]
    batches = runner.plan(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths)  # length-sorted
    for b in batches:
        assert len(b) <= 4
        assert max(lengths[i] for i in b) * len(b) <= 64


def test_long_texts_are_truncated_and_flagged(runner):
    ids, truncated = runner.encode(["short one", "word " * 100])
    assert truncated == [False, True]
    assert len(ids[1]) == 32 and ids[1][-1] == runner.tokenizer.sep_token_id
    assert ids[0][0] == runner.tokenizer.cls_token_id


def test_batched_predictions_equal_one_at_a_time_and_keep_order(runner):
    texts = ["hi", "free entry win cash now " * 3, "see you at 5", "x " * 80, "ok", "call me"]
    batched = runner.predict(texts)
    single = [runner.predict([t])[0] for t in texts]
    assert [p.truncated for p in batched] == [False, False, False, True, False, False]
    for b, s in zip(batched, single, strict=True):
        assert b.spam_probability == pytest.approx(s.spam_probability, abs=1e-5)
        assert b.label == ("spam" if b.spam_probability >= runner.threshold else "ham")
        assert b.model_version == runner.version


def test_padding_mask_makes_padding_irrelevant(runner):
    ids, _ = runner.encode(["a b", "a much longer message with many more words in it"])
    batch = runner.pad(ids, [0, 1])
    assert batch.input_ids.shape == (2, len(ids[1]))
    assert int(batch.attention_mask[0].sum()) == len(ids[0])
    assert 0 < batch.fill < 1
    together = runner.spam_probabilities(batch)
    alone = runner.spam_probabilities(runner.pad(ids, [0]))
    assert together[0] == pytest.approx(alone[0], abs=1e-5)


def test_normalisation_is_applied_before_tokenising(runner):
    plain, _ = runner.encode(["FREE prize 0800"])
    obfuscated, _ = runner.encode(["F R E E pr\u200bize \uff10\uff18\uff10\uff10"])
    assert plain == obfuscated


def test_a_tampered_model_directory_is_refused(random_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(random_model_dir, copy)
    with open(copy / "config.json", "a") as fh:
        fh.write(" ")
    with pytest.raises(ManifestError, match="config.json"):
        BatchClassifier(copy, device="cpu")


@pytest.mark.parametrize("precision", ["bf16", "int8", "bf16mm", "int8row"])
def test_reduced_precision_stays_close_to_fp32(random_model_dir, runner, precision):
    other = BatchClassifier(random_model_dir, device="cpu", max_length=32, precision=precision)
    texts = ["hello there", "win a free prize now, call 0800 123"]
    ref = [p.spam_probability for p in runner.predict(texts)]
    got = [p.spam_probability for p in other.predict(texts)]
    assert got == pytest.approx(ref, abs=0.02)
    if precision == "bf16":
        assert next(other.model.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("precision", ["fp32", "bf16", "bf16mm", "int8row"])
def test_the_traced_forward_scores_as_the_eager_model_at_every_shape(random_model_dir, precision):
    """The TorchScript trace is made at one (rows, width); transformers' shape checks become
    constants in it, so it must still score every other shape, padded or not, as eager does."""
    traced = BatchClassifier(random_model_dir, device="cpu", max_length=32, precision=precision)
    eager = BatchClassifier(random_model_dir, device="cpu", max_length=32, precision=precision,
                            torchscript=False)
    assert isinstance(traced._forward, torch.jit.ScriptModule)
    assert not isinstance(eager._forward, torch.jit.ScriptModule)
    texts = ["ok", "hi there", "win a free prize now, call 0800 123 " * 3, "see you at 5 then",
             "x " * 40, "URGENT! your account is locked, verify at bit.ly/x"]
    ids, _ = traced.encode(texts)
    for index in ([0], [1], [2], [4], [0, 2], [1, 3, 5], list(range(len(texts)))):
        a = traced.logits(traced.pad(ids, index))
        b = eager.logits(eager.pad(ids, index))
        assert a.shape == b.shape == (len(index), 2)
        assert torch.equal(a, b), (precision, index, (a - b).abs().max())


def test_the_probe_picks_the_fastest_candidate_clearly_faster_than_fp32():
    assert choose_cpu_precision({"fp32": 1.0, "int8row": 0.45, "bf16mm": 0.5}) == "int8row"
    assert choose_cpu_precision({"fp32": 1.0, "int8row": 0.7, "bf16mm": 0.5}) == "bf16mm"
    # not faster, or within the probe's margin of fp32: fp32
    assert choose_cpu_precision({"fp32": 1.0, "int8row": 1.4, "bf16mm": 0.95}) == "fp32"
    assert choose_cpu_precision({"fp32": 1.0}) == "fp32"


def test_bf16_is_probed_only_where_the_cpu_has_bf16_dot_products():
    assert auto_cpu_candidates(True) == ("bf16mm",)
    # int8row costs more spam F1 than bench.precision allows, so it is offered, never auto
    assert auto_cpu_candidates(False) == ()


@pytest.mark.parametrize(("bf16", "seconds", "expected"), [
    (True, {"fp32": 1.0, "bf16mm": 0.6}, "bf16mm"),
    (True, {"fp32": 1.0, "bf16mm": 0.95}, "fp32"),  # bf16 not measurably faster: fp32
    (True, {"fp32": 1.0, "bf16mm": 1.3}, "fp32"),
])
def test_auto_on_a_cpu_serves_the_probes_pick(random_model_dir, monkeypatch, bf16, seconds,
                                              expected):
    probed: list[tuple[str, ...]] = []

    def probe(model, candidates):
        probed.append(tuple(candidates))
        return {p: s for p, s in seconds.items() if p == "fp32" or p in candidates}

    monkeypatch.setattr(loader, "cpu_supports_bf16", lambda: bf16)
    monkeypatch.setattr(loader, "probe_cpu_precisions", probe)
    chosen = BatchClassifier(random_model_dir, device="cpu", max_length=32, precision="auto")
    assert chosen.precision == expected
    assert probed == [("bf16mm",)]
    assert chosen.predict(["win a free prize"])[0].label in ("spam", "ham")


def test_the_probe_times_fp32_and_each_candidate(random_model_dir, runner):
    from spamq.models.precision import probe_cpu_precisions

    seconds = probe_cpu_precisions(runner.model, ("int8row", "bf16mm"), rows=2, width=8)
    assert set(seconds) == {"fp32", "int8row", "bf16mm"}
    assert all(0 < s < 10 for s in seconds.values())


def test_auto_on_a_cpu_without_bf16_serves_fp32_without_a_probe(random_model_dir, monkeypatch):
    def probe(model, candidates):
        raise AssertionError("nothing to probe")

    monkeypatch.setattr(loader, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(loader, "probe_cpu_precisions", probe)
    chosen = BatchClassifier(random_model_dir, device="cpu", max_length=32, precision="auto")
    assert chosen.precision == "fp32"
