"""The course's one training loop, shared by the notebooks and the command-line scripts.

:func:`fit` trains a model for some epochs with validation after each one, early stopping and best-weights restore.
Everything the scripts need is an option of the same loop, so a notebook and ``python -m helpers.cli.train_text``
take the same steps:

- ``checkpoint_dir``: a checkpoint after every epoch (:mod:`helpers.core.checkpoint`: weights, optimizer, scheduler,
  loss scaler, RNG states, history and early-stopping counters); ``resume`` continues from one exactly, so a run
  killed and resumed ends with the weights an uninterrupted run ends with.
- ``ctx``: several processes with DistributedDataParallel (:mod:`helpers.core.distributed`). Give it loaders whose
  batches are :class:`ShardBatch` (:class:`IndexBatches` makes them) and the gradient is that of the *global* batch.
- ``precision``: mixed precision on CUDA (bf16 where the GPU has it, else fp16 with loss scaling); fp32 elsewhere.
- ``loss_fn`` any ``loss_fn(logits, labels)`` (:mod:`helpers.core.losses` has weighted, focal and soft-label ones);
  ``val_loss_fn`` scores validation (default: the same), ``batch_transform`` changes each training batch
  (e.g. :class:`helpers.multimodal.fusion.ModalityDropout`).

**One set of defaults.** The best epoch is the one with the lowest **validation loss** (``monitor="val_loss"``): the
loss is defined for every loss function, moves smoothly from epoch to epoch and uses every predicted probability,
where accuracy and macro-F1 on a few hundred validation examples jump by whole examples. A recipe that chooses by
macro-F1 (notebook 02's final LSTM, ``train_text lstm``) says ``monitor="val_macro_f1"``. The metric keys are
``val_loss``, ``val_accuracy`` and ``val_macro_f1`` (``macro_f1`` everywhere). A scheduler steps after every
optimizer step (``scheduler_step="batch"``: warm-up and one-cycle schedules count steps); ``"epoch"`` steps it once
at the end of each epoch (StepLR-style schedules).

A batch is either a dict (Hugging Face style, with a ``"labels"`` key; the model returns an object with
``.logits``) or a tuple ``(*inputs, labels)`` where ``model(*inputs)`` returns logits.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.core.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    restore,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from helpers.core.distributed import (
    DistContext,
    MixedPrecision,
    all_gather_objects,
    all_reduce_sum,
    shard,
    unwrap,
    wrap_model,
)
from helpers.core.metrics import classification_metrics

MONITORS = ("val_loss", "val_accuracy", "val_macro_f1")
DEFAULT_MONITOR = "val_loss"
SCHEDULER_STEPS = ("batch", "epoch")
_PER_EPOCH = ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "val_macro_f1", "epoch_seconds")


class TrainingError(RuntimeError):
    """A training run cannot start or continue (the message says what to change)."""


class LossNotFiniteError(TrainingError, FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class History:
    """Per-epoch losses and metrics of a :func:`fit` run (lists indexed by epoch - 1)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    val_macro_f1: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    best_validation: dict | None = None  # validation metrics of the best epoch (loss, accuracy, macro_f1, ...)
    resumed_at: list[int] = field(default_factory=list)  # epochs a resumed run continued after
    step_loss: list[float] = field(default_factory=list)  # training loss of every optimiser step (the learning curve)

    def as_frame(self) -> pd.DataFrame:
        rows = {k: getattr(self, k) for k in _PER_EPOCH if getattr(self, k)}
        frame = pd.DataFrame(rows)
        frame.index = range(1, len(frame) + 1)
        frame.index.name = "epoch"
        return frame

    def rows(self) -> list[dict[str, Any]]:
        """One dict per epoch: ``epoch``, ``train_loss``, ``train_accuracy``, the ``val_*`` metrics, ``seconds``."""
        out = []
        for i in range(len(self.train_loss)):
            row: dict[str, Any] = {
                "epoch": i + 1,
                "train_loss": self.train_loss[i],
                "train_accuracy": self.train_accuracy[i],
            }
            if i < len(self.val_loss):
                row.update(
                    val_loss=self.val_loss[i], val_accuracy=self.val_accuracy[i], val_macro_f1=self.val_macro_f1[i]
                )
            row["seconds"] = self.epoch_seconds[i]
            out.append(row)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Plain data (lists, numbers, dicts) that a weights_only checkpoint can hold."""
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "History":
        return cls(**{k: v for k, v in state.items() if k in cls.__dataclass_fields__})


# --------------------------------------------------------------------------- batches


@dataclass
class ShardBatch:
    """This process's share of one global batch, and the global batch's size (for the loss scaling under DDP)."""

    batch: Any
    global_size: int


class IndexBatches:
    """A training loader over ``dataset[i]`` for the index lists ``epoch_batches(epoch)`` gives (0-based epochs).

    Every process computes the same global batches (they depend only on the epoch and a seed, so a resumed run
    sees the same ones too) and collates its share (:func:`helpers.core.distributed.shard`), yielded as a
    :class:`ShardBatch`. A last global batch too small to give every process an example is skipped (counted in
    :attr:`skipped`). :func:`fit` calls :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        dataset: Sequence,
        epoch_batches: Callable[[int], list[list[int]]],
        collate: Callable[[list], Any],
        ctx: DistContext | None = None,
    ):
        self.dataset, self.epoch_batches, self.collate = dataset, epoch_batches, collate
        self.ctx = ctx or DistContext()
        self.epoch, self.skipped = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.epoch_batches(self.epoch))

    def __iter__(self):
        self.skipped = 0
        for global_batch in self.epoch_batches(self.epoch):
            if len(global_batch) < self.ctx.world_size:
                self.skipped += len(global_batch)
                continue
            yield ShardBatch(self.collate([self.dataset[i] for i in shard(global_batch, self.ctx)]), len(global_batch))


def eval_batches(
    dataset: Sequence, collate: Callable[[list], Any], batch_size: int = 256, ctx: DistContext | None = None
) -> list:
    """An evaluation loader: this process's share of ``dataset`` (every ``world_size``-th example, no padding),
    in order, collated in batches of ``batch_size`` (lazily, one batch at a time)."""
    indices = shard(range(len(dataset)), ctx or DistContext())

    class _Batches:
        def __len__(self):
            return math.ceil(len(indices) / batch_size)

        def __iter__(self):
            for start in range(0, len(indices), batch_size):
                yield collate([dataset[i] for i in indices[start : start + batch_size]])

    return _Batches()


def shuffled_batches(n: int, batch_size: int, seed: int) -> Callable[[int], list[list[int]]]:
    """``epoch_batches`` for plain shuffled batches: a permutation of ``range(n)`` fixed by ``(seed, epoch)``."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"need n >= 1 and batch_size >= 1, got {n} and {batch_size}")

    def batches(epoch: int) -> list[list[int]]:
        order = np.random.default_rng([seed, epoch]).permutation(n).tolist()
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]

    return batches


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


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict_logits(
    model: nn.Module, loader: Iterable, device: torch.device, progress: bool = False, ctx: DistContext | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every batch in ``loader`` (model in eval mode, fp32).

    With ``ctx`` of several processes each scores its share and every process gets all of them (rank by rank)."""
    model = unwrap(model)  # a DDP wrapper would synchronise buffers at every forward pass
    model.eval()
    all_logits, all_labels = [], []
    for batch in tqdm(loader, desc="predict", leave=False, disable=not progress):
        logits, labels = forward_batch(model, _move(batch, device))
        all_logits.append(logits.float().cpu())
        all_labels.append(labels.cpu())
    logits = torch.cat(all_logits).numpy() if all_logits else np.zeros((0, 0), dtype=np.float32)
    labels = torch.cat(all_labels).numpy() if all_labels else np.zeros(0, dtype=np.int64)
    if ctx is not None and ctx.is_distributed:
        parts = [p for p in all_gather_objects((logits, labels), ctx) if len(p[1])]
        logits, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return logits, labels


def evaluate(
    model: nn.Module,
    loader: Iterable,
    device: torch.device,
    loss_fn: Callable | None = None,
    ctx: DistContext | None = None,
) -> dict[str, float]:
    """Loss (when ``loss_fn`` is given) and :func:`classification_metrics` over ``loader`` (over every process's
    share when ``ctx`` has several: the same numbers as one process scoring everything)."""
    logits, labels = predict_logits(model, loader, device, ctx=ctx)
    metrics = classification_metrics(labels, logits.argmax(axis=1), num_classes=logits.shape[1])
    if loss_fn is not None:
        metrics["loss"] = float(loss_fn(torch.from_numpy(logits), torch.from_numpy(labels)))
    return metrics


# --------------------------------------------------------------------------- the loop


def resolve_precision(precision: str | None, use_amp: bool | None) -> str:
    """``precision`` when given; else ``use_amp`` (the older flag): True → "fp16", False → "fp32", None → "auto"."""
    if precision is not None:
        return precision
    return "auto" if use_amp is None else ("fp16" if use_amp else "fp32")


def _resume_checkpoint(resume, checkpoint_dir: Path | None) -> dict | None:
    if resume is None:
        if checkpoint_dir is not None and (newest := latest_checkpoint(checkpoint_dir)) is not None:
            raise TrainingError(
                f"{checkpoint_dir} already holds checkpoints (newest: {newest.name}); pass "
                "resume='auto' to continue that run, or choose another checkpoint_dir"
            )
        return None
    if isinstance(resume, dict):
        return resume
    if resume == "auto":
        if checkpoint_dir is None:
            raise ValueError("resume='auto' needs checkpoint_dir")
        path = latest_checkpoint(checkpoint_dir)
        return None if path is None else {**load_checkpoint(path), "path": str(path)}
    return {**load_checkpoint(resume), "path": str(resume)}


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
    monitor: str = DEFAULT_MONITOR,
    restore_best: bool = True,
    use_amp: bool | None = None,
    progress: bool = True,
    *,
    precision: str | None = None,
    val_loss_fn: Callable | None = None,
    batch_transform: Callable | None = None,
    checkpoint_dir: str | Path | None = None,
    keep_checkpoints: int = 2,
    resume: str | Path | dict | None = None,
    config: dict | None = None,
    generators: Sequence[np.random.Generator] = (),
    ctx: DistContext | None = None,
    on_epoch_end: Callable[[int, History, Path | None], Any] | None = None,
    log: Callable[[str], Any] | None = None,
) -> History:
    """Train ``model`` for up to ``epochs`` epochs and return its :class:`History` (see the module docstring).

    - ``loss_fn(logits, labels)`` defaults to cross-entropy; ``val_loss_fn`` (default ``loss_fn``) gives ``val_loss``.
    - ``scheduler`` steps after each batch (``scheduler_step="batch"``, the default) or at the end of each epoch.
    - ``patience``: stop when ``monitor`` ("val_loss", "val_accuracy" or "val_macro_f1") has not improved for
      that many epochs; with ``restore_best`` the weights of the best epoch are put back at the end.
    - ``precision``: "auto" (bf16/fp16 autocast on CUDA, fp32 elsewhere), "fp32", "bf16" or "fp16". The older
      ``use_amp`` still works when ``precision`` is not given: True is "fp16", False "fp32".
    - ``batch_transform(batch)``: applied to every training batch (on the device) before the forward pass.
    - ``checkpoint_dir``: write ``epoch-NNNN.pt`` there after every epoch, keeping the newest ``keep_checkpoints``;
      ``config`` (the run's settings) and the states of ``generators`` (NumPy generators the data draw from) go with
      them. A folder that already holds checkpoints is refused unless ``resume`` is given: ``"auto"`` (the newest
      one there, or a fresh start), a checkpoint file, or a checkpoint dict read by
      :func:`helpers.core.checkpoint.load_checkpoint`.
    - ``ctx``: the process group of a DDP run (:func:`helpers.core.distributed.init_distributed`); only rank 0
      writes checkpoints. ``device`` is then ``ctx.device``.
    - ``on_epoch_end(epoch, history, checkpoint_path)`` runs after each epoch (on every rank); ``log`` receives the
      per-epoch lines (default: printed when ``progress``).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be val_loss, val_accuracy or val_macro_f1, not {monitor!r}")
    if scheduler_step not in SCHEDULER_STEPS:
        raise ValueError(f"scheduler_step must be 'batch' or 'epoch', not {scheduler_step!r}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be at least 1 (or None for no early stopping), got {patience}")
    ctx = ctx or DistContext(device=device)
    device = ctx.device
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    val_loss_fn = val_loss_fn or loss_fn
    amp = MixedPrecision(resolve_precision(precision, use_amp), device)
    log = log or (tqdm.write if progress and ctx.is_main else (lambda message: None))
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None

    model.to(device)
    history, best_score, best_state, bad_epochs, start_epoch = History(), -math.inf, None, 0, 1
    checkpoint = _resume_checkpoint(resume, checkpoint_dir)
    if checkpoint is not None:
        restore(checkpoint, model, optimizer, scheduler)
        amp.load_state_dict(checkpoint.get("scaler"))
        states = checkpoint.get("rng") or []
        if states:
            set_rng_state(states[ctx.rank] if len(states) == ctx.world_size else states[0], generators)
        saved = checkpoint.get("state") or {}
        history = _saved_history(saved)
        best_score = saved.get("best_score", -math.inf)
        best_state, bad_epochs = saved.get("best_model"), saved.get("bad_epochs", 0)
        history.resumed_at = [*history.resumed_at, int(checkpoint["epoch"])]
        start_epoch = int(checkpoint["epoch"]) + 1
        log(f"resumed from {checkpoint.get('path', 'a checkpoint')} (epoch {checkpoint['epoch']} of {epochs})")
    train_model = wrap_model(model, ctx)

    for epoch in range(start_epoch, epochs + 1):
        if history.stopped_early:
            break
        start = time.perf_counter()
        train_model.train()
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch - 1)
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, seen
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not (progress and ctx.is_main))
        for batch in bar:
            scale = 1.0
            if isinstance(batch, ShardBatch):
                batch, global_size = batch.batch, batch.global_size
            else:
                global_size = None
            batch = _move(batch, device)
            if batch_transform is not None:
                batch = batch_transform(batch)
            optimizer.zero_grad(set_to_none=True)
            with amp.autocast():
                logits, labels = forward_batch(train_model, batch)
            loss = loss_fn(logits.float(), labels)
            if global_size is not None:
                # DDP averages the ranks' gradients: scaled so, that average is the gradient of the global batch's mean
                scale = len(labels) * ctx.world_size / global_size
            loss_value = loss.item()
            history.step_loss.append(loss_value)  # this process's batch under DDP
            if not ctx.is_distributed and not math.isfinite(loss_value):  # under DDP: checked on the epoch's sums
                raise _not_finite(loss_value, epoch, checkpoint_dir)
            amp.step(loss * scale if scale != 1.0 else loss, optimizer, train_model.parameters(), clip_grad_norm)
            if scheduler is not None and scheduler_step == "batch":
                scheduler.step()
            n = len(labels)
            totals += torch.tensor(
                [loss_value * n, (logits.argmax(dim=1) == labels).sum().item(), n], dtype=torch.float64
            )
            bar.set_postfix(loss=f"{totals[0].item() / totals[2].item():.4f}")
        loss_sum, correct, seen = all_reduce_sum(totals.numpy(), ctx)
        if seen == 0:
            raise TrainingError(f"epoch {epoch} had no training batch")
        if not math.isfinite(loss_sum):
            raise _not_finite(loss_sum, epoch, checkpoint_dir)
        if getattr(train_loader, "skipped", 0):
            log(
                f"epoch {epoch}: {train_loader.skipped} example(s) of a last batch smaller than the number of "
                "processes skipped"
            )
        if scheduler is not None and scheduler_step == "epoch":
            scheduler.step()
        history.train_loss.append(float(loss_sum / seen))
        history.train_accuracy.append(float(correct / seen))
        if val_loader is not None:
            val = evaluate(train_model, val_loader, device, val_loss_fn, ctx)
            history.val_loss.append(val["loss"])
            history.val_accuracy.append(val["accuracy"])
            history.val_macro_f1.append(val["macro_f1"])
            score = -val["loss"] if monitor == "val_loss" else val[monitor.removeprefix("val_")]
            if score > best_score:
                best_score, bad_epochs, history.best_epoch, history.best_validation = score, 0, epoch, val
                if restore_best:
                    best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
                history.stopped_early = patience is not None and bad_epochs >= patience
        else:
            history.best_epoch = epoch
        history.epoch_seconds.append(time.perf_counter() - start)
        path = None
        if checkpoint_dir is not None:
            rngs = all_gather_objects(rng_state(generators), ctx)
            if ctx.is_main:
                state = {
                    "history": history.state_dict(),
                    "best_score": best_score,
                    "bad_epochs": bad_epochs,
                    "best_model": best_state,
                }
                path = save_checkpoint(
                    checkpoint_dir,
                    epoch,
                    model,
                    optimizer,
                    scheduler,
                    amp.state_dict(),
                    config,
                    state,
                    rngs,
                    keep=keep_checkpoints,
                )
        msg = f"epoch {epoch}: train loss {history.train_loss[-1]:.4f} acc {history.train_accuracy[-1]:.4f}"
        if val_loader is not None:
            msg += (
                f" | val loss {history.val_loss[-1]:.4f} acc {history.val_accuracy[-1]:.4f} "
                f"macro-F1 {history.val_macro_f1[-1]:.4f}"
            )
        log(msg + (f" | {history.epoch_seconds[-1]:.1f} s → {path.name}" if path is not None else ""))
        if on_epoch_end is not None:
            on_epoch_end(epoch, history, path)
        if history.stopped_early:
            log(f"early stop: no better {monitor} for {patience} epochs (best epoch {history.best_epoch})")
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def _saved_history(saved: dict) -> History:
    """The :class:`History` in a checkpoint's loop state (also the per-epoch rows the script loop wrote before it
    ran on :func:`fit`)."""
    kept = saved.get("history") or {}
    if isinstance(kept, dict):
        return History.from_state(kept)
    history = History(
        best_epoch=saved.get("best_epoch", -1),
        stopped_early=saved.get("stopped_early", False),
        best_validation=saved.get("best_validation"),
        resumed_at=list(saved.get("resumed_at", [])),
    )
    for row in kept:
        for key in _PER_EPOCH:
            source = "seconds" if key == "epoch_seconds" else key
            if source in row:
                getattr(history, key).append(row[source])
    return history


def _not_finite(value: float, epoch: int, checkpoint_dir: Path | None) -> LossNotFiniteError:
    where = f"; the checkpoints in {checkpoint_dir} are from before it" if checkpoint_dir is not None else ""
    return LossNotFiniteError(
        f"the training loss became {value} in epoch {epoch}; lower the learning rate (or train in fp32){where}"
    )


__all__ = [
    "MONITORS",
    "DEFAULT_MONITOR",
    "SCHEDULER_STEPS",
    "TrainingError",
    "LossNotFiniteError",
    "History",
    "ShardBatch",
    "IndexBatches",
    "eval_batches",
    "shuffled_batches",
    "forward_batch",
    "predict_logits",
    "evaluate",
    "resolve_precision",
    "fit",
]
