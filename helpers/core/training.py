"""A plain PyTorch training loop: progress bars, validation each epoch, early stopping, best-weights restore.

A batch is either a dict (Hugging Face style, with a ``"labels"`` key; the model returns an object with
``.logits``) or a tuple ``(*inputs, labels)`` where ``model(*inputs)`` returns logits.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.core.metrics import classification_metrics


@dataclass
class History:
    """Per-epoch losses and metrics of a :func:`fit` run."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_macro_f1: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False

    def as_frame(self):
        import pandas as pd

        rows = {k: v for k, v in self.__dict__.items() if isinstance(v, list) and v}
        frame = pd.DataFrame(rows)
        frame.index = range(1, len(frame) + 1)
        frame.index.name = "epoch"
        return frame


def _move(batch, device: torch.device):
    if isinstance(batch, dict):
        return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    return tuple(v.to(device) if torch.is_tensor(v) else v for v in batch)


def forward_batch(model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the model on one batch and return ``(logits, labels)``."""
    if isinstance(batch, dict):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        output = model(**inputs)
        return getattr(output, "logits", output), batch["labels"]
    *inputs, labels = batch
    return model(*inputs), labels


@torch.no_grad()
def predict_logits(model: nn.Module, loader: Iterable, device: torch.device, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every batch in ``loader`` (model in eval mode)."""
    model.eval()
    all_logits, all_labels = [], []
    for batch in tqdm(loader, desc="predict", leave=False, disable=not progress):
        logits, labels = forward_batch(model, _move(batch, device))
        all_logits.append(logits.float().cpu())
        all_labels.append(labels.cpu())
    return torch.cat(all_logits).numpy(), torch.cat(all_labels).numpy()


def evaluate(model: nn.Module, loader: Iterable, device: torch.device, loss_fn: Callable | None = None) -> dict[str, float]:
    """Loss (when ``loss_fn`` is given) and :func:`classification_metrics` over ``loader``."""
    logits, labels = predict_logits(model, loader, device)
    metrics = classification_metrics(labels, logits.argmax(axis=1), num_classes=logits.shape[1])
    if loss_fn is not None:
        metrics["loss"] = float(loss_fn(torch.from_numpy(logits), torch.from_numpy(labels)))
    return metrics


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    device: torch.device,
    loss_fn: Callable | None = None,
    scheduler=None,
    scheduler_step: str = "batch",
    clip_grad_norm: float | None = None,
    patience: int | None = None,
    monitor: str = "val_loss",
    restore_best: bool = True,
    use_amp: bool | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` for up to ``epochs`` epochs and return its :class:`History`.

    - ``loss_fn`` defaults to cross-entropy; it is applied to ``(logits, labels)``.
    - ``scheduler`` steps after each batch (``scheduler_step="batch"``) or each epoch.
    - ``patience``: stop when ``monitor`` ("val_loss", "val_accuracy" or "val_macro_f1") has not improved for
      that many epochs; with ``restore_best`` the weights of the best epoch are put back at the end.
    - ``use_amp``: mixed precision on CUDA (default: on when the device is CUDA).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if monitor not in ("val_loss", "val_accuracy", "val_macro_f1"):
        raise ValueError(f"monitor must be val_loss, val_accuracy or val_macro_f1, not {monitor!r}")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    use_amp = device.type == "cuda" if use_amp is None else use_amp
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and device.type == "cuda")
    model.to(device)
    history = History()
    best_score, best_state, bad_epochs = -math.inf, None, 0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not progress)
        for batch in bar:
            batch = _move(batch, device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=use_amp):
                logits, labels = forward_batch(model, batch)
                loss = loss_fn(logits.float(), labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} in epoch {epoch}; lower the learning rate")
            scaler.scale(loss).backward()
            if clip_grad_norm is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None and scheduler_step == "batch":
                scheduler.step()
            total_loss += loss.item() * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum().item()
            seen += len(labels)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}")
        if scheduler is not None and scheduler_step == "epoch":
            scheduler.step()
        history.train_loss.append(total_loss / seen)
        history.train_accuracy.append(correct / seen)
        if val_loader is not None:
            val = evaluate(model, val_loader, device, loss_fn)
            history.val_loss.append(val["loss"])
            history.val_accuracy.append(val["accuracy"])
            history.val_macro_f1.append(val["macro_f1"])
            score = -val["loss"] if monitor == "val_loss" else val[monitor.removeprefix("val_")]
            if score > best_score:
                best_score, bad_epochs, history.best_epoch = score, 0, epoch
                if restore_best:
                    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            else:
                bad_epochs += 1
        history.epoch_seconds.append(time.perf_counter() - start)
        if progress:
            msg = f"epoch {epoch}: train loss {history.train_loss[-1]:.4f} acc {history.train_accuracy[-1]:.4f}"
            if val_loader is not None:
                msg += f" | val loss {history.val_loss[-1]:.4f} acc {history.val_accuracy[-1]:.4f} macro-F1 {history.val_macro_f1[-1]:.4f}"
            tqdm.write(msg)
        if patience is not None and val_loader is not None and bad_epochs >= patience:
            history.stopped_early = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
