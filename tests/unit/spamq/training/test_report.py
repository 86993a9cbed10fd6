"""The bootstrap interval of spam F1 reported beside every test-split number."""

from __future__ import annotations

import numpy as np

from spamq.training.report import f1_interval


def test_perfect_predictions_have_no_spread() -> None:
    y = [0] * 50 + [1] * 10
    assert f1_interval(y, y) == [1.0, 1.0]


def test_interval_brackets_the_estimate_and_shrinks_with_more_texts() -> None:
    # 87 spam, 7 missed, no false alarm: F1 = 160 / 167, like the best test run.
    y = [0] * 611 + [1] * 87
    pred = [0] * 611 + [0] * 7 + [1] * 80
    low, high = f1_interval(y, pred)
    assert low < 160 / 167 < high
    assert 0.92 < low < 0.95 and 0.97 < high <= 0.99
    wide = high - low
    low10, high10 = f1_interval(y * 10, pred * 10)
    assert high10 - low10 < wide / 2  # 10x the texts: about 1/sqrt(10) of the width
    assert f1_interval(y, pred) == [low, high]  # seeded: reproducible
    assert f1_interval(y, pred, seed=1) != [low, high]


def test_level_widens_the_interval() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    pred = np.where(rng.random(300) < 0.1, 1 - y, y)
    low90, high90 = f1_interval(y, pred, level=0.90)
    low99, high99 = f1_interval(y, pred, level=0.99)
    assert low99 < low90 and high99 > high90
