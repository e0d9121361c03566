"""Loss functions for imbalanced classes and soft (distribution) targets; each is ``loss(logits, target)``.

- :func:`class_weights`: "balanced" per-class weights for a weighted cross-entropy;
- :class:`FocalLoss`: down-weights the examples the model already gets right;
- :func:`soft_cross_entropy` / :class:`SoftTargetLoss`: cross-entropy against a label *distribution* (rater-weighted
  soft labels, notebook 06); for class ids it equals the usual cross-entropy;
- :func:`make_loss`: ``"ce"``, ``"weighted"`` or ``"focal"`` by name (the CLI's ``--loss``).

Targets are ``[n]`` class ids or ``[n, C]`` rows of probabilities (:func:`as_targets`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LOSSES = ("ce", "weighted", "focal")


def as_targets(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[n, C]`` float targets: one-hot rows for class ids, distributions as they are (checked for ``C``)."""
    if target.dim() == 1:
        return F.one_hot(target.long(), num_classes).float()
    if target.shape[-1] != num_classes:
        raise ValueError(f"soft targets have {target.shape[-1]} classes, the logits {num_classes}")
    return target.float()


def class_weights(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """ "Balanced" class weights ``n / (k · count_c)`` (scikit-learn's ``class_weight="balanced"``)."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=num_classes).astype(float)
    if (counts == 0).any():
        raise ValueError(f"classes {np.flatnonzero(counts == 0).tolist()} have no examples")
    return torch.tensor(counts.sum() / (num_classes * counts), dtype=torch.float32)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): ``-Σ_c t_c (1 - p_c)^γ log p_c``, mean over examples.

    Down-weights the examples the model already gets right, so training time goes to the hard ones; γ = 0 is
    plain cross-entropy. ``weight`` (per class, like :func:`class_weights`) multiplies each term.
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma, self.weight = gamma, weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t = as_targets(target, logits.shape[-1])
        logp = F.log_softmax(logits.float(), dim=-1)
        terms = t * (1 - logp.exp()).pow(self.gamma) * logp
        if self.weight is not None:
            terms = terms * self.weight.to(logp.device, logp.dtype)
        return -terms.sum(-1).mean()


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against a target *distribution*: mean over examples of ``-Σ_c w_c t_c log p_c / Σ_c w_c t_c``.

    ``target`` is ``[n, C]`` probabilities (rows summing to 1) or ``[n]`` class ids; for class ids (one-hot
    targets) it equals ``nn.CrossEntropyLoss(weight=weight)`` exactly, class-weighted mean included.
    """
    t = as_targets(target, logits.shape[-1])
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


def make_loss(kind: str, train_labels: Sequence[int], num_classes: int) -> nn.Module:
    """``"ce"``: cross-entropy; ``"weighted"``: cross-entropy with :func:`class_weights` of ``train_labels``;
    ``"focal"``: :class:`FocalLoss` (γ = 2)."""
    if kind == "ce":
        return nn.CrossEntropyLoss()
    if kind == "weighted":
        return nn.CrossEntropyLoss(weight=class_weights(train_labels, num_classes))
    if kind == "focal":
        return FocalLoss(gamma=2.0)
    raise ValueError(f"loss must be 'ce', 'weighted' or 'focal', got {kind!r}")


__all__ = ["LOSSES", "as_targets", "class_weights", "FocalLoss", "soft_cross_entropy", "SoftTargetLoss", "make_loss"]
