"""``spamq models evaluate`` and ``promote --require-no-worse``: parsing and the refusal."""

import argparse

from spamq.cli import ops


def _parser():
    p = argparse.ArgumentParser()
    ops.add_models_parser(p.add_subparsers(dest="command"))
    return p


def test_evaluate_and_promote_flags_parse():
    args = _parser().parse_args(["models", "evaluate", "weights/x", "--against", "production",
                                 "--file", "a.tsv", "--file", "b.tsv"])
    assert args.func.__name__ == "models_evaluate"
    assert args.against == "production" and [str(f) for f in args.file] == ["a.tsv", "b.tsv"]
    args = _parser().parse_args(["models", "promote", "spamq-sms", "abc", "--require-no-worse"])
    assert args.require_no_worse is True and args.func.__name__ == "models_promote"


def test_promote_refuses_a_worse_candidate(monkeypatch, capsys):
    class Reg:
        promoted = []

        def resolve(self, name, alias):
            return "old"

        def pull(self, name, ref, cache_dir):
            return ref

        def promote(self, name, version, alias):
            self.promoted.append(version)

    reg = Reg()
    monkeypatch.setattr(ops, "_registry", lambda s: reg)
    rows = [{"set": "modern", "metric": "otp FPR", "worse": True}]
    monkeypatch.setattr(ops, "_gate", lambda *a, **k: (rows, "TABLE"))
    args = _parser().parse_args(["models", "promote", "spamq-sms", "new", "--alias", "prod",
                                 "--require-no-worse"])
    assert args.func(args) == 2
    assert reg.promoted == []
    assert "modern otp FPR" in capsys.readouterr().err
    rows[0]["worse"] = False
    assert args.func(args) == 0
    assert reg.promoted == ["new"]


def _set(spam_caught: int, n: int = 40) -> dict:
    """A feedback set's figures: n spam of which ``spam_caught`` flagged, n ham none flagged."""
    from spamq.training import evaluation

    probs = [0.9] * spam_caught + [0.1] * (n - spam_caught) + [0.1] * n
    return evaluation.set_metrics(probs, [1] * n + [0] * n, ["feedback"] * (2 * n), 0.5)


def test_a_feedback_regression_is_worse_beyond_the_interval():
    from spamq.training import evaluation

    same = _set(40)
    rows = evaluation.compare({"sets": {"uci_test": same, "feedback": _set(30)}},
                              {"sets": {"uci_test": same, "feedback": _set(40)}})
    worse = {(r["set"], r["metric"]) for r in rows if r["worse"]}
    assert worse == {("feedback", "spam F1"), ("feedback", "spam recall")}
    # within the interval: 37 of 40 against a baseline of 38 of 40
    rows = evaluation.compare({"sets": {"feedback": _set(37)}}, {"sets": {"feedback": _set(38)}})
    assert not any(r["worse"] for r in rows)


def _model_dir(path, payload: str):
    from spamq.models.manifest import write_manifest

    path.mkdir()
    (path / "weights.bin").write_text(payload)
    write_manifest(path, split={"seed": 1})
    return path


def test_gate_blocks_on_feedback_and_an_override_reason_is_kept(monkeypatch, capsys, tmp_path):
    import json

    from spamq.models.registry import ModelRegistry
    from spamq.settings import Settings
    from spamq.storage.artifacts import LocalArtifactStore
    from spamq.training import evaluation

    settings = Settings(artifact_dir=tmp_path / "reg", model_cache_dir=tmp_path / "cache",
                        hdfs_url=None)
    reg = ModelRegistry(LocalArtifactStore(settings.artifact_dir))
    old = reg.push(_model_dir(tmp_path / "old", "a"), name="m")
    new = reg.push(_model_dir(tmp_path / "new", "b"), name="m")
    reg.promote("m", old, alias="prod")
    monkeypatch.setattr(ops, "_registry", lambda s: reg)
    seen = {}

    def gate(s, candidate, against, **kw):  # a feedback regression, the rest unchanged
        seen.update(kw, candidate=candidate.name, against=against.name)
        uci = _set(40)
        rows = evaluation.compare({"sets": {"uci_test": uci, "feedback": _set(28)}},
                                  {"sets": {"uci_test": uci, "feedback": _set(40)}})
        return rows, "TABLE"

    monkeypatch.setattr(ops, "_gate", gate)

    def run(*argv):
        args = _parser().parse_args(["models", *argv])
        args.settings = settings
        return args.func(args)

    assert run("promote", "m", new, "--alias", "prod", "--require-no-worse",
               "--feedback", "tenants=0123456789abcdef") == 2
    assert (seen["candidate"], seen["against"]) == (new, old)
    assert seen["feedback"] == "tenants=0123456789abcdef"
    err = capsys.readouterr().err
    assert "feedback spam recall" in err and "--override-reason" in err
    assert reg.resolve("m", "prod") == old and reg.record("m", new) == {}

    reason = "feedback holdout is 40 texts of one campaign; reviewed by ops"
    assert run("promote", "m", new, "--alias", "prod", "--require-no-worse",
               "--override-reason", reason) == 0
    assert reg.resolve("m", "prod") == new
    (promotion,) = reg.record("m", new)["promotions"]
    assert promotion["alias"] == "prod" and promotion["override_reason"] == reason
    assert {"feedback spam recall", "feedback spam F1"} <= set(promotion["overridden"])
    capsys.readouterr()

    assert run("list", "m") == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(listed["versions"]) == sorted([old, new])  # the records are not a version
    assert listed["overrides"][new][0]["override_reason"] == reason
    assert old not in listed["overrides"]
    assert run("show", "prod", "--name", "m") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == new and shown["aliases"] == ["prod"]
    assert shown["promotions"][0]["override_reason"] == reason


def test_override_reason_must_say_something():
    import pytest

    for bad in ("", "   ", "x" * 1001, "line\nbreak"):
        with pytest.raises(SystemExit):
            _parser().parse_args(["models", "promote", "m", "v", "--override-reason", bad])


def test_the_gate_evaluates_the_held_out_feedback_of_either_model(tmp_path):
    import json
    from datetime import UTC, datetime, timedelta

    from spamq.feedback.store import text_sha256, write_feedback
    from spamq.settings import Settings
    from spamq.storage.artifacts import LocalArtifactStore
    from spamq.training.feedback import load_split

    settings = Settings(artifact_dir=tmp_path / "store", hdfs_url=None)
    key, t0 = "0123456789abcdef", datetime(2026, 11, 1, tzinfo=UTC)
    for i, word in enumerate(("alpha", "bravo", "charlie", "delta", "echo")):
        write_feedback(LocalArtifactStore(settings.artifact_dir), key,
                       [{"text_sha256": text_sha256(word), "text": word, "label": "spam",
                         "source": "text"}], now=t0 + timedelta(days=i))
    source, split = load_split(f"tenants={key}", settings, holdout=0.4, excluded=frozenset())
    with_fb, without = _model_dir(tmp_path / "fb", "a"), _model_dir(tmp_path / "plain", "b")
    manifest = json.loads((with_fb / "manifest.json").read_text())
    manifest["feedback"] = split.record(source)
    (with_fb / "manifest.json").write_text(json.dumps(manifest))
    held = (["delta", "echo"], [1, 1], ["feedback", "feedback"])
    assert ops._feedback_set(settings, with_fb, without, None, 0.2) == held
    # a candidate trained without feedback is checked on production's held-out feedback
    assert ops._feedback_set(settings, without, with_fb, None, 0.2) == held
    assert ops._feedback_set(settings, without, None, None, 0.2) is None
    assert ops._feedback_set(settings, without, None, f"tenants={key}", 0.2)[0] == ["echo"]
