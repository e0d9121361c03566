"""Plots the notebooks share: training curves, confusion matrices, label and length distributions."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import font_manager

#: Font families with Hangul, in the order ``use_korean_font`` tries them among the fonts installed on the system.
KOREAN_FONT_FAMILIES = (
    "NanumGothic",
    "NanumBarunGothic",
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "Source Han Sans KR",
    "UnDotum",
    "Malgun Gothic",
    "AppleGothic",
    "Apple SD Gothic Neo",
)
_warned_no_korean_font = False


def _packaged_nanum_font() -> Path | None:
    """NanumGothic.ttf shipped inside the ``koreanize-matplotlib`` package, found without importing it.

    Importing ``koreanize_matplotlib`` changes the global font on import and needs ``distutils`` (gone in Python 3.12),
    so only its font file is used.
    """
    try:
        spec = importlib.util.find_spec("koreanize_matplotlib")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "fonts" / "NanumGothic.ttf"
        if path.is_file():
            return path
    return None


def find_korean_font() -> str | None:
    """The family name of a font with Hangul: koreanize-matplotlib's NanumGothic, else one on the system, else None."""
    packaged = _packaged_nanum_font()
    if packaged is not None:
        font_manager.fontManager.addfont(str(packaged))
        return font_manager.FontProperties(fname=str(packaged)).get_name()
    installed = {font.name for font in font_manager.fontManager.ttflist}
    for family in KOREAN_FONT_FAMILIES:
        if family in installed:
            return family
    return None


def use_korean_font() -> str | None:
    """Make matplotlib draw Hangul (plot labels in Korean); returns the font family used, or None.

    Uses the NanumGothic font of ``koreanize-matplotlib`` (in requirements.txt) or a Korean font installed on the
    system (``apt-get install fonts-nanum``). The Korean font goes first in the sans-serif list and DejaVu Sans
    stays behind it, so glyphs it lacks (the minus sign, Latin symbols) still come from DejaVu Sans. Without any
    Korean font it warns once and changes nothing: Hangul then shows as empty boxes.
    """
    global _warned_no_korean_font
    family = find_korean_font()
    if family is None:
        if not _warned_no_korean_font:
            warnings.warn(
                "no font with Hangul found: Korean plot labels will show as boxes "
                "(pip install koreanize-matplotlib==0.1.1, or apt-get install fonts-nanum and restart the kernel)",
                stacklevel=2,
            )
            _warned_no_korean_font = True
        return None
    rest = [name for name in matplotlib.rcParams["font.sans-serif"] if name != family]
    matplotlib.rcParams["font.sans-serif"] = [family, *rest]
    matplotlib.rcParams["font.family"] = [family, "DejaVu Sans"]  # a list: matplotlib falls back glyph by glyph
    return family


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
        data,
        annot=True,
        fmt=".2f" if normalize else "d",
        cmap="Blues",
        xticklabels=labels,
        yticklabels=labels,
        cbar=False,
        ax=ax,
        vmin=0,
        vmax=1 if normalize else None,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix"))
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    ax.figure.tight_layout()
    return ax.figure


def plot_label_distribution(
    frame: pd.DataFrame, label_col: str, split_col: str | None = None, title: str = "", ax=None
):
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
