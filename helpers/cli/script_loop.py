"""The command-line side of training: what a script trains, its flags and its output folder.

``python -m helpers.cli.train_text lstm ...`` and ``python -m helpers.cli.train_audio ...`` describe what to train as a
:class:`TrainingJob` (model, examples, batches, optimizer, how to save the final model) and hand it to
:func:`run_training`, which runs the course's one training loop, :func:`helpers.core.training.fit`, with its
script options on:

- DistributedDataParallel when a launcher started several processes (:mod:`helpers.core.distributed`), every
  global batch split across the ranks (:class:`helpers.core.training.IndexBatches`), so 1 and N processes take the
  same optimisation steps; mixed precision on CUDA;
- validation after each epoch, early stopping on ``patience``, the best epoch's weights kept — the loop's defaults;
- from rank 0 only, into ``--output``: ``checkpoints/epoch-NNNN.pt`` after every epoch (:mod:`helpers.core.checkpoint`),
  ``metrics.json`` (per-epoch history, best validation and final test metrics), ``train.log``, ``run_config.json``
  (the settings, reusable with ``--config``) and at the end ``model/``, a model folder in the course's format that
  ``python -m helpers.cli.evaluate --model OUTPUT/model`` reads;
- with ``--resume`` continues from the newest checkpoint (weights, optimizer, scheduler, loss scaler, RNG states of
  every rank, early-stopping counters and history), so the result equals an uninterrupted run.

This module holds only that glue: flags, ``--config`` files, the resume checks, the log and the output files.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from helpers.core.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from helpers.core.distributed import (
    PRECISIONS,
    DistContext,
    DistributedError,
    MixedPrecision,
    broadcast_object,
    default_precision,
    init_distributed,
    replica_difference,
    shutdown,
)
from helpers.core.download import ChecksumError, atomic_folder, atomic_write_bytes
from helpers.core.env import get_device, seed_everything
from helpers.core.inputs import CourseInputError, check_config_value, check_device, check_threads, describe_os_error
from helpers.core.outputs import prepare_output_dir, release_output_dir
from helpers.core.training import (
    DEFAULT_MONITOR,
    MONITORS,
    SCHEDULER_STEPS,
    IndexBatches,
    TrainingError,
    eval_batches,
    evaluate,
    fit,
    shuffled_batches,
)


@dataclass
class TrainingJob:
    """What a script trains, built the same way on every rank.

    - ``train_set[i]`` is one example; ``collate(list of examples)`` makes a batch ``(*inputs, labels)``.
    - ``epoch_batches(e)`` lists the *global* batches (lists of indices into ``train_set``) of epoch ``e``
      (0-based); it must depend only on ``e`` and the seed, so every rank and a resumed run see the same ones.
    - ``make_optimizer(model)`` / ``make_scheduler(optimizer)`` (optional; stepped after every batch when
      ``scheduler_step="batch"``, the loop's default, e.g. one-cycle; or once per epoch).
    - the loss is cross-entropy, with ``label_smoothing`` (also in the validation loss, as in ``fit``).
    - ``save_model(model, folder, summary)`` writes the final model in the course's folder format.
    - ``config``: the settings that define the run; a resumed run must have the same.
    - ``generators``: NumPy generators the data draw from (augmentation); saved with the checkpoints.
    """

    name: str
    model: nn.Module
    train_set: Sequence
    epoch_batches: Callable[[int], list[list[int]]]
    collate: Callable[[list], tuple]
    num_classes: int
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    save_model: Callable[[nn.Module, Path, dict], Any]
    val_set: Sequence | None = None
    test_set: Sequence | None = None
    eval_collate: Callable[[list], tuple] | None = None
    make_scheduler: Callable[[torch.optim.Optimizer], Any] | None = None
    scheduler_step: str = "batch"
    label_smoothing: float = 0.0
    config: dict = field(default_factory=dict)
    generators: list[np.random.Generator] = field(default_factory=list)

    def __post_init__(self):
        if self.scheduler_step not in SCHEDULER_STEPS:
            raise TrainingError(f"scheduler_step must be 'batch' or 'epoch', not {self.scheduler_step!r}")


@dataclass
class LoopSettings:
    """How to run a job: epochs, early stopping, precision, where outputs go and whether to resume.

    ``resume``: None (a fresh run; refuses an ``output`` that already holds checkpoints), ``"auto"`` (the newest
    checkpoint in ``output/checkpoints``, or a fresh start when there is none) or the path of a checkpoint.
    """

    output: Path
    epochs: int
    patience: int | None = None
    monitor: str = DEFAULT_MONITOR
    precision: str = "auto"
    clip_grad_norm: float | None = None
    resume: str | None = None
    keep_checkpoints: int = 2
    eval_batch_size: int = 256
    progress: bool = True
    run_config: dict | None = None  # written to run_config.json (the command's settings)

    def __post_init__(self):
        self.output = Path(self.output)
        if self.epochs < 1:
            raise TrainingError(f"epochs must be at least 1, got {self.epochs}")
        if self.patience is not None and self.patience < 1:
            raise TrainingError(f"patience must be at least 1 (or left out for no early stopping), got {self.patience}")
        if self.monitor not in MONITORS:
            raise TrainingError(f"monitor must be one of {MONITORS}, not {self.monitor!r}")
        if self.precision not in PRECISIONS:
            raise TrainingError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.keep_checkpoints < 1:
            raise TrainingError(f"keep_checkpoints must be at least 1, got {self.keep_checkpoints}")
        if self.eval_batch_size < 1:
            raise TrainingError(f"eval_batch_size must be at least 1, got {self.eval_batch_size}")


# --------------------------------------------------------------------------- logging and files


def _logger(output: Path, ctx: DistContext) -> logging.Logger:
    logger = logging.getLogger(f"helpers.cli.script_loop.run{id(output)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if ctx.is_main:
        file_handler = logging.FileHandler(output / "train.log", mode="a", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(file_handler)
        logger.addHandler(console)
    else:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING)
        console.setFormatter(logging.Formatter(f"[rank {ctx.rank}] %(message)s"))
        logger.addHandler(console)
    return logger


def _close_logger(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.flush()
        handler.close()
        logger.removeHandler(handler)


def _write_json(path: Path, payload: dict) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8"))


def _on_main(fn: Callable[[], Any], ctx: DistContext) -> Any:
    """Run ``fn`` on rank 0 and give its result to every rank, or raise its course error on every rank."""
    result, error = None, None
    if ctx.is_main:
        try:
            result = fn()
        except (TrainingError, CheckpointError, CourseInputError) as exc:
            error = exc
    result, error = broadcast_object((result, error), ctx)
    if error is not None:
        raise error
    return result


def _config_differences(saved: dict, current: dict) -> dict:
    current = json.loads(json.dumps(current, default=str))
    keys = sorted(set(saved) | set(current))
    return {k: (saved.get(k), current.get(k)) for k in keys if saved.get(k) != current.get(k)}


def _load_resume_checkpoint(settings: LoopSettings, job: TrainingJob) -> dict | None:
    checkpoints = settings.output / "checkpoints"
    newest = latest_checkpoint(checkpoints)
    if settings.resume is None:
        if newest is not None:
            raise TrainingError(
                f"{settings.output} already holds checkpoints (newest: {newest.name}); pass --resume to "
                "continue that run, or choose another --output"
            )
        return None
    if settings.resume == "auto":
        path = newest
        if path is None:
            return None
    else:
        path = Path(settings.resume)
        if path.is_dir():
            path = latest_checkpoint(path) or latest_checkpoint(path / "checkpoints")
            if path is None:
                raise TrainingError(f"--resume {settings.resume}: no epoch-NNNN.pt checkpoint in that folder")
    checkpoint = load_checkpoint(path)
    differences = _config_differences(checkpoint.get("config", {}), job.config)
    if differences:
        listed = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, a, b in ((k, *v) for k, v in differences.items()))
        raise TrainingError(
            f"{path} was written by a run with other settings ({listed}). Resume with the same "
            "settings (e.g. --config OUTPUT/run_config.json), or start a new run in another --output"
        )
    checkpoint["path"] = str(path)
    return checkpoint


# --------------------------------------------------------------------------- the run


def run_training(job: TrainingJob, settings: LoopSettings, ctx: DistContext | None = None) -> dict[str, Any]:
    """Train ``job`` as ``settings`` say and return the content of ``metrics.json`` (on every rank)."""
    ctx = ctx or DistContext(device=get_device())
    if ctx.is_main:
        settings.output.mkdir(parents=True, exist_ok=True)
    logger = _logger(settings.output, ctx)
    try:
        return _run(job, settings, ctx, logger)
    finally:
        _close_logger(logger)


def _run(job: TrainingJob, settings: LoopSettings, ctx: DistContext, logger: logging.Logger) -> dict[str, Any]:
    output = settings.output
    model = job.model.to(ctx.device)
    optimizer = job.make_optimizer(model)
    scheduler = job.make_scheduler(optimizer) if job.make_scheduler is not None else None
    checkpoint = _on_main(lambda: _load_resume_checkpoint(settings, job), ctx)  # read by rank 0, sent to all
    if ctx.is_main:
        _write_json(output / "run_config.json", settings.run_config or {"config": job.config})
    mixed = MixedPrecision(settings.precision, ctx.device)  # what "auto" means on this device, for the log
    precision = mixed.precision
    described = f"{ctx.world_size} process(es), {ctx.device}" + (f", backend {ctx.backend}" if ctx.backend else "")
    logger.info(
        f"{job.name}: {len(job.train_set):,} training examples, {described}, precision {precision}"
        + (f" ({mixed.note})" if mixed.note else "")
    )
    eval_collate = job.eval_collate or job.collate
    loss_fn = nn.CrossEntropyLoss(label_smoothing=job.label_smoothing)
    run_settings = {
        "epochs": settings.epochs,
        "patience": settings.patience,
        "monitor": settings.monitor,
        "precision": precision,
        "world_size": ctx.world_size,
        "device": str(ctx.device),
        "backend": ctx.backend,
        "clip_grad_norm": settings.clip_grad_norm,
    }

    def payload(history, finished: bool, test: dict | None = None, replica_diff: float | None = None) -> dict:
        return {
            "job": job.name,
            "config": job.config,
            "settings": run_settings,
            "history": history.rows(),
            "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early,
            "validation": history.best_validation,
            "test": test,
            "resumed_at": history.resumed_at,
            "replica_max_abs_diff": replica_diff,
            "finished": finished,
        }

    def after_epoch(epoch, history, path):
        if ctx.is_main:
            _write_json(output / "metrics.json", payload(history, finished=False))

    history = fit(
        model,
        IndexBatches(job.train_set, job.epoch_batches, job.collate, ctx),
        eval_batches(job.val_set, eval_collate, settings.eval_batch_size, ctx) if job.val_set is not None else None,
        optimizer,
        settings.epochs,
        ctx.device,
        loss_fn=loss_fn,
        scheduler=scheduler,
        scheduler_step=job.scheduler_step,
        clip_grad_norm=settings.clip_grad_norm,
        patience=settings.patience,
        monitor=settings.monitor,
        progress=settings.progress,
        precision=precision,
        checkpoint_dir=output / "checkpoints",
        keep_checkpoints=settings.keep_checkpoints,
        resume=checkpoint,
        config=job.config,
        generators=job.generators,
        ctx=ctx,
        on_epoch_end=after_epoch,
        log=logger.info,
    )
    test = None
    if job.test_set is not None:
        test = evaluate(
            model, eval_batches(job.test_set, eval_collate, settings.eval_batch_size, ctx), ctx.device, loss_fn, ctx
        )
    result = payload(history, finished=True, test=test, replica_diff=replica_difference(model, ctx))
    if ctx.is_main:
        with atomic_folder(output / "model") as staging:
            job.save_model(model, staging, result)
        _write_json(output / "metrics.json", result)
        if test is not None:
            logger.info(
                f"test (best epoch {history.best_epoch}): accuracy {test['accuracy']:.4f}, "
                f"macro-F1 {test['macro_f1']:.4f}"
            )
        logger.info(
            f"model → {output / 'model'} (python -m helpers.cli.evaluate --model {output / 'model'} --data ...); "
            f"metrics → {output / 'metrics.json'}"
        )
    return result


# --------------------------------------------------------------------------- command-line pieces


def add_loop_arguments(
    parser: argparse.ArgumentParser,
    epochs: int,
    patience: int | None,
    default_output: Path | None,
    monitor: str = DEFAULT_MONITOR,
) -> None:
    """The flags every training script shares (epochs, output, resume, precision, ...)."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="JSON file of settings (keys are the long flag names); flags given on the command line win",
    )
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument(
        "--patience",
        type=int,
        default=patience,
        help="stop after this many epochs without a better validation score (0: never)",
    )
    parser.add_argument(
        "--monitor", choices=MONITORS, default=monitor, help="validation score that picks the best epoch"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=default_output,
        help="folder for checkpoints/, metrics.json, train.log, run_config.json and model/",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="continue from the newest checkpoint in --output (or from the checkpoint file given); "
        "starts afresh when there is none yet",
    )
    parser.add_argument("--keep-checkpoints", type=int, default=2, help="how many of the newest checkpoints to keep")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=default_precision(),
        help="auto: bf16 (or fp16) autocast on CUDA, fp32 elsewhere (default: accelerate's "
        "--mixed_precision when launched by it)",
    )
    parser.add_argument("--clip-grad-norm", type=float, default=None)
    parser.add_argument("--eval-batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch in each process")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _config_error(parser: argparse.ArgumentParser, message: str) -> None:
    """Stop with one ``error:`` line for a mistake inside a ``--config`` file (exit 2, as argparse would)."""
    parser.exit(2, f"{parser.prog}: error: {message}\n")


def parse_with_config(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; a ``--config file.json`` gives defaults (keys: long flag names, ``-`` or ``_``).

    A mistake in the file is one line (``<prog>: error: --config FILE: ...``, exit 2), without the usage block:
    the flags were not the problem."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path, default=None)
    known, _ = pre.parse_known_args(argv)
    if known.config is not None:
        try:
            values = json.loads(known.config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            _config_error(parser, f"--config {known.config}: no such file")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            _config_error(parser, f"--config {known.config} is not valid JSON ({exc})")
        except OSError as exc:
            _config_error(parser, f"--config {known.config}: {exc.strerror or exc}")
        if not isinstance(values, dict):
            _config_error(
                parser, f"--config {known.config} must hold a JSON object of settings, not {type(values).__name__}"
            )
        actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
        defaults = {}
        for key, value in values.items():
            dest = key.lstrip("-").replace("-", "_")
            if dest not in actions:
                _config_error(
                    parser, f"--config {known.config}: unknown setting {key!r}; known: {', '.join(sorted(actions))}"
                )
            if actions[dest].choices is not None and value not in actions[dest].choices:
                _config_error(
                    parser, f"--config {known.config}: {key}={value!r} is not one of {list(actions[dest].choices)}"
                )
            try:
                value = check_config_value(actions[dest], key, value, str(known.config))
            except CourseInputError as exc:
                _config_error(parser, str(exc))
            defaults[dest] = value
        parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
    if getattr(args, "patience", None) == 0:
        args.patience = None
    return args


def settings_from_args(args: argparse.Namespace) -> LoopSettings:
    """The :class:`LoopSettings` of parsed script flags (``run_config`` = the flags, for ``--config``)."""
    record = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("config", "resume", "command")
    }
    return LoopSettings(
        output=args.output,
        epochs=args.epochs,
        patience=args.patience,
        monitor=args.monitor,
        precision=args.precision,
        clip_grad_norm=args.clip_grad_norm,
        resume=args.resume,
        keep_checkpoints=args.keep_checkpoints,
        eval_batch_size=args.eval_batch_size,
        progress=not args.no_progress,
        run_config=record,
    )


SCRIPT_ERRORS = (
    TrainingError,
    CheckpointError,
    DistributedError,
    FileNotFoundError,
    ValueError,
    KeyError,
    CourseInputError,
    ChecksumError,
)


def run_script(build_job: Callable[[argparse.Namespace, DistContext], TrainingJob], args: argparse.Namespace) -> int:
    """Join the process group, seed, build the job, train; errors become one ``error: ...`` line and exit code 2."""
    try:
        check_threads(args.threads)
        check_device(args.device)
        if args.threads:
            torch.set_num_threads(args.threads)
        ctx = init_distributed(args.device)
        try:
            seed_everything(args.seed)
            settings = settings_from_args(args)
            # before any data is read: a bad, foreign or busy --output costs one line, not a run
            _on_main(lambda: prepare_output_dir(args.output, resume=args.resume is not None), ctx)
            try:
                run_training(build_job(args, ctx), settings, ctx)
            finally:
                if ctx.is_main:
                    release_output_dir(args.output)
        finally:
            shutdown(ctx)
    except SCRIPT_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:  # permission denied, disk full, ...
        print(
            f"error: {describe_os_error(exc, 'check --output, its permissions and the free disk space')}",
            file=sys.stderr,
        )
        return 2
    return 0


__all__ = [
    "TrainingError",
    "TrainingJob",
    "LoopSettings",
    "run_training",
    "shuffled_batches",
    "add_loop_arguments",
    "parse_with_config",
    "settings_from_args",
    "run_script",
    "MONITORS",
]
