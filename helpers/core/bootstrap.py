"""The paired bootstrap that compares two models on one test split (notebook 03 teaches it: its cell marked
``# @save helpers/core/bootstrap.py`` is the source, ``tests/test_saved_cells.py`` keeps this file equal to it).

Draw the test items with replacement, score every model on the *same* draw, repeat: the spread of a model's
accuracy over the draws is its uncertainty, and the spread of the difference between two models, paired draw by
paired draw, says whether the test split can tell them apart. Notebooks 03, 05 and 07 use it.
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------- notebook 03's code (@save cell)


def bootstrap_draws(n_items: int, n_resamples: int = 2_000, seed: int = 0) -> np.ndarray:
    """Item positions of ``n_resamples`` resamples of ``n_items`` test items, drawn with replacement (one row each).

    Every model is scored on the same rows, so the comparison between two models is *paired*."""
    return np.random.default_rng(seed).integers(0, n_items, size=(n_resamples, n_items))


def resampled_accuracy(correct: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """A model's accuracy on each resample, from its per-item hits (``True`` where it was right)."""
    return np.asarray(correct, dtype=float)[draws].mean(axis=1)


def percentile_interval(values: np.ndarray, level: float = 95.0) -> tuple[float, float]:
    """The central ``level`` per cent of ``values``: the percentile bootstrap interval."""
    low, high = np.percentile(values, [50 - level / 2, 50 + level / 2])
    return float(low), float(high)


def paired_difference(
    correct_a: np.ndarray, correct_b: np.ndarray, draws: np.ndarray, level: float = 95.0
) -> tuple[float, float, float]:
    """Accuracy of model a minus model b on the test items, and the paired-bootstrap interval of that difference.

    If the interval holds 0, this test split cannot tell the two models apart."""
    gap = float(np.mean(correct_a) - np.mean(correct_b))
    low, high = percentile_interval(resampled_accuracy(correct_a, draws) - resampled_accuracy(correct_b, draws), level)
    return gap, low, high
