"""One training on several processes (GPUs or machines) with DistributedDataParallel, and mixed precision.

A launcher starts one process per GPU (or CPU slot) and tells each its place through environment variables:

- ``torchrun --nproc_per_node 2 -m helpers.cli.train_text lstm ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``MASTER_ADDR`` and ``MASTER_PORT``;
- ``accelerate launch --multi_gpu --num_processes 2 -m helpers.cli.train_text lstm ...`` runs torchrun underneath, so
  it sets the same variables (and ``ACCELERATE_MIXED_PRECISION``, which :func:`default_precision` reads).

:func:`init_distributed` reads them and joins the process group (``nccl`` on CUDA, ``gloo`` on CPU); without
``WORLD_SIZE`` (a plain ``python -m ...``) it does nothing and every helper below works for one process.

**How the data are split.** Every rank computes the same *global* batches (same seed, same epoch) and takes
every ``world_size``-th example of each (:func:`shard`); the loss is the sum over the rank's examples divided by
the global batch size times ``world_size``, so DDP's gradient average is exactly the gradient of the global
batch's mean loss. Two GPUs with batch 32 therefore take the same steps as one GPU with batch 32 (up to
floating-point rounding), and bucketed batches (:class:`helpers.text.pipeline.BucketBatchSampler`) stay bucketed. The
usual ``torch.utils.data.DistributedSampler`` would give each rank its own batches of ``batch_size`` (so the
global batch grows with the number of GPUs) and pads the last shard with repeated examples, which biases
evaluation metrics; evaluation here shards the examples without padding and all-reduces the sums
(:func:`all_reduce_sum`) that the metrics are computed from.

**Mixed precision** (:class:`MixedPrecision`) only on CUDA: bf16 autocast where the GPU supports it, else fp16
autocast with a ``GradScaler``. On CPU and MPS the model trains in fp32.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from helpers.core.env import cpu_supports_bf16, get_device

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class DistributedError(RuntimeError):
    """The launcher's environment or the process group is not usable (the message says what to fix)."""


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world_size`` processes, its device and the backend."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: a single process, no process group

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only process that writes files."""
        return self.rank == 0


def _int_variable(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(
    device: str | None = None, backend: str | None = None, timeout_minutes: float = 30.0
) -> DistContext:
    """Join the process group described by the launcher's environment variables; a no-op for one process.

    - ``device``: "cpu", "cuda" or "mps" to force one (default: CUDA, then MPS, then CPU). With several
      processes on CUDA, process ``LOCAL_RANK`` takes GPU ``LOCAL_RANK``.
    - ``backend``: default ``nccl`` on CUDA and ``gloo`` on CPU.
    """
    world_size = _int_variable("WORLD_SIZE", os.environ.get("WORLD_SIZE", "1"))
    if world_size < 1:
        raise DistributedError(f"WORLD_SIZE must be at least 1, got {world_size}")
    if world_size == 1:
        return DistContext(device=get_device(device))
    missing = [name for name in LAUNCHER_VARIABLES if not os.environ.get(name)]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: start the script with "
            "`torchrun --nproc_per_node N -m ...` or `accelerate launch --num_processes N -m ...`, "
            "which set all of " + ", ".join(LAUNCHER_VARIABLES)
        )
    rank = _int_variable("RANK", os.environ["RANK"])
    local_rank = _int_variable("LOCAL_RANK", os.environ["LOCAL_RANK"])
    if not 0 <= rank < world_size:
        raise DistributedError(f"RANK={rank} is outside 0..{world_size - 1}")
    use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    if device is not None and device.startswith("cuda") and not torch.cuda.is_available():
        raise DistributedError("device 'cuda' was requested but CUDA is not available on this machine")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} GPU(s); "
                "start at most one process per GPU (--nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)
        run_device = torch.device("cuda", local_rank)
    else:
        run_device = torch.device("cpu")  # MPS has no collective backend: several processes run on CPU
    backend = backend or ("nccl" if use_cuda else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(
            backend,
            init_method="env://",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(minutes=timeout_minutes),
        )
    return DistContext(rank, world_size, local_rank, run_device, backend)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (call once at the end of a script)."""
    if ctx.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.is_distributed:
        dist.barrier()


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``model`` on ``ctx.device``, wrapped in DistributedDataParallel when there are several processes.

    On several GPUs BatchNorm layers become SyncBatchNorm, so the batch statistics are those of the global
    batch; on CPU (gloo) each rank normalises with the statistics of its own share.
    """
    model.to(ctx.device)
    if not ctx.is_distributed:
        return model
    if ctx.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[ctx.device.index], output_device=ctx.device.index)
    return nn.parallel.DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def shard(items: Sequence[int], ctx: DistContext) -> list[int]:
    """This rank's share of ``items``: every ``world_size``-th element, starting at ``rank``."""
    return list(items[ctx.rank :: ctx.world_size])


def all_reduce_sum(values: Sequence[float] | np.ndarray, ctx: DistContext) -> np.ndarray:
    """Element-wise sum of ``values`` over all ranks (float64), e.g. loss sums, counts or a confusion matrix."""
    array = np.asarray(values, dtype=np.float64)
    if not ctx.is_distributed:
        return array
    tensor = torch.from_numpy(array.copy()).to(ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (picklable objects, e.g. RNG states)."""
    if not ctx.is_distributed:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank (what other ranks pass is ignored)."""
    if not ctx.is_distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@torch.no_grad()
def replica_difference(model: nn.Module, ctx: DistContext) -> float:
    """Largest absolute difference between this rank's parameters and rank 0's (0.0 for one process).

    DDP keeps the replicas equal by construction; this checks it once at the end of a run.
    """
    if not ctx.is_distributed:
        return 0.0
    flat = torch.cat([p.detach().float().reshape(-1) for p in unwrap(model).parameters()]).to(ctx.device)
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    diff = torch.tensor([(flat - reference).abs().max().item()], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff.item())


# --------------------------------------------------------------------------- mixed precision


def default_precision() -> str:
    """``--mixed_precision`` of ``accelerate launch`` when the script runs under it, else "auto"."""
    value = os.environ.get("ACCELERATE_MIXED_PRECISION", "").lower()
    return {"no": "fp32", "fp16": "fp16", "bf16": "bf16"}.get(value, "auto")


class MixedPrecision:
    """Autocast and loss scaling for one device: bf16/fp16 on CUDA, fp32 elsewhere unless bf16 is asked for.

    ``precision``: "auto" (bf16 on GPUs with native bf16, else fp16; fp32 off CUDA), "fp32", "bf16" or "fp16".
    "bf16" on a CPU with bfloat16 matrix units (:func:`helpers.core.env.cpu_supports_bf16`: recent Xeons) autocasts
    to bf16 there (about 1.5x faster for transformer fine-tuning on this course's 2-core machine); "auto" stays fp32
    on a CPU, so nothing changes unless asked. Other requests off CUDA give fp32 and say so in :attr:`note`.
    """

    def __init__(self, precision: str, device: torch.device):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        self.note = ""
        # bf16 autocast on a CPU's bf16 units, when asked for; no loss scaling needed (bf16 has fp32's range)
        cpu_bf16 = device.type == "cpu" and precision == "bf16" and cpu_supports_bf16()
        if device.type != "cuda" and not cpu_bf16:
            if precision in ("bf16", "fp16"):
                self.note = (
                    f"{precision} autocast is used on CUDA (and bf16 on CPUs with bf16 units) only; "
                    f"training in fp32 on {device.type}"
                )
            precision = "fp32"
        elif precision == "auto":
            # bf16 where the GPU computes it natively (Ampere and later); fp16 + loss scaling on older GPUs (T4)
            precision = "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
        self.precision, self.device = precision, device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")

    def autocast(self):
        """Context manager for the forward pass (does nothing in fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def step(
        self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, parameters, clip_grad_norm: float | None = None
    ) -> None:
        """Backward pass, optional gradient clipping and optimizer step (scaled in fp16)."""
        self.scaler.scale(loss).backward()
        if clip_grad_norm is not None:
            self.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(parameters, clip_grad_norm)
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict | None:
        return self.scaler.state_dict() if self.scaler.is_enabled() else None

    def load_state_dict(self, state: dict | None) -> None:
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)


__all__ = [
    "DistContext",
    "DistributedError",
    "init_distributed",
    "shutdown",
    "barrier",
    "wrap_model",
    "unwrap",
    "shard",
    "all_reduce_sum",
    "all_gather_objects",
    "broadcast_object",
    "replica_difference",
    "default_precision",
    "MixedPrecision",
    "PRECISIONS",
]
