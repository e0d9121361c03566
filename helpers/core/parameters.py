"""Model parameters: how many a model trains, and the usual AdamW grouping (no weight decay on biases and norms)."""

from __future__ import annotations

from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight decay on matrices and kernels (``ndim > 1``), none on biases, LayerNorm and
    BatchNorm scales (``ndim <= 1``), which decay would only pull towards zero. Pass to ``torch.optim.AdamW``."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


__all__ = ["count_parameters", "weight_decay_groups"]
