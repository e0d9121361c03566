"""Classical text baselines: character n-gram TF-IDF and logistic regression (notebooks 06 and 10, the CLI's
``--model tfidf``), also trained on label distributions (:func:`fit_soft_logreg`)."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline


def tfidf_vectorizer() -> TfidfVectorizer:
    """Character 1–4-grams inside words (``char_wb``), seen at least twice, sublinear term frequencies."""
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), min_df=2, sublinear_tf=True)


def logreg(seed: int = 42, C: float = 2.0, class_weight: str | None = None, max_iter: int = 100) -> LogisticRegression:
    """Multinomial logistic regression (saga, stops at tol 1e-3: about 30 passes)."""
    return LogisticRegression(
        C=C, solver="saga", max_iter=max_iter, tol=1e-3, random_state=seed, class_weight=class_weight
    )


def tfidf_logreg(seed: int = 42, C: float = 2.0, class_weight: str | None = None, max_iter: int = 100):
    """:func:`tfidf_vectorizer` + :func:`logreg` as one scikit-learn pipeline."""
    return make_pipeline(tfidf_vectorizer(), logreg(seed, C, class_weight, max_iter))


def fit_quietly(model, x, y, **fit_args):
    """``model.fit(x, y)`` without the ConvergenceWarning saga gives when it stops at ``max_iter`` (the scores are
    what matter here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y, **fit_args)


def expand_soft_targets(targets, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row, label, weight)``: one entry per example and label with a non-zero share of ``targets``.

    Fitting any weighted classifier on ``x[row]``, ``label`` with ``sample_weight=weight`` minimises
    Σ_i Σ_c t_ic · (−log p_c(x_i)), the soft-target cross-entropy; class ids give one entry of weight 1 each.
    """
    t = np.asarray(targets, dtype=float)
    if t.ndim == 1:
        k = num_classes or int(t.max()) + 1
        t = np.eye(k)[t.astype(int)]
    if (t < 0).any() or not np.allclose(t.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("targets must be class ids or rows of probabilities that sum to 1")
    row, label = np.nonzero(t > 0)
    return row, label, t[row, label]


def fit_soft_logreg(x_train, targets, seed: int = 42, C: float = 2.0, num_classes: int | None = None):
    """:func:`logreg` trained on label distributions: each example enters once per label it has a share of, weighted
    by that share, so the model minimises the soft-target cross-entropy
    (:func:`helpers.core.losses.soft_cross_entropy`, plus the L2 penalty)."""
    row, label, weight = expand_soft_targets(targets, num_classes)
    return fit_quietly(logreg(seed, C=C), x_train[row], label, sample_weight=weight)


__all__ = ["tfidf_vectorizer", "logreg", "tfidf_logreg", "fit_quietly", "expand_soft_targets", "fit_soft_logreg"]
