"""The paired bootstrap of notebooks 03, 05 and 07 (helpers.core.bootstrap), and the precision choice beside it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.core import env
from helpers.core.bootstrap import bootstrap_draws, paired_difference, percentile_interval, resampled_accuracy


def _hits(n: int, accuracy: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < accuracy


def test_the_draws_are_the_ones_the_notebooks_drew_inline_before():
    # notebooks 03 and 05 drew np.random.default_rng(seed).integers(0, n, size=(2000, n)); 07 the same with 1000
    for n, resamples, seed in ((500, 2_000, 42), (1_000, 1_000, 7)):
        expected = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
        np.testing.assert_array_equal(bootstrap_draws(n, resamples, seed), expected)


def test_the_interval_and_difference_equal_the_notebooks_old_inline_code():
    a, b = _hits(800, 0.80, 1), _hits(800, 0.76, 2)
    draws = bootstrap_draws(len(a), 2_000, 42)
    old_low, old_high = np.percentile(a[draws].mean(1) - b[draws].mean(1), [2.5, 97.5])
    gap, low, high = paired_difference(a, b, draws)
    assert (low, high) == (old_low, old_high)  # bit for bit: the republished numbers do not move
    assert gap == pytest.approx(a.mean() - b.mean(), abs=1e-15)
    assert percentile_interval(a[draws].mean(1)) == tuple(np.percentile(a[draws].mean(1), [2.5, 97.5]))


def test_a_model_compared_with_itself_differs_by_exactly_zero():
    a = _hits(300, 0.7, 3)
    assert paired_difference(a, a, bootstrap_draws(300, 500, 0)) == (0.0, 0.0, 0.0)


def test_a_large_gap_is_found_and_a_tiny_one_is_not():
    n = 2_000
    strong, weak = _hits(n, 0.90, 4), _hits(n, 0.70, 5)
    _, low, high = paired_difference(strong, weak, bootstrap_draws(n, 1_000, 0))
    assert 0 < low < 0.2 < high  # excludes 0, holds the true gap
    twin = _hits(n, 0.90, 6)  # another model of the same accuracy, right and wrong on other items
    _, low, high = paired_difference(twin, strong, bootstrap_draws(n, 1_000, 0))
    assert low < 0 < high


def test_pairing_makes_the_interval_narrower_than_unpaired_draws():
    rng = np.random.default_rng(6)
    shared = rng.random(1_000) < 0.8  # two models that agree on most items
    other = shared.copy()
    flip = rng.choice(1_000, 40, replace=False)
    other[flip] = ~other[flip]
    draws = bootstrap_draws(1_000, 1_000, 1)
    _, low, high = paired_difference(shared, other, draws)
    unpaired = resampled_accuracy(shared, draws) - resampled_accuracy(other, bootstrap_draws(1_000, 1_000, 2))
    u_low, u_high = percentile_interval(unpaired)
    assert high - low < 0.5 * (u_high - u_low)


def test_the_level_sets_the_width():
    values = np.random.default_rng(0).normal(size=10_000)
    low90, high90 = percentile_interval(values, 90)
    low95, high95 = percentile_interval(values, 95)
    assert low95 < low90 < high90 < high95
    assert (low95, high95) == pytest.approx((-1.96, 1.96), abs=0.06)


def test_fastest_precision_is_bf16_only_on_a_cpu_with_bf16_units(monkeypatch):
    monkeypatch.setattr(env, "cpu_supports_bf16", lambda: True)
    assert env.fastest_precision(torch.device("cpu")) == "bf16"
    assert env.fastest_precision("cpu") == "bf16"
    assert env.fastest_precision(torch.device("cuda", 0)) == "auto"  # the loop picks bf16 or fp16 on the GPU
    monkeypatch.setattr(env, "cpu_supports_bf16", lambda: False)
    assert env.fastest_precision(torch.device("cpu")) == "auto"
    assert env.fastest_precision("cuda:1") == "auto"
