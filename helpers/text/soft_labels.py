"""Rater-weighted soft labels: from several raters' votes to one label distribution per utterance.

The recipe of the KEMDy20 reference project (notebook 06 teaches it):

1. each utterance's majority label is the plurality of the raw votes (:func:`majority_labels`);
2. each rater's weight is their agreement (accuracy) with the majority over all utterances (:func:`rater_agreement`);
3. each utterance's label distribution is the rater-weighted vote share (:func:`weighted_label_distribution`);
   the weights are fractional, so ties between labels vanish.

A model is then trained on the distribution with :func:`helpers.core.losses.soft_cross_entropy` (cross-entropy
against a target distribution; for one-hot targets it is the usual cross-entropy), or, for demonstrations, with
:func:`helpers.text.baselines.fit_soft_logreg` (a logistic regression, the same loss): :func:`compare_targets`.
KEMDy20's annotation CSVs are read by :func:`helpers.multimodal.kemdy20.load_kemdy20_votes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from helpers.core.losses import SoftTargetLoss, soft_cross_entropy  # re-exported: notebook 06 uses sl.*
from helpers.core.metrics import fold_metrics
from helpers.text.baselines import expand_soft_targets, fit_soft_logreg, tfidf_vectorizer

# --------------------------------------------------------------------------- votes


def votes_from_wide(
    frame: pd.DataFrame, rater_cols: Sequence[str], utterance_col: str = "utterance", sep: str = ";"
) -> pd.DataFrame:
    """Long votes ``utterance, rater, label, share`` from one column per rater.

    A rater who gave several labels (``"happy;neutral"``) casts a share of ``1/k`` for each; empty cells are skipped.
    """
    rows = []
    for utt, labels in zip(frame[utterance_col], frame[list(rater_cols)].itertuples(index=False)):
        for rater, value in zip(rater_cols, labels):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            parts = [p.strip() for p in str(value).split(sep) if p.strip()]
            for part in parts:
                rows.append((utt, rater, part, 1.0 / len(parts)))
    return pd.DataFrame(rows, columns=["utterance", "rater", "label", "share"])


def _check_votes(votes: pd.DataFrame) -> pd.DataFrame:
    missing = {"utterance", "rater", "label"} - set(votes.columns)
    if missing:
        raise ValueError(
            f"votes need the columns utterance, rater, label (and optionally share); missing {sorted(missing)}"
        )
    if votes.empty:
        raise ValueError("no votes")
    if "share" not in votes:
        votes = votes.assign(share=1.0)
    return votes


def majority_labels(votes: pd.DataFrame) -> pd.Series:
    """Each utterance's plurality label from unweighted votes; ``None`` where the top labels tie."""
    votes = _check_votes(votes)
    totals = votes.groupby(["utterance", "label"])["share"].sum().unstack(fill_value=0.0)
    top = totals.max(axis=1)
    ties = (totals.eq(top, axis=0)).sum(axis=1) > 1
    majority = totals.idxmax(axis=1).astype(object)
    majority[ties] = None
    return majority


def rater_agreement(votes: pd.DataFrame) -> pd.Series:
    """Each rater's agreement (accuracy) with the majority label, over all utterances that have one.

    A rater's score is the mean, over the utterances they rated that have a clear majority, of the share of
    their vote that went to the majority label (1 for a single matching label, 1/k for k labels one of which
    matches). Utterances whose top labels tie are left out of the score.
    """
    votes = _check_votes(votes)
    majority = majority_labels(votes)
    clear = majority.dropna()
    v = votes[votes["utterance"].isin(clear.index)]
    hit = v["share"].where(v["label"].to_numpy() == clear.reindex(v["utterance"]).to_numpy(), 0.0)
    per_rating = v.assign(hit=hit).groupby(["rater", "utterance"])["hit"].sum()
    agreement = per_rating.groupby("rater").mean()
    raters = pd.Index(sorted(votes["rater"].unique()), name="rater")
    return agreement.reindex(raters, fill_value=0.0).rename("agreement")


def weighted_label_distribution(
    votes: pd.DataFrame, weights: pd.Series | dict | None = None, labels: Sequence[str] | None = None
) -> pd.DataFrame:
    """Each utterance's label distribution from rater-weighted votes (rows sum to 1), utterances × ``labels``.

    ``weights`` defaults to :func:`rater_agreement`. An utterance whose raters all have weight 0 falls back to
    its unweighted votes. Labels outside ``labels`` raise an error (fix typos first).
    """
    votes = _check_votes(votes)
    if weights is None:
        weights = rater_agreement(votes)
    weights = pd.Series(weights, dtype=float)
    unknown = sorted(set(votes["rater"]) - set(weights.index))
    if unknown:
        raise ValueError(f"no weight for raters {unknown[:5]}")
    labels = list(labels) if labels is not None else sorted(votes["label"].unique())
    stray = sorted(set(votes["label"]) - set(labels))
    if stray:
        raise ValueError(f"labels {stray} are not among {labels}; map typos first")
    v = votes.assign(w=votes["share"] * weights.reindex(votes["rater"]).to_numpy())
    weighted = (
        v.groupby(["utterance", "label"])["w"].sum().unstack(fill_value=0.0).reindex(columns=labels, fill_value=0.0)
    )
    plain = (
        v.groupby(["utterance", "label"])["share"].sum().unstack(fill_value=0.0).reindex(columns=labels, fill_value=0.0)
    )
    plain = plain.reindex(weighted.index)
    total = weighted.sum(axis=1)
    table = weighted.where(np.repeat(total.to_numpy()[:, None] > 0, len(labels), axis=1), plain)
    return table.div(table.sum(axis=1), axis=0)


def soft_labels(votes: pd.DataFrame, labels: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """``(distribution, rater_weights)``: :func:`weighted_label_distribution` with agreement weights."""
    weights = rater_agreement(votes)
    return weighted_label_distribution(votes, weights, labels), weights


# --------------------------------------------------------------------------- a model trained on label distributions


def compare_targets(
    train_texts: Sequence[str], targets: dict, val_texts: Sequence[str], val_labels: Sequence[int], seed: int = 42
) -> pd.DataFrame:
    """Train the same model (:func:`fit_soft_logreg` on TF-IDF features) once per entry of ``targets`` (name → class
    ids or label distributions for ``train_texts``); score each on ``val_texts`` / ``val_labels``: accuracy,
    macro-F1."""
    vectorizer = tfidf_vectorizer()
    x_train, x_val = vectorizer.fit_transform(list(train_texts)), vectorizer.transform(list(val_texts))
    val_labels = np.asarray(val_labels, dtype=int)
    num_classes = max(
        int(val_labels.max()) + 1,
        *(np.asarray(t).shape[1] if np.ndim(t) == 2 else int(np.max(t)) + 1 for t in targets.values()),
    )
    rows = []
    for name, target in targets.items():
        model = fit_soft_logreg(x_train, target, seed=seed, num_classes=num_classes)
        m = fold_metrics(val_labels, model.predict(x_val), num_classes)
        rows.append({"trained on": name, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})
    return pd.DataFrame(rows).set_index("trained on")


__all__ = [
    "votes_from_wide",
    "majority_labels",
    "rater_agreement",
    "weighted_label_distribution",
    "soft_labels",
    "soft_cross_entropy",
    "SoftTargetLoss",
    "expand_soft_targets",
    "fit_soft_logreg",
    "compare_targets",
]
