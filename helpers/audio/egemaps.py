"""eGeMAPS: the field's standard hand-crafted speech-emotion features, and a linear classifier on them (notebook 08).

The extended Geneva Minimalistic Acoustic Parameter Set (eGeMAPSv02, Eyben et al., 2016) describes a clip by 88
functionals (means, spreads, percentiles, slopes) of 25 low-level descriptors chosen for emotion research: pitch
(F0 in semitones), jitter and shimmer, loudness, harmonics-to-noise ratio, formants F1-F3 and their bandwidths,
spectral slopes and MFCC 1-4, plus the rate and length of voiced and unvoiced stretches.

- :func:`extract_egemaps`: the 88 functionals of every clip of a frame, computed by openSMILE and cached as
  ``.npz`` (read with ``allow_pickle=False``) beside the other per-clip feature caches.
- :func:`fit_on_validation`: standardized logistic regression or linear SVM, the model and its ``C`` chosen on the
  validation clips only (the test clips are never looked at).
- :func:`egemaps_fold_scores`: both steps on every ``(train, val, test)`` fold of
  :func:`helpers.audio.cnn_recipe.speaker_splits`, so the baseline is scored on the CNN's speaker folds.

**openSMILE's licence.** The features come from audEERING's openSMILE (``opensmile==2.6.0`` on PyPI): free for
research and education only, commercial use needs a licence from audEERING, like RAVDESS's own non-commercial
terms (CC BY-NC-SA 4.0). It is an optional dependency: ``opensmile`` is imported only when features are computed,
so the rest of the course runs without it, and its absence is reported as :class:`EgemapsUnavailable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from helpers.audio.features import (
    TARGET_SR,
    AudioError,
    clip_cache_path,
    load_audio,
    read_clip_cache,
    trim_silence,
    warn_rejected,
    write_clip_cache,
)
from helpers.core.metrics import classification_metrics

EGEMAPS_VERSION = 1  # bump when the extraction below changes: every cached file is then recomputed
N_FUNCTIONALS = 88
OPENSMILE_PIN = "opensmile==2.6.0"
# (name, C) tried on the validation clips, in this order; a tie keeps the earlier (simpler, more regularised) one
CANDIDATES: tuple[tuple[str, float], ...] = (
    *(("logistic regression", c) for c in (0.01, 0.1, 1.0, 10.0)),
    *(("linear SVM", c) for c in (0.001, 0.01, 0.1, 1.0)),
)


class EgemapsUnavailable(RuntimeError):
    """openSMILE is not installed (or does not run here); the message says how to install it."""


@dataclass
class EgemapsFeatures:
    """eGeMAPS functionals of the clips that could be read, with their rows of the input frame."""

    values: np.ndarray  # (n_kept, 88) float32
    names: list[str]  # the 88 functional names, openSMILE's spelling
    frame: pd.DataFrame  # the kept rows of the input frame, in the same order, index reset
    rejected: list[tuple[str, str]]  # (file, reason) of every clip left out
    cache_path: Path | None
    from_cache: bool

    def __len__(self) -> int:
        return len(self.values)


def _smile():
    # imported here, not at the top: openSMILE is optional (research licence) and the course runs without it
    try:
        import opensmile
    except ImportError as exc:
        raise EgemapsUnavailable(
            f"eGeMAPS needs openSMILE, which is not installed ({exc}): pip install {OPENSMILE_PIN} "
            "(free for research and education; commercial use needs a licence from audEERING)"
        ) from None
    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals
    )
    return smile, opensmile.__version__


def extract_egemaps(
    frame: pd.DataFrame,
    *,
    path_col: str = "filepath",
    trim_db: float | None = 30.0,
    min_seconds: float = 0.25,
    cache_name: str = "egemaps",
    use_cache: bool = True,
    progress: bool = True,
) -> EgemapsFeatures:
    """The 88 eGeMAPSv02 functionals of every clip in ``frame[path_col]``, cached.

    Each clip is read with :func:`helpers.audio.features.load_audio` (16 kHz mono) and, with ``trim_db``, its
    leading and trailing silence is cut as for the CNN's features (so both models hear the same speech). Clips that
    cannot be read (corrupt, silent, too short) or whose functionals are not finite are left out and listed in one
    :class:`helpers.audio.features.RejectedClipsWarning`. The cache file ``<cache_name>-<hash>.npz`` is keyed on
    the settings, openSMILE's version and every file's path, size and modification time.
    """
    from tqdm.auto import tqdm

    if path_col not in frame:
        raise KeyError(f"the frame has no column {path_col!r} of audio paths; found {list(frame.columns)}")
    paths = [str(p) for p in frame[path_col]]
    if not paths:
        raise ValueError("the frame holds no clips")
    smile, version = _smile()
    settings = {
        "kind": "egemaps",
        "feature_set": "eGeMAPSv02",
        "level": "functionals",
        "opensmile": version,
        "version": EGEMAPS_VERSION,
        "sr": TARGET_SR,
        "trim_db": trim_db,
        "min_seconds": min_seconds,
    }
    cache_path = clip_cache_path(cache_name, settings, paths)
    if use_cache and cache_path.exists():
        (values, names), kept, rejected = read_clip_cache(cache_path, "values", "names")
        result = EgemapsFeatures(
            values, names.tolist(), frame.iloc[kept].reset_index(drop=True), rejected, cache_path, True
        )
    else:
        rows, kept, rejected = [], [], []
        for i, path in enumerate(tqdm(paths, desc="eGeMAPS features", disable=not progress)):
            try:
                wave = load_audio(path, sr=TARGET_SR, min_seconds=min_seconds)
            except AudioError as exc:
                rejected.append((path, str(exc)))
                continue
            if trim_db is not None:
                wave = trim_silence(wave, trim_db)
            row = smile.process_signal(wave, TARGET_SR).to_numpy(dtype=np.float32).reshape(-1)
            if row.shape != (N_FUNCTIONALS,) or not np.isfinite(row).all():
                rejected.append((path, f"{path}: openSMILE gave {row.size} values, not {N_FUNCTIONALS} finite ones"))
                continue
            rows.append(row)
            kept.append(i)
        if not rows:
            raise AudioError("no clip could be used:\n" + "\n".join(f"  - {reason}" for _, reason in rejected))
        values, names = np.stack(rows), list(smile.feature_names)
        if use_cache:
            write_clip_cache(cache_path, kept, rejected, values=values, names=np.array(names, dtype=str))
        result = EgemapsFeatures(
            values, names, frame.iloc[kept].reset_index(drop=True), rejected, cache_path if use_cache else None, False
        )
    warn_rejected(result.rejected, len(paths))
    return result


def make_classifier(name: str, c: float, seed: int = 0) -> Pipeline:
    """Standardization (fitted on the training clips) followed by a logistic regression or a linear SVM."""
    if name == "logistic regression":
        model = LogisticRegression(C=c, max_iter=5000)
    elif name == "linear SVM":
        model = LinearSVC(C=c, max_iter=50_000, random_state=seed)
    else:
        raise ValueError(f"name must be 'logistic regression' or 'linear SVM', not {name!r}")
    return make_pipeline(StandardScaler(), model)


def fit_on_validation(
    x: np.ndarray,
    y: np.ndarray,
    train_i: np.ndarray,
    val_i: np.ndarray,
    candidates: tuple[tuple[str, float], ...] = CANDIDATES,
    seed: int = 0,
) -> tuple[Pipeline, pd.DataFrame]:
    """Fit every candidate on ``train_i``, keep the one with the best accuracy on ``val_i`` (first one on a tie).

    Returns the chosen pipeline (fitted on ``train_i`` only) and a table of every candidate's validation accuracy.
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} feature rows but {len(y)} labels")
    if not candidates:
        raise ValueError("give at least one (name, C) candidate")
    rows, best, best_acc = [], None, -1.0
    for name, c in candidates:
        model = make_classifier(name, c, seed).fit(x[train_i], y[train_i])
        acc = float((model.predict(x[val_i]) == y[val_i]).mean())
        rows.append({"model": name, "C": c, "val accuracy": acc})
        if acc > best_acc:
            best, best_acc = model, acc
    return best, pd.DataFrame(rows)


def egemaps_fold_scores(
    x: np.ndarray,
    y: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    num_classes: int = 8,
    candidates: tuple[tuple[str, float], ...] = CANDIDATES,
    seed: int = 0,
) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Per fold: the model chosen on the validation actors, its validation accuracy, and its test scores.

    Returns ``(table, predictions)``: one row per fold (``fold``, ``model``, ``C``, ``val accuracy``, ``test
    accuracy``, ``test macro-F1``) and the predicted labels of each fold's test clips.
    """
    x, y = np.asarray(x), np.asarray(y)
    rows, predictions = [], []
    for fold, (train_i, val_i, test_i) in enumerate(splits):
        for part, idx in (("train", train_i), ("val", val_i), ("test", test_i)):
            if len(idx) == 0 or np.max(idx) >= len(x) or np.min(idx) < 0:
                raise ValueError(f"fold {fold + 1}: the {part} indices must be non-empty and lie in [0, {len(x)})")
        model, table = fit_on_validation(x, y, train_i, val_i, candidates, seed)
        chosen = table.iloc[int(table["val accuracy"].to_numpy().argmax())]
        y_pred = model.predict(x[test_i])
        scores = classification_metrics(y[test_i], y_pred, num_classes=num_classes)
        rows.append(
            {
                "fold": fold + 1,
                "model": chosen["model"],
                "C": chosen["C"],
                "val accuracy": chosen["val accuracy"],
                "test accuracy": scores["accuracy"],
                "test macro-F1": scores["macro_f1"],
            }
        )
        predictions.append(y_pred)
    return pd.DataFrame(rows), predictions


__all__ = [
    "CANDIDATES",
    "EgemapsFeatures",
    "EgemapsUnavailable",
    "N_FUNCTIONALS",
    "OPENSMILE_PIN",
    "egemaps_fold_scores",
    "extract_egemaps",
    "fit_on_validation",
    "make_classifier",
]
