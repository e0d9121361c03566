"""Plots the notebooks share: training curves, confusion matrices, label and length distributions."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def plot_history(history, title: str = "", ax=None):
    """Loss (left) and accuracy (right) per epoch for train and validation; marks the best epoch."""
    frame = history.as_frame() if hasattr(history, "as_frame") else pd.DataFrame(history)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5)) if ax is None else (ax[0].figure, ax)
    for col, style in (("train_loss", "-"), ("val_loss", "--")):
        if col in frame:
            axes[0].plot(frame.index, frame[col], style, marker="o", label=col.replace("_", " "))
    for col, style in (("train_accuracy", "-"), ("val_accuracy", "--"), ("val_macro_f1", ":")):
        if col in frame:
            axes[1].plot(frame.index, frame[col], style, marker="o", label=col.replace("_", " "))
    best = getattr(history, "best_epoch", -1)
    for a, ylabel in zip(axes, ("loss", "score")):
        if best > 0:
            a.axvline(best, color="grey", lw=0.8, ls=":")
        a.set_xlabel("epoch")
        a.set_ylabel(ylabel)
        a.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm: np.ndarray, labels: Sequence[str], normalize: bool = True, title: str = "", ax=None):
    """Heatmap of a confusion matrix; with ``normalize`` each row shows recall (row sums to 1)."""
    cm = np.asarray(cm)
    data = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    if ax is None:
        size = max(4.0, 0.7 * len(labels) + 2)
        _, ax = plt.subplots(figsize=(size, size * 0.85))
    sns.heatmap(
        data, annot=True, fmt=".2f" if normalize else "d", cmap="Blues", xticklabels=labels, yticklabels=labels,
        cbar=False, ax=ax, vmin=0, vmax=1 if normalize else None,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix"))
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    ax.figure.tight_layout()
    return ax.figure


def plot_label_distribution(frame: pd.DataFrame, label_col: str, split_col: str | None = None, title: str = "", ax=None):
    """Bar chart of label counts, one colour per split when ``split_col`` is given."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.2))
    order = frame[label_col].value_counts().index
    sns.countplot(data=frame, x=label_col, hue=split_col, order=order, ax=ax)
    ax.set_title(title)
    ax.set_xlabel("")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    ax.figure.tight_layout()
    return ax.figure


def plot_length_histogram(lengths: Sequence[int], title: str = "", unit: str = "tokens", ax=None, bins: int = 50):
    """Histogram of lengths with mean, standard deviation and maximum in the title."""
    lengths = np.asarray(lengths)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    ax.hist(lengths, bins=bins, color="tab:blue", alpha=0.8)
    ax.axvline(lengths.mean(), color="k", ls="--", lw=1)
    ax.set_xlabel(unit)
    ax.set_ylabel("count")
    ax.set_title(f"{title} mean {lengths.mean():.1f}, sd {lengths.std():.1f}, max {lengths.max()}".strip())
    ax.figure.tight_layout()
    return ax.figure
