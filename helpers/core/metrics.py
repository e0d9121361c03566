"""Classification metrics computed from the confusion matrix (checked against scikit-learn in the tests)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _as_label_array(values: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.dtype.kind == "f":
        if np.isnan(array).any():
            raise ValueError(f"{name} contains NaN at positions {np.flatnonzero(np.isnan(array))[:10].tolist()}")
        if not np.all(array == np.round(array)):
            raise ValueError(f"{name} must hold integer class ids")
        array = array.astype(int)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class ids, got dtype {array.dtype}")
    return array


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int | None = None) -> np.ndarray:
    """``cm[i, j]`` counts examples of true class ``i`` predicted as ``j``."""
    y_true = _as_label_array(y_true, "y_true")
    y_pred = _as_label_array(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("cannot score an empty set of predictions")
    if min(y_true.min(), y_pred.min()) < 0:
        raise ValueError("class ids must be non-negative")
    k = int(max(y_true.max(), y_pred.max()) + 1) if num_classes is None else num_classes
    if max(y_true.max(), y_pred.max()) >= k:
        raise ValueError(f"a class id is >= num_classes={k}")
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den != 0)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of each class (0 where a class is never predicted or absent)."""
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def matthews_corrcoef(cm: np.ndarray) -> float:
    """Multi-class Matthews correlation coefficient (Gorodkin's R_K) from a confusion matrix."""
    cm = cm.astype(float)
    t, p = cm.sum(axis=1), cm.sum(axis=0)
    c, s = np.trace(cm), cm.sum()
    den = np.sqrt((s**2 - p @ p) * (s**2 - t @ t))
    return float((c * s - t @ p) / den) if den else 0.0


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], num_classes: int | None = None, prefix: str = ""
) -> dict[str, float]:
    """Accuracy, macro and weighted precision/recall/F1, balanced accuracy and MCC, as plain floats.

    Balanced accuracy is the mean recall over the classes present in ``y_true`` (scikit-learn's definition).
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    scores = per_class_scores(cm)
    support = scores["support"]
    present = support > 0
    weights = support / support.sum()
    result = {
        "accuracy": float(np.trace(cm) / cm.sum()),
        "balanced_accuracy": float(scores["recall"][present].mean()),
        "mcc": matthews_corrcoef(cm),
        "n": int(cm.sum()),
    }
    for name in ("precision", "recall", "f1"):
        # macro averages over every class that occurs in y_true or y_pred (as scikit-learn does)
        seen = present | (cm.sum(axis=0) > 0)
        result[f"macro_{name}"] = float(scores[name][seen].mean())
        result[f"weighted_{name}"] = float((scores[name] * weights).sum())
    return {f"{prefix}{k}": v for k, v in result.items()}


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str]) -> pd.DataFrame:
    """Per-class precision/recall/F1/support as a table, with macro and weighted averages at the bottom."""
    cm = confusion_matrix(y_true, y_pred, len(label_names))
    scores = per_class_scores(cm)
    table = pd.DataFrame(scores, index=list(label_names))
    overall = classification_metrics(y_true, y_pred, len(label_names))
    for avg in ("macro", "weighted"):
        table.loc[f"{avg} avg"] = [
            overall[f"{avg}_precision"],
            overall[f"{avg}_recall"],
            overall[f"{avg}_f1"],
            cm.sum(),
        ]
    table["support"] = table["support"].astype(int)
    return table.round(4)


FOLD_METRICS = ("accuracy", "micro_f1", "macro_f1", "balanced_accuracy", "weighted_f1", "mcc", "n")


def fold_metrics(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict[str, float]:
    """The scores a k-fold table reports (:data:`FOLD_METRICS`): accuracy, micro-F1, macro-F1, balanced accuracy,
    weighted F1, MCC and the number of examples.

    For single-label classification micro-F1 equals accuracy (every wrong prediction is one false positive and
    one false negative); it is listed because the KEMDy20 reference reports it.
    """
    m = classification_metrics(y_true, y_pred, num_classes)
    return {
        "accuracy": m["accuracy"],
        "micro_f1": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "balanced_accuracy": m["balanced_accuracy"],
        "weighted_f1": m["weighted_f1"],
        "mcc": m["mcc"],
        "n": m["n"],
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value) of fold or seed scores."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("no values to summarise")
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0
