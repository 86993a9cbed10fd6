"""TrainConfig from the flags, the weighted loss, and the excluded texts kept off every split."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from spamq import training
from spamq.training.config import FAST_DEFAULTS, SCRATCH_DEFAULTS, TrainConfig
from spamq.training.data import Example, split_excluding
from spamq.training.exclude import excluded_hash

torch = pytest.importorskip("torch")


class _Settings:
    data_path = Path("/data.tsv")
    model_dir = Path("/model")
    max_length = 256


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    training.add_arguments(parser)
    return parser.parse_args(argv)


def test_no_flags_give_the_default_config() -> None:
    assert training.config_from_args(_parse([])) == TrainConfig()


def test_flags_reach_the_config() -> None:
    cfg = training.config_from_args(_parse(
        ["--epochs", "2", "--supplement-weight", "0.5", "--no-written", "--top-layers", "2",
         "--seed", "5", "--no-progress"]))
    assert (cfg.epochs, cfg.supplement_weight, cfg.written, cfg.top_layers, cfg.seed,
            cfg.progress) == (2, 0.5, False, 2, 5, False)


def test_resolved_fills_paths_and_the_mode_defaults(tmp_path: Path) -> None:
    fast = TrainConfig().resolved(_Settings(), tmp_path / "eval.tsv")
    assert (fast.data_path, fast.out_dir, fast.eval_max_length) == (
        Path("/data.tsv"), Path("/model"), 256)
    assert (fast.epochs, fast.lr, fast.batch_size) == (
        FAST_DEFAULTS["epochs"], FAST_DEFAULTS["lr"], FAST_DEFAULTS["batch_size"])
    assert fast.modern_eval == tmp_path / "eval.tsv"
    scratch = TrainConfig(from_scratch=True, epochs=1).resolved(_Settings(), tmp_path)
    assert (scratch.epochs, scratch.lr) == (1, SCRATCH_DEFAULTS["lr"])
    assert not scratch.fast_path and fast.fast_path


@pytest.mark.parametrize("bad", [{"supplement_split": "word"}, {"runs": 0},
                                 {"supplement_weight": 0.0}])
def test_bad_values_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def test_the_weighted_loss_is_cross_entropy_without_row_weights() -> None:
    from spamq.training.batches import WeightedCrossEntropy

    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-1.0, 1.5]])
    y = torch.tensor([0, 1, 1])
    cw = torch.tensor([0.6, 2.5])
    assert WeightedCrossEntropy()(logits, y).item() == pytest.approx(
        torch.nn.CrossEntropyLoss()(logits, y).item())
    assert WeightedCrossEntropy(cw)(logits, y).item() == pytest.approx(
        torch.nn.CrossEntropyLoss(weight=cw)(logits, y).item())
    # a row weight of 0.5 halves that row's term and keeps the normaliser
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    got = WeightedCrossEntropy()(logits, y, torch.tensor([1.0, 0.5, 1.0])).item()
    assert got == pytest.approx(((ce[0] + 0.5 * ce[1] + ce[2]) / 3).item())


def test_excluded_texts_leave_every_split_and_the_rest_stays_put() -> None:
    rows = [Example(f"message number {i}", int(i % 5 == 0)) for i in range(200)]
    plain = split_excluding(rows, frozenset(), seed=3)
    victims = [plain.test[0].text, plain.validation[0].text, plain.train[0].text]
    listed = frozenset(excluded_hash(" " + t.upper() + " ") for t in victims)
    s = split_excluding(rows, listed, seed=3)
    assert s.stats["excluded"] == {"train": 1, "validation": 1, "test": 1}
    assert not {e.text for e in s.train + s.validation + s.test} & set(victims)
    assert s.test == plain.test[1:] and s.validation == plain.validation[1:]


def test_the_training_modules_import_no_project_module_inside_a_function() -> None:
    """The training package's own modules import each other at the top, so any circle would
    show (only the package's face, __init__.py, stays lazy so that ``spamq --help`` is fast)."""
    root = Path(training.__file__).parent
    inner = []
    for path in sorted(root.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for sub in ast.walk(node):
                    if (isinstance(sub, ast.ImportFrom) and sub.module
                            and sub.module.startswith("spamq.training")):
                        inner.append(f"{path.name}:{node.name} -> {sub.module}")
    assert inner == []
