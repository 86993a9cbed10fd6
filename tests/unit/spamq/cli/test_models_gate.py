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
