"""Rater-weighted soft labels: from several raters' votes to one label distribution per utterance.

The recipe of the KEMDy20 reference project (notebook 06 teaches it):

1. each utterance's majority label is the plurality of the raw votes (:func:`majority_labels`);
2. each rater's weight is their agreement (accuracy) with the majority over all utterances (:func:`rater_agreement`);
3. each utterance's label distribution is the rater-weighted vote share (:func:`weighted_label_distribution`);
   the weights are fractional, so ties between labels vanish.

A model is then trained on the distribution with :func:`soft_cross_entropy` (cross-entropy against a target
distribution; for one-hot targets it is the usual cross-entropy). :func:`load_kemdy20_votes` reads KEMDy20's
annotation CSVs when the user has the (licensed) corpus; :func:`fit_soft_logreg` trains a logistic regression on
label distributions (the same loss), for demonstrations.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

# --------------------------------------------------------------------------- votes


def votes_from_wide(frame: pd.DataFrame, rater_cols: Sequence[str], utterance_col: str = "utterance", sep: str = ";") -> pd.DataFrame:
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
        raise ValueError(f"votes need the columns utterance, rater, label (and optionally share); missing {sorted(missing)}")
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
    weighted = v.groupby(["utterance", "label"])["w"].sum().unstack(fill_value=0.0).reindex(columns=labels, fill_value=0.0)
    plain = v.groupby(["utterance", "label"])["share"].sum().unstack(fill_value=0.0).reindex(columns=labels, fill_value=0.0)
    plain = plain.reindex(weighted.index)
    total = weighted.sum(axis=1)
    table = weighted.where(np.repeat(total.to_numpy()[:, None] > 0, len(labels), axis=1), plain)
    return table.div(table.sum(axis=1), axis=0)


def soft_labels(votes: pd.DataFrame, labels: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """``(distribution, rater_weights)``: :func:`weighted_label_distribution` with agreement weights."""
    weights = rater_agreement(votes)
    return weighted_label_distribution(votes, weights, labels), weights


KEMDY20_TYPOS = {"disqust": "disgust", "surprised": "surprise", "happiness": "happy", "anger": "angry", "sadness": "sad"}
KEMDY20_EMOTIONS = ("neutral", "happy", "surprise", "angry", "sad", "disgust", "fear")


def _read_kemdy20_annotation(path: Path) -> pd.DataFrame:
    """One ``SessNN_eval.csv``: two header rows (``Eval01F`` … then ``Emotion, Valence, Arousal``) → a flat frame."""
    raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, encoding_errors="replace")
    top = raw.iloc[0].replace("", np.nan).ffill().fillna("")
    sub = raw.iloc[1]
    names = [f"{a.strip()}_{b.strip()}" if b.strip() else a.strip() for a, b in zip(top, sub)]
    frame = raw.iloc[2:].copy()
    frame.columns = names
    return frame.reset_index(drop=True)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    for encoding in ("utf-8", "cp949"):
        try:
            return raw.decode(encoding).strip()
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", errors="replace").strip()


def load_kemdy20_votes(path: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """KEMDy20's per-rater emotion labels as long votes, and the utterances with their transcripts.

    Reads ``annotation/Sess*_eval.csv`` (columns ``Segment ID``, ``Total Evaluation`` and one ``EvalNN[F|M]``
    group per rater, each with ``Emotion``) and, when present, the transcripts ``wav/Session*/<Segment ID>.txt``.
    Labels are lower-cased and typos fixed (``disqust`` → ``disgust``); multi-label votes (``happy;neutral``)
    are split into equal shares. Rater columns are taken as the same rater in every session file.
    Returns ``(votes, utterances)`` with ``votes``: utterance, rater, label, share and ``utterances``:
    utterance, text, total (the corpus' own aggregate label). Raises :class:`helpers.core.data.DataNotFoundError`
    when the corpus is not there.
    """
    from helpers.core.data import dataset_dir

    folder = dataset_dir("kemdy20", path, allow_download=False)
    files = sorted((folder / "annotation").glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no annotation CSVs in {folder / 'annotation'}")
    texts = {p.stem: p for p in (folder / "wav").glob("*/*.txt")}
    votes, utterances = [], []
    for file in files:
        frame = _read_kemdy20_annotation(file)
        seg_col = next((c for c in frame.columns if c.lower().startswith("segment")), None)
        rater_cols = [c for c in frame.columns if re.match(r"^Eval\d+[A-Za-z]*_Emotion$", c)]
        if seg_col is None or not rater_cols:
            raise ValueError(f"{file}: expected a 'Segment ID' column and EvalNN 'Emotion' columns, found {list(frame.columns)[:12]}")
        clean = frame[[seg_col, *rater_cols]].rename(columns={seg_col: "utterance"})
        for col in rater_cols:
            clean[col] = clean[col].map(lambda s: ";".join(KEMDY20_TYPOS.get(p.strip().lower(), p.strip().lower())
                                                            for p in str(s).split(";") if p.strip()) or None)
        long = votes_from_wide(clean, rater_cols, "utterance")
        long["rater"] = long["rater"].str.removesuffix("_Emotion")
        votes.append(long)
        total_col = next((c for c in frame.columns if c.startswith("Total Evaluation") and c.endswith("Emotion")), None)
        utterances.append(pd.DataFrame({
            "utterance": frame[seg_col],
            "text": [_read_text(texts[s]) if s in texts else "" for s in frame[seg_col]],
            "total": frame[total_col] if total_col else "",
        }))
    return pd.concat(votes, ignore_index=True), pd.concat(utterances, ignore_index=True).drop_duplicates("utterance")


# --------------------------------------------------------------------------- the loss


def _as_targets(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    if target.dim() == 1:
        return F.one_hot(target.long(), num_classes).float()
    if target.shape[-1] != num_classes:
        raise ValueError(f"soft targets have {target.shape[-1]} classes, the logits {num_classes}")
    return target.float()


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against a target *distribution*: mean over examples of ``-Σ_c w_c t_c log p_c / Σ_c w_c t_c``.

    ``target`` is ``[n, C]`` probabilities (rows summing to 1) or ``[n]`` class ids; for class ids (one-hot
    targets) it equals ``nn.CrossEntropyLoss(weight=weight)`` exactly, class-weighted mean included.
    """
    t = _as_targets(target, logits.shape[-1])
    logp = F.log_softmax(logits.float(), dim=-1)
    if weight is None:
        return -(t * logp).sum(-1).mean()
    w = weight.to(logp.device, logp.dtype)
    return -(t * w * logp).sum() / (t * w).sum()


class SoftTargetLoss(nn.Module):
    """:func:`soft_cross_entropy` as a module (accepts class ids or distributions)."""

    def __init__(self, weight: torch.Tensor | None = None):
        super().__init__()
        self.weight = weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_cross_entropy(logits, target, self.weight)


# --------------------------------------------------------------------------- a model trained on label distributions


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
    """Logistic regression (the TF-IDF baseline's, :func:`helpers.text.korean_emotion.logreg`) trained on label
    distributions: each example enters once per label it has a share of, weighted by that share, so the model
    minimises the soft-target cross-entropy (the same loss as :func:`soft_cross_entropy`, plus the L2 penalty)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from helpers.text.korean_emotion import logreg

    row, label, weight = expand_soft_targets(targets, num_classes)
    model = logreg(seed, C=C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x_train[row], label, sample_weight=weight)


def compare_targets(train_texts: Sequence[str], targets: dict, val_texts: Sequence[str], val_labels: Sequence[int],
                    seed: int = 42) -> pd.DataFrame:
    """Train the same model (:func:`fit_soft_logreg` on TF-IDF features) once per entry of ``targets`` (name → class
    ids or label distributions for ``train_texts``); score each on ``val_texts`` / ``val_labels``: accuracy, macro-F1."""
    from helpers.text.korean_emotion import fold_metrics, tfidf_vectorizer

    vectorizer = tfidf_vectorizer()
    x_train, x_val = vectorizer.fit_transform(list(train_texts)), vectorizer.transform(list(val_texts))
    val_labels = np.asarray(val_labels, dtype=int)
    num_classes = max(int(val_labels.max()) + 1, *(np.asarray(t).shape[1] if np.ndim(t) == 2 else int(np.max(t)) + 1
                                                  for t in targets.values()))
    rows = []
    for name, target in targets.items():
        model = fit_soft_logreg(x_train, target, seed=seed, num_classes=num_classes)
        m = fold_metrics(val_labels, model.predict(x_val), num_classes)
        rows.append({"trained on": name, "accuracy": m["accuracy"], "f1_macro": m["f1_macro"]})
    return pd.DataFrame(rows).set_index("trained on")


__all__ = [
    "votes_from_wide", "majority_labels", "rater_agreement", "weighted_label_distribution", "soft_labels",
    "KEMDY20_EMOTIONS", "KEMDY20_TYPOS", "load_kemdy20_votes", "soft_cross_entropy", "SoftTargetLoss",
    "expand_soft_targets", "fit_soft_logreg", "compare_targets",
]
