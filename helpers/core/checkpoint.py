"""Training checkpoints that survive a crash and load without running code.

- :func:`save_checkpoint` writes model, optimizer, scheduler, loss-scaler, epoch, RNG states and the run's
  config to ``epoch-NNNN.pt`` atomically: into a temporary file in the same folder, flushed to disk
  (``fsync``), then renamed over the final name (``os.replace``). A crash or ``kill -9`` leaves either the
  previous checkpoints or the complete new one, never half a file; the oldest ones beyond ``keep`` are removed
  only after the new one is in place.
- :func:`load_checkpoint` reads with ``torch.load(..., weights_only=True)``: only tensors, numbers, strings and
  containers are accepted, so a crafted file cannot execute code (a plain pickle can). RNG states are
  therefore stored as tensors and lists, not as NumPy objects.
- :func:`latest_checkpoint` finds the newest ``epoch-NNNN.pt`` in a folder, for ``--resume``.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = "helpers.checkpoint"  # a file-format tag (the module moved; saved files keep the tag)
FORMAT_VERSION = 1
_NAME = re.compile(r"^epoch-(\d{4,})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, unsafe or from another run (the message says what to do)."""


# --------------------------------------------------------------------------- RNG states


def rng_state(generators: Sequence[np.random.Generator] = ()) -> dict[str, Any]:
    """The state of every random number generator a training run draws from, in a weights_only-safe form.

    Python's ``random``, NumPy's global RNG, torch's CPU (and CUDA) generators, and any ``np.random.Generator``
    a dataset owns (e.g. for augmentation), passed in ``generators``.
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": [json.dumps(g.bit_generator.state) for g in generators],
    }


def set_rng_state(state: dict[str, Any], generators: Sequence[np.random.Generator] = ()) -> None:
    """Put back the generator states that :func:`rng_state` recorded."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state.get("generators", [])
    if len(saved) != len(generators):
        raise CheckpointError(
            f"the checkpoint holds {len(saved)} dataset generator state(s) but this run has "
            f"{len(generators)}; it was written by a different set-up"
        )
    for generator, text in zip(generators, saved):
        generator.bit_generator.state = json.loads(text)


# --------------------------------------------------------------------------- files


def checkpoint_path(folder: str | Path, epoch: int) -> Path:
    """``folder/epoch-NNNN.pt``."""
    return Path(folder) / f"epoch-{epoch:04d}.pt"


def list_checkpoints(folder: str | Path) -> list[Path]:
    """The ``epoch-NNNN.pt`` files of ``folder``, oldest epoch first (temporary files are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest checkpoint in ``folder``, or None when there is none."""
    found = list_checkpoints(folder)
    return found[-1] if found else None


def _plain(config: dict | None) -> dict:
    """``config`` reduced to JSON types (paths become strings), which weights_only can load."""
    try:
        return json.loads(json.dumps(config or {}, default=str))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the run config cannot be stored in a checkpoint: {exc}") from None


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform (Windows); the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(
    folder: str | Path,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler_state: dict | None = None,
    config: dict | None = None,
    state: dict | None = None,
    rng: list[dict] | dict | None = None,
    keep: int | None = 2,
) -> Path:
    """Write ``folder/epoch-NNNN.pt`` atomically and keep only the newest ``keep`` checkpoints (None: all).

    ``state`` holds the training loop's own values (history, early-stopping counters, best weights), made of
    tensors, numbers, strings, lists and dicts; ``rng`` the :func:`rng_state` of each rank.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be None or >= 1, got {keep}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "epoch": int(epoch),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler_state,
        "config": _plain(config),
        "state": state or {},
        "rng": rng if rng is None or isinstance(rng, list) else [rng],
    }
    target = checkpoint_path(folder, epoch)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(folder)
    if keep is not None:
        for old in list_checkpoints(folder)[:-keep]:
            old.unlink(missing_ok=True)
    return target


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing anything but plain data.

    Raises :class:`CheckpointError` for a missing, truncated or corrupt file, for a file that holds other
    objects (a pickle that could run code), and for a file that is not a course checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    others = [p.name for p in list_checkpoints(path.parent) if p != path]
    hint = (
        f" Other checkpoints in {path.parent}: {', '.join(others)}; delete {path.name} to resume from the "
        f"newest of them."
        if others
        else ""
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's note on pickle protocols of foreign files
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = str(exc).splitlines()
        unsafe = next((line.strip() for line in lines if "Unsupported global" in line or "GLOBAL" in line), None)
        if unsafe:
            raise CheckpointError(
                f"{path} holds objects other than tensors and plain data ({unsafe[:200]}). It was not loaded, "
                "because unpickling them could run arbitrary code; only load files written by helpers.core.checkpoint."
                + hint
            ) from None
        reason = next((line.strip() for line in lines if "Unsupported" in line), lines[0] if lines else "")
        raise CheckpointError(
            f"{path} is not a readable checkpoint: truncated, corrupt or not written by "
            f"torch.save ({reason[:200]}).{hint}"
        ) from None
    except Exception as exc:  # truncated zip, bad magic number, I/O errors: torch raises several kinds
        raise CheckpointError(
            f"{path} is not a readable checkpoint: truncated or corrupt ({type(exc).__name__}: {exc}).{hint}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a checkpoint written by helpers.core.checkpoint (no format={FORMAT!r} entry)"
        )
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {payload['format_version']}; this code reads up to "
            f"{FORMAT_VERSION}: update the course code"
        )
    return payload


def restore(
    checkpoint: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> None:
    """Load the model, optimizer and scheduler states of ``checkpoint`` into the given objects."""
    try:
        model.load_state_dict(checkpoint["model"])
        if optimizer is not None and checkpoint.get("optimizer") is not None:
            optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None and checkpoint.get("scheduler") is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"the checkpoint of epoch {checkpoint.get('epoch')} does not fit this model or "
            f"optimizer ({exc}); it was written by a different set-up"
        ) from None


__all__ = [
    "CheckpointError",
    "rng_state",
    "set_rng_state",
    "checkpoint_path",
    "list_checkpoints",
    "latest_checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "restore",
]
